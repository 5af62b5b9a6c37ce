"""Payment methods, verification, reputation, currencies and prices."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
