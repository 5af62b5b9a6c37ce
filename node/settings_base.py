"""The base of every settings block (``node.config`` assembles them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings block: unknown keys are refused, so a typo is an error."""

    model_config = ConfigDict(extra="forbid")
