"""Wallet sign-in and wallet links: server nonces (single use, short-lived),
the users behind linked addresses, linking and unlinking."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.db.models import User, utcnow
from node.db.models_accounts import AuthNonce, WalletLink
from node.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from node.trades import create_user

NONCE_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MAX_WALLETS = 20


def new_nonce() -> str:
    """17 alphanumeric characters (~100 bits), as EIP-4361 asks (>= 8)."""
    return "".join(secrets.choice(NONCE_ALPHABET) for _ in range(17))


@dataclass(frozen=True)
class IssuedNonce:
    nonce: str
    issued_at: datetime
    expires_at: datetime


def issue_nonce(session: Session, *, chain: str, ttl_s: int) -> IssuedNonce:
    now = utcnow().replace(microsecond=0)
    row = AuthNonce(nonce=new_nonce(), chain=chain, issued_at=now,
                    expires_at=now + timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    return IssuedNonce(nonce=row.nonce, issued_at=row.issued_at, expires_at=row.expires_at)


def consume_nonce(session: Session, *, nonce: str, chain: str, now: datetime | None = None) -> None:
    """Mark the nonce used, once: an unknown, expired or used nonce is refused
    (``nonce_invalid`` / ``nonce_reused``). Atomic: of two concurrent sign-ins
    with one nonce, one wins."""
    moment = now if now is not None else utcnow()
    res = session.execute(
        update(AuthNonce)
        .where(AuthNonce.nonce == nonce, AuthNonce.chain == chain,
               AuthNonce.used_at.is_(None), AuthNonce.expires_at > moment)
        .values(used_at=moment)
    )
    if res.rowcount == 1:  # type: ignore[attr-defined]
        return
    row = session.get(AuthNonce, nonce)
    if row is not None and row.used_at is not None:
        raise AuthenticationError("this nonce was already used; ask for a new one",
                                  code="nonce_reused", field="message")
    if row is not None and row.chain == chain:
        raise AuthenticationError("this nonce expired; ask for a new one",
                                  code="nonce_expired", field="message")
    raise AuthenticationError("unknown nonce; ask /auth/nonce for one",
                              code="nonce_invalid", field="message")


def canonical_address(chain: str, address: str) -> str:
    """EVM addresses are compared lower-case (EIP-55 is display only)."""
    return address.lower() if chain == "evm" else address


def user_for_wallet(session: Session, *, chain: str, address: str) -> User | None:
    link = session.scalar(select(WalletLink).where(
        WalletLink.chain == chain, WalletLink.address == canonical_address(chain, address)))
    if link is None:
        return None
    link.last_used_at = utcnow()
    return session.get(User, link.user_id)


def _wallet_username(chain: str, address: str) -> str:
    digest = hashlib.sha256(f"{chain}:{address}".encode()).hexdigest()[:8]
    return f"{chain}_{canonical_address(chain, address)[:24]}_{digest}"


def sign_in_wallet(session: Session, *, chain: str, address: str) -> tuple[User, bool]:
    """The user who linked this wallet, or a new trader who owns it (True)."""
    user = user_for_wallet(session, chain=chain, address=address)
    if user is not None:
        return user, False
    try:
        with session.begin_nested():
            user, _unused_api_token = create_user(
                session, username=_wallet_username(chain, address), role="trader",
                evm_address=address if chain == "evm" else None,
            )
            link_wallet(session, user=user, chain=chain, address=address)
    except (IntegrityError, ValidationError):
        # a concurrent first sign-in of this wallet made the account: use it
        user = user_for_wallet(session, chain=chain, address=address)
        if user is None:
            raise
        return user, False
    return user, True


def link_wallet(session: Session, *, user: User, chain: str, address: str) -> WalletLink:
    addr = canonical_address(chain, address)
    existing = session.scalar(select(WalletLink).where(
        WalletLink.chain == chain, WalletLink.address == addr))
    if existing is not None:
        if existing.user_id != user.id:
            raise PermissionDeniedError("this wallet is linked to another account",
                                        code="wallet_taken", field="address")
        return existing
    count = session.scalar(select(func.count()).select_from(WalletLink).where(
        WalletLink.user_id == user.id)) or 0
    if count >= MAX_WALLETS:
        raise PermissionDeniedError(f"at most {MAX_WALLETS} wallets per account",
                                    code="too_many_wallets")
    link = WalletLink(user_id=user.id, chain=chain, address=addr)
    session.add(link)
    if chain == "evm" and user.evm_address is None:
        user.evm_address = address
    session.flush()
    return link


def list_wallets(session: Session, user_id: int) -> list[WalletLink]:
    return list(session.scalars(
        select(WalletLink).where(WalletLink.user_id == user_id).order_by(WalletLink.id)))


def unlink_wallet(session: Session, *, user: User, wallet_id: int) -> WalletLink:
    link = session.get(WalletLink, wallet_id)
    if link is None or link.user_id != user.id:
        raise NotFoundError(f"no wallet {wallet_id}")
    session.delete(link)
    session.flush()
    return link
