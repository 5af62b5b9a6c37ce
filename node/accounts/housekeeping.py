"""This slice's hook into a running node (``node.runtime.SLICE_SERVICES``):
every session of the node carries the TOTP cipher (so any process can check a
TOTP code, not only the API's), and a periodic job deletes what has expired:
sign-in nonces, spent or expired refresh tokens, old sessions and
Idempotency-Key records past their time to live."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from node.accounts.keys import TotpCipher, install_cipher, load_secret
from node.accounts.settings import AuthSettings
from node.db.models import utcnow
from node.db.models_accounts import AuthNonce, AuthSession, IdempotencyKey, RefreshToken
from node.db.session import transaction

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("escrowd.accounts")
PURGE_EVERY_S = 600.0
KEEP_REVOKED = timedelta(days=7)


def purge_expired(session: Session, *, auth: AuthSettings, now: datetime) -> dict[str, int]:
    """Delete expired auth records; returns how many of each."""
    out: dict[str, int] = {}
    res = session.execute(delete(AuthNonce).where(
        or_(AuthNonce.expires_at < now, AuthNonce.used_at.is_not(None))))
    out["nonces"] = int(res.rowcount)  # type: ignore[attr-defined]
    res = session.execute(delete(RefreshToken).where(
        or_(RefreshToken.expires_at < now,
            RefreshToken.used_at < now - KEEP_REVOKED)))
    out["refresh_tokens"] = int(res.rowcount)  # type: ignore[attr-defined]
    # sessions revoked long ago, or whose every refresh token is gone
    dead = select(AuthSession.id).where(
        or_(AuthSession.revoked_at < now - KEEP_REVOKED,
            AuthSession.created_at < now - timedelta(seconds=auth.refresh_token_ttl_s)),
        ~AuthSession.id.in_(select(RefreshToken.session_id)),
    )
    res = session.execute(delete(AuthSession).where(AuthSession.id.in_(dead)))
    out["sessions"] = int(res.rowcount)  # type: ignore[attr-defined]
    res = session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at < now - timedelta(seconds=auth.idempotency_ttl_s)))
    out["idempotency_keys"] = int(res.rowcount)  # type: ignore[attr-defined]
    return out


def install(node: Node) -> None:
    install_cipher(node.sessions, TotpCipher(load_secret(node.settings)))

    def purge() -> None:
        with transaction(node.sessions) as session:
            counts = purge_expired(session, auth=node.settings.auth, now=utcnow())
        if any(counts.values()):
            log.info("purged expired auth records: %s", counts)

    node.jobs.append(("accounts-purge-expired", purge, PURGE_EVERY_S))
