"""This slice's hook into a running node (see ``node.runtime.SLICE_SERVICES``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.runtime import Node


def install(node: Node) -> None:
    """Register this slice's periodic jobs (``node.jobs``), threads and closers."""
