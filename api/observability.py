"""Request-level observability installed on the app: metrics, request logs."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Install the middleware on ``app`` (called by ``create_app``)."""
