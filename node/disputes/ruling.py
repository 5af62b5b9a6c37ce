"""The arbitrator's signed ruling: an EIP-712 message (eth-account) binding
the dispute, its trade, the trade's chain and escrow, the buyer's share, the
hash of the reasons and the moment of signing.

The node verifies the signature against the arbitrator's registered EVM
address before it co-signs the payout on the trade's chain (on any chain:
the ruling is an off-chain statement, the payout is the chain's own).
Pure: no database, no network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from node.errors import SigningError, ValidationError

DOMAIN = {"name": "escrowd arbitration", "version": "1"}
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
    ],
    "Ruling": [
        {"name": "disputeId", "type": "uint256"},
        {"name": "tradeId", "type": "uint256"},
        {"name": "chain", "type": "string"},
        {"name": "escrow", "type": "string"},
        {"name": "buyerBps", "type": "uint16"},
        {"name": "reasonHash", "type": "bytes32"},
        {"name": "timestamp", "type": "uint64"},
    ],
}


@dataclass(frozen=True)
class RulingTerms:
    dispute_id: int
    trade_id: int
    chain: str  # "evm:31337", "btc:regtest", "sol:local"
    escrow: str  # the on-chain escrow id / address
    buyer_bps: int
    reason_hash: str  # 0x + 64 hex
    timestamp: int  # unix seconds


def reason_hash(notes: str) -> str:
    """SHA-256 of the ruling's reasons (UTF-8), as 0x-hex bytes32."""
    return "0x" + hashlib.sha256(notes.encode("utf-8")).hexdigest()


def typed_data(terms: RulingTerms) -> dict[str, Any]:
    """The EIP-712 payload an arbitrator's wallet signs (eth_signTypedData_v4)."""
    if not 0 <= terms.buyer_bps <= 10_000:
        raise ValidationError("buyer_bps must be between 0 and 10000", field="buyer_bps")
    return {
        "types": TYPES,
        "primaryType": "Ruling",
        "domain": dict(DOMAIN),
        "message": {
            "disputeId": terms.dispute_id,
            "tradeId": terms.trade_id,
            "chain": terms.chain,
            "escrow": terms.escrow,
            "buyerBps": terms.buyer_bps,
            "reasonHash": terms.reason_hash,
            "timestamp": terms.timestamp,
        },
    }


def digest(terms: RulingTerms) -> str:
    """The EIP-712 hash that is signed (0x-hex)."""
    msg = encode_typed_data(full_message=typed_data(terms))
    return "0x" + keccak(b"\x19" + msg.version + msg.header + msg.body).hex()


def sign(terms: RulingTerms, private_key: str) -> str:
    """What an arbitrator's wallet does (tests and demos play arbitrators)."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data(terms)), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(terms: RulingTerms, signature: str) -> str:
    """The address that signed ``terms`` (checksummed)."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise ValidationError("a signature is 65 bytes of hex", field="ruling_signature") from None
    if len(raw) != 65:
        raise ValidationError("a signature is 65 bytes of hex", field="ruling_signature")
    try:
        address: str = Account.recover_message(
            encode_typed_data(full_message=typed_data(terms)), signature=raw
        )
    except Exception as exc:  # eth-keys raises several types for bad r/s/v
        raise SigningError(
            "the ruling signature is not valid", code="bad_ruling_signature"
        ) from exc
    return address


def verify(terms: RulingTerms, signature: str, *, arbitrator_address: str) -> None:
    """Refuse a ruling not signed by the arbitrator's registered key."""
    signer = recover(terms, signature)
    if signer.lower() != arbitrator_address.lower():
        raise SigningError(
            "the ruling is not signed by the arbitrator's registered key",
            code="bad_ruling_signature",
            signer=signer,
        )


def check_fresh(timestamp: int, *, now: int, max_age_s: int, max_skew_s: int) -> None:
    """A ruling signed long ago, or in the future, is refused."""
    if timestamp > now + max_skew_s:
        raise ValidationError(
            "the ruling's timestamp is in the future", code="ruling_timestamp", field="timestamp"
        )
    if timestamp < now - max_age_s:
        raise ValidationError(
            f"the ruling was signed more than {max_age_s} s ago; sign it again",
            code="ruling_timestamp",
            field="timestamp",
        )
