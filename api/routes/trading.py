"""Order-book trading: pairs, depth, trading orders, trade history, market-data stream."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
