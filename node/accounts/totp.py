"""TOTP two-factor (RFC 6238) with one-time recovery codes.

A secret is set up (not yet active), then enabled by proving one code; the
user gets recovery codes once, each usable once in place of a TOTP code. A
code is accepted once: the 30-second step of the last accepted code is stored
and a code of that step or an earlier one is refused (``totp_reused``), with
an atomic conditional UPDATE so two concurrent uses cannot both pass."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from node.accounts.keys import cipher_of
from node.db.models import utcnow
from node.db.models_accounts import RecoveryCode, UserTotp
from node.errors import AuthenticationError, EscrowStateError, ValidationError

DIGITS = 6
STEP_S = 30
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


# --- pure ------------------------------------------------------------------


def new_secret() -> str:
    return pyotp.random_base32()


def matching_timestep(secret: str, code: str, *, now: datetime, window: int) -> int | None:
    """The time step (``unix time // 30``) within ``window`` steps of ``now``
    whose code is ``code``, or None. Constant-time comparison."""
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    current = totp.timecode(now)
    found = None
    for step in range(current - window, current + window + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=account, issuer_name=issuer
    )


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_recovery_code(code: str) -> str:
    return code.strip().lower().replace(" ", "").replace("-", "")


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalize_recovery_code(code).encode()).hexdigest()


def looks_like_totp(code: str) -> bool:
    return len(code) == DIGITS and code.isdigit()


# --- database --------------------------------------------------------------


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    uri: str


def _row(session: Session, user_id: int) -> UserTotp | None:
    return session.get(UserTotp, user_id)


def totp_enabled(session: Session, user_id: int) -> bool:
    row = _row(session, user_id)
    return row is not None and row.enabled_at is not None


def setup_totp(session: Session, *, user_id: int, account: str, issuer: str) -> TotpSetup:
    """A fresh (not yet enabled) secret for the user; refused when 2FA is on."""
    row = _row(session, user_id)
    if row is not None and row.enabled_at is not None:
        raise EscrowStateError("two-factor authentication is already enabled",
                               code="totp_already_enabled")
    secret = new_secret()
    encrypted = cipher_of(session).encrypt(secret)
    if row is None:
        session.add(UserTotp(user_id=user_id, secret_encrypted=encrypted))
    else:
        row.secret_encrypted = encrypted
        row.last_timestep = None
    session.flush()
    return TotpSetup(secret=secret, uri=provisioning_uri(secret, account=account, issuer=issuer))


def enable_totp(
    session: Session, *, user_id: int, code: str, count: int, window: int = 1,
    now: datetime | None = None,
) -> list[str]:
    """Turn 2FA on after the user proved a code; returns fresh recovery codes
    (shown once; only their hashes are kept)."""
    row = _row(session, user_id)
    if row is None:
        raise EscrowStateError("set up two-factor authentication first",
                               code="totp_not_set_up")
    if row.enabled_at is not None:
        raise EscrowStateError("two-factor authentication is already enabled",
                               code="totp_already_enabled")
    _consume_code(session, row, code, window=window, now=now)
    row.enabled_at = utcnow()
    return replace_recovery_codes(session, user_id=user_id, count=count)


def disable_totp(session: Session, *, user_id: int) -> None:
    """Turn 2FA off (the caller has verified a code or recovery code)."""
    row = _row(session, user_id)
    if row is not None:
        session.delete(row)
    session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
    ).values(used_at=utcnow()))
    session.flush()


def replace_recovery_codes(session: Session, *, user_id: int, count: int) -> list[str]:
    session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
    ).values(used_at=utcnow()))
    codes = [new_recovery_code() for _ in range(count)]
    session.add_all(RecoveryCode(user_id=user_id, code_hash=hash_recovery_code(c)) for c in codes)
    session.flush()
    return codes


def verify_totp_for_user(
    session: Session, user_id: int, code: str, *, now: datetime | None = None, window: int = 1
) -> None:
    """Accept ``code`` once for the user, or raise: ``totp_not_enabled``
    (ValidationError), ``totp_invalid`` or ``totp_reused`` (AuthenticationError)."""
    row = _row(session, user_id)
    if row is None or row.enabled_at is None:
        raise ValidationError("two-factor authentication is not enabled for this user",
                              code="totp_not_enabled", field="totp_code")
    _consume_code(session, row, code, window=window, now=now)


def verify_second_factor(
    session: Session, user_id: int, code: str, *, now: datetime | None = None, window: int = 1
) -> str:
    """A TOTP code or an unused recovery code; returns which (``totp`` or
    ``recovery_code``). Raises like ``verify_totp_for_user``."""
    if looks_like_totp(code.strip()):
        verify_totp_for_user(session, user_id, code.strip(), now=now, window=window)
        return "totp"
    if not totp_enabled(session, user_id):
        raise ValidationError("two-factor authentication is not enabled for this user",
                              code="totp_not_enabled", field="totp_code")
    used = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == hash_recovery_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise AuthenticationError("wrong or already used recovery code",
                                  code="totp_invalid", field="totp_code")
    return "recovery_code"


def remaining_recovery_codes(session: Session, user_id: int) -> int:
    return len(list(session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))))


def _consume_code(
    session: Session, row: UserTotp, code: str, *, window: int, now: datetime | None
) -> None:
    moment = now if now is not None else datetime.now(UTC)
    secret = cipher_of(session).decrypt(row.secret_encrypted)
    step = matching_timestep(secret, code, now=moment, window=window)
    if step is None:
        raise AuthenticationError("wrong two-factor code", code="totp_invalid", field="totp_code")
    claimed = session.execute(
        update(UserTotp)
        .where(
            UserTotp.user_id == row.user_id,
            or_(UserTotp.last_timestep.is_(None), UserTotp.last_timestep < step),
        )
        .values(last_timestep=step)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AuthenticationError("this two-factor code was already used; wait for the next one",
                                  code="totp_reused", field="totp_code")
    session.refresh(row)
