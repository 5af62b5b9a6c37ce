"""The purge job on a real PostgreSQL database: expired and used nonces,
expired refresh tokens, dead sessions and old Idempotency-Key records go;
live ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node.accounts.housekeeping import purge_expired
from node.accounts.settings import AuthSettings
from node.accounts.tokens import Tokens
from node.accounts.wallets import consume_nonce, issue_nonce
from node.db.models import utcnow
from node.db.models_accounts import AuthNonce, AuthSession, IdempotencyKey, RefreshToken
from node.db.session import transaction
from node.trades import create_user


def _count(s: Session, model: type) -> int:
    return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_purge_keeps_live_records(sessions: sessionmaker[Session]) -> None:
    auth = AuthSettings(refresh_token_ttl_s=3600, idempotency_ttl_s=3600)
    tokens = Tokens(b"k" * 48, auth)
    now = utcnow()
    with transaction(sessions) as s:
        user, _ = create_user(s, username="u1")
        live = issue_nonce(s, chain="sol", ttl_s=600)
        used = issue_nonce(s, chain="sol", ttl_s=600)
        consume_nonce(s, nonce=used.nonce, chain="sol")
        s.add(AuthNonce(nonce="expired0000000000", chain="evm",
                        issued_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1)))
        tokens.start_session(s, user=user, method="password", ip=None)  # live
        tokens.start_session(s, user=user, method="password", ip=None,
                             now=now - timedelta(hours=3))  # its refresh token expired
        s.add(IdempotencyKey(scope="user:1", key="old", request_hash="0" * 64,
                             created_at=now - timedelta(hours=2)))
        s.add(IdempotencyKey(scope="user:1", key="new", request_hash="0" * 64))
    with transaction(sessions) as s:
        counts = purge_expired(s, auth=auth, now=utcnow())
    assert counts == {"nonces": 2, "refresh_tokens": 1, "sessions": 1, "idempotency_keys": 1}
    with transaction(sessions) as s:
        assert [n.nonce for n in s.scalars(select(AuthNonce))] == [live.nonce]
        assert _count(s, RefreshToken) == 1 and _count(s, AuthSession) == 1
        assert [k.key for k in s.scalars(select(IdempotencyKey))] == ["new"]
