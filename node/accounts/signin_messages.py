"""Wallet sign-in messages for Bitcoin and Solana (EVM uses EIP-4361 via the
``siwe`` package), modelled on EIP-4361 so wallets show a readable text:

    {domain} wants you to sign in with your {Bitcoin|Solana} account:
    {address}

    Sign in to escrowd.

    URI: {uri}
    Nonce: {nonce}
    Issued At: {iso}
    Expiration Time: {iso}

Pure: building, parsing and checking the fields; signatures are checked in
``node.accounts.wallet_proofs``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from node.errors import AuthenticationError, ValidationError

CHAIN_NAMES = {"btc": "Bitcoin", "sol": "Solana"}
STATEMENT = "Sign in to escrowd."

_PATTERN = re.compile(
    r"\A(?P<domain>[^\s/?#]+) wants you to sign in with your (?P<name>Bitcoin|Solana) account:\n"
    r"(?P<address>[A-Za-z0-9]{20,100})\n"
    r"\n"
    + re.escape(STATEMENT) + r"\n"
    r"\n"
    r"URI: (?P<uri>\S+)\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{8,64})\n"
    r"Issued At: (?P<issued_at>\S+)\n"
    r"Expiration Time: (?P<expires_at>\S+)\Z"
)


@dataclass(frozen=True)
class SignInMessage:
    chain: str  # btc | sol
    domain: str
    address: str
    uri: str
    nonce: str
    issued_at: datetime
    expires_at: datetime

    def text(self) -> str:
        return (
            f"{self.domain} wants you to sign in with your {CHAIN_NAMES[self.chain]} account:\n"
            f"{self.address}\n\n{STATEMENT}\n\n"
            f"URI: {self.uri}\nNonce: {self.nonce}\n"
            f"Issued At: {_iso(self.issued_at)}\nExpiration Time: {_iso(self.expires_at)}"
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{field} is not an ISO 8601 time", code="invalid_message",
                              field="message") from None
    if moment.tzinfo is None:
        raise ValidationError(f"{field} needs a time zone", code="invalid_message",
                              field="message")
    return moment


def parse_message(text: str) -> SignInMessage:
    m = _PATTERN.match(text)
    if m is None:
        raise ValidationError("not a sign-in message of the expected format",
                              code="invalid_message", field="message")
    chain = "btc" if m["name"] == "Bitcoin" else "sol"
    return SignInMessage(
        chain=chain, domain=m["domain"], address=m["address"], uri=m["uri"], nonce=m["nonce"],
        issued_at=_parse_time(m["issued_at"], "Issued At"),
        expires_at=_parse_time(m["expires_at"], "Expiration Time"),
    )


def check_fields(
    msg: SignInMessage, *, chain: str, address: str, domain: str, uri: str, now: datetime
) -> None:
    """The message is for this chain, address, domain and URI, and current."""
    if msg.chain != chain:
        raise AuthenticationError("the message is for another chain", code="invalid_message",
                              field="message")
    if msg.address != address:
        raise AuthenticationError("the message names another address", code="address_mismatch",
                              field="address")
    if msg.domain != domain:
        raise AuthenticationError(f"the message is for domain {msg.domain!r}, not {domain!r}",
                              code="domain_mismatch", field="message")
    if msg.uri != uri:
        raise AuthenticationError("the message is for another URI", code="uri_mismatch",
                              field="message")
    if msg.expires_at <= now:
        raise AuthenticationError("the message expired", code="message_expired", field="message")
    if msg.issued_at > now:
        raise AuthenticationError("the message is not valid yet", code="message_not_yet_valid",
                              field="message")
