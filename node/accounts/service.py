"""Account operations the API composes: registration, password sign-in, the
wallet proofs of each chain against the server's nonces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.accounts import passwords, totp
from node.accounts.settings import AuthSettings
from node.accounts.signin_messages import SignInMessage, check_fields, parse_message
from node.accounts.wallet_proofs import verify_btc, verify_siwe, verify_sol
from node.accounts.wallets import consume_nonce
from node.db.models import User, utcnow
from node.errors import AuthenticationError, ValidationError
from node.trades import create_user


def register(session: Session, *, username: str, password: str) -> User:
    passwords.check_strength(password)
    user, _unused_api_token = create_user(session, username=username, role="trader")
    passwords.set_password(session, user_id=user.id, password=password)
    return user


def password_sign_in(
    session: Session, *, username: str, password: str, second_factor: str | None,
    totp_window: int, now: datetime | None = None,
) -> tuple[User, str]:
    """The user, and how they proved it (``password`` or ``password+totp`` /
    ``password+recovery_code``). ``totp_required`` when 2FA is on and no code came."""
    user = session.scalar(select(User).where(User.username == username))
    passwords.check_password(session, user_id=user.id if user else None, password=password)
    assert user is not None  # check_password refused unknown users
    if not totp.totp_enabled(session, user.id):
        return user, "password"
    if not second_factor:
        raise AuthenticationError("this account has two-factor authentication: send totp_code",
                                  code="totp_required", field="totp_code")
    how = totp.verify_second_factor(session, user.id, second_factor, now=now,
                                    window=totp_window)
    return user, f"password+{how}"


@dataclass(frozen=True)
class WalletProof:
    chain: str
    address: str
    detail: str  # siwe | bip322 | legacy | ed25519


def prove_wallet(
    session: Session, *, chain: str, message: str, signature: str, address: str | None,
    auth: AuthSettings, siwe_chain_ids: set[int], btc_network: str,
    now: datetime | None = None,
) -> WalletProof:
    """Check a wallet sign-in proof and use up its nonce (in ``session``)."""
    moment = now if now is not None else utcnow()
    if chain == "evm":
        proof = verify_siwe(message, signature, domain=auth.domain, uri=auth.uri,
                            chain_ids=siwe_chain_ids, now=moment)
        if address is not None and address.lower() != proof.address.lower():
            raise AuthenticationError("the message names another address",
                                      code="address_mismatch", field="address")
        consume_nonce(session, nonce=proof.nonce, chain="evm", now=moment)
        return WalletProof("evm", proof.address, "siwe")
    msg: SignInMessage = parse_message(message)
    if address is None:
        raise ValidationError("address is required for Bitcoin and Solana",
                              field="address")
    check_fields(msg, chain=chain, address=address, domain=auth.domain, uri=auth.uri,
                 now=moment)
    if chain == "btc":
        detail = verify_btc(address, message, signature, network=btc_network)
    else:
        verify_sol(address, message, signature)
        detail = "ed25519"
    consume_nonce(session, nonce=msg.nonce, chain=chain, now=moment)
    return WalletProof(chain, address, detail)
