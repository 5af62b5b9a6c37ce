"""Passwords: argon2id hashes (argon2-cffi), rehashed when parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from node.db.models_accounts import UserPassword
from node.errors import AuthenticationError, ValidationError

MIN_LENGTH = 10
MAX_LENGTH = 256

_hasher = PasswordHasher()
# verified against when the user is unknown, so both paths cost one argon2 run
_DUMMY = _hasher.hash("not-a-real-password-0")


def check_strength(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationError(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters",
                              code="weak_password", field="password")
    if len(set(password)) < 4:
        raise ValidationError("the password is too repetitive", code="weak_password",
                              field="password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_hash(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def set_password(session: Session, *, user_id: int, password: str) -> None:
    check_strength(password)
    row = session.get(UserPassword, user_id)
    if row is None:
        session.add(UserPassword(user_id=user_id, password_hash=hash_password(password)))
    else:
        row.password_hash = hash_password(password)
    session.flush()


def has_password(session: Session, user_id: int) -> bool:
    return session.get(UserPassword, user_id) is not None


def check_password(session: Session, *, user_id: int | None, password: str) -> None:
    """Raise ``invalid_credentials`` unless ``password`` is the user's; an
    unknown user (None) costs the same argon2 run as a known one."""
    row = session.get(UserPassword, user_id) if user_id is not None else None
    if row is None:
        verify_hash(_DUMMY, password)
        raise AuthenticationError("wrong username or password", code="invalid_credentials")
    if not verify_hash(row.password_hash, password):
        raise AuthenticationError("wrong username or password", code="invalid_credentials")
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
