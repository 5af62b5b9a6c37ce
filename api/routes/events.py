"""Trade events pushed to clients (SSE / WebSocket) and webhook subscriptions."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
