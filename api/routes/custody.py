"""Custody: balances, deposit addresses, withdrawals."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
