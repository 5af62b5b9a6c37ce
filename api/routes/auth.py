"""Sign-in (password + TOTP, SIWE, Bitcoin and Solana messages), tokens, 2FA, audit log."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
