"""Proofs that a user holds a wallet: signatures over sign-in messages.

- EVM: Sign-In with Ethereum (EIP-4361, the ``siwe`` package): domain, URI,
  chain id, expiry and the EIP-191 signature are checked here; the nonce's
  single use by the caller (``node.accounts.wallets``).
- Bitcoin: BIP-322 "simple" signatures (``bip322``), or the legacy
  ``signmessage`` format (``bitcoinlib``) for P2PKH / P2WPKH addresses.
- Solana: an ed25519 signature over the message bytes (``solders``).

No I/O: plain values in, the signing address out or an AuthenticationError."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime

from node.errors import AuthenticationError, ValidationError

BTC_PREFIXES = {
    "mainnet": ("bc1", "1", "3"),
    "testnet": ("tb1", "m", "n", "2"),
    "signet": ("tb1", "m", "n", "2"),
    "regtest": ("bcrt1", "m", "n", "2"),
}


def _bad_signature(detail: str = "the signature does not match the message and address") -> (
    AuthenticationError
):
    return AuthenticationError(detail, code="invalid_signature", field="signature")


# --- EVM: EIP-4361 -----------------------------------------------------------


@dataclass(frozen=True)
class SiweProof:
    address: str  # EIP-55
    nonce: str
    chain_id: int


def verify_siwe(
    message: str, signature: str, *, domain: str, uri: str, chain_ids: set[int], now: datetime
) -> SiweProof:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import siwe
    try:
        msg = siwe.SiweMessage.from_message(message)
    except Exception:  # noqa: BLE001 - the parser raises many kinds; all mean "malformed"
        raise ValidationError("not an EIP-4361 message", code="invalid_message",
                              field="message") from None
    if msg.domain != domain:
        raise AuthenticationError(f"the message is for domain {msg.domain!r}, not {domain!r}",
                                  code="domain_mismatch", field="message")
    if str(msg.uri) != uri:
        raise AuthenticationError(f"the message is for URI {msg.uri!r}, not {uri!r}",
                                  code="uri_mismatch", field="message")
    if msg.chain_id not in chain_ids:
        raise AuthenticationError(f"chain id {msg.chain_id} is not accepted here",
                                  code="chain_mismatch", field="message")
    try:
        msg.verify(signature, domain=domain, timestamp=now)
    except siwe.ExpiredMessage:
        raise AuthenticationError("the message expired", code="message_expired",
                                  field="message") from None
    except siwe.NotYetValidMessage:
        raise AuthenticationError("the message is not valid yet",
                                  code="message_not_yet_valid", field="message") from None
    except siwe.VerificationError:
        raise _bad_signature() from None
    except Exception:  # noqa: BLE001 - eth-account raises assorted errors on junk signatures
        raise _bad_signature() from None
    return SiweProof(address=str(msg.address), nonce=msg.nonce, chain_id=int(msg.chain_id))


# --- Bitcoin -----------------------------------------------------------------


def check_btc_address(address: str, network: str) -> None:
    prefixes = BTC_PREFIXES[network]
    lowered = address.lower()
    ok = any(
        lowered.startswith(p) if p.endswith("1") and len(p) > 1 else address.startswith(p)
        for p in prefixes
    )
    if not ok:
        raise ValidationError(f"not a Bitcoin {network} address", code="invalid_address",
                              field="address")


def verify_btc(address: str, message: str, signature: str, *, network: str) -> str:
    """Which format verified (``bip322`` or ``legacy``), else AuthenticationError."""
    check_btc_address(address, network)
    import bip322

    try:
        bip322.verify_simple_encoded(address, message, signature)
        return "bip322"
    except Exception:  # noqa: BLE001, S110 - not a BIP-322 signature: try the legacy format
        pass
    try:
        from bitcoinlib.keys import verify_message

        if verify_message(message, signature, address, network=_bitcoinlib_network(network)):
            return "legacy"
    except Exception:  # noqa: BLE001, S110 - malformed legacy signature
        pass
    raise _bad_signature()


def _bitcoinlib_network(network: str) -> str:
    return {"mainnet": "bitcoin", "testnet": "testnet", "signet": "signet",
            "regtest": "regtest"}[network]


# --- Solana ------------------------------------------------------------------


def verify_sol(address: str, message: str, signature: str) -> None:
    from solders.pubkey import Pubkey
    from solders.signature import Signature

    try:
        pubkey = Pubkey.from_string(address)
    except Exception:  # noqa: BLE001
        raise ValidationError("not a Solana address", code="invalid_address",
                              field="address") from None
    try:
        sig = Signature.from_string(signature)
    except Exception:  # noqa: BLE001
        raise _bad_signature("the signature is not base58 ed25519") from None
    if not sig.verify(pubkey, message.encode()):
        raise _bad_signature()
