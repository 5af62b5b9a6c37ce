"""EIP-712 typed data of the Escrow contract's relayed instructions.

Exactly the types of contracts/README.md ("Relayed instructions"), domain
``name="escrowd"``, ``version="1"``, the chain id and the Escrow contract.
Each builder returns the JSON payload a wallet signs (MetaMask
``eth_signTypedData_v4``: uint256 values as decimal strings, bytes32 as
0x-hex, checksummed addresses) and its digest, computed by eth_account's
``encode_typed_data`` from that very payload (EIP-712 is never hand-rolled
here). The contract's ``action_digest``/``open_digest`` return the same
digest (tests/functional/test_evm_relayer.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.messages import SignableMessage, encode_typed_data
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

DOMAIN_NAME = "escrowd"
DOMAIN_VERSION = "1"

EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
ACTION_TYPE = [
    {"name": "id", "type": "bytes32"},
    {"name": "action", "type": "uint8"},
    {"name": "buyerBps", "type": "uint16"},
    {"name": "nonce", "type": "uint256"},
    {"name": "expiry", "type": "uint256"},
]
OPEN_TYPE = [
    {"name": "seller", "type": "address"},
    {"name": "ref", "type": "bytes32"},
    {"name": "buyer", "type": "address"},
    {"name": "arbitrator", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "paymentWindow", "type": "uint64"},
    {"name": "deadline", "type": "uint64"},
    {"name": "expiry", "type": "uint256"},
]


class ActionCode(IntEnum):
    MARK_PAID = 1  # buyer
    RELEASE = 2  # seller
    CANCEL = 3  # buyer
    DISPUTE = 4  # buyer or seller
    RESOLVE = 5  # arbitrator, uses buyerBps
    RECLAIM = 6  # seller
    SETTLE = 7  # buyer and seller both sign, uses buyerBps


@dataclass(frozen=True)
class TypedData:
    """A payload to sign and its EIP-712 digest."""

    payload: dict[str, Any]  # JSON for eth_signTypedData_v4

    @property
    def signable(self) -> SignableMessage:
        return encode_typed_data(full_message=self.payload)

    @property
    def digest(self) -> bytes:
        m = self.signable
        return keccak(b"\x19" + m.version + m.header + m.body)

    @property
    def digest_hex(self) -> str:
        return "0x" + self.digest.hex()


def _bytes32(value: str | bytes, what: str) -> str:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return "0x" + raw.hex()


def _uint(value: int, bits: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise ValueError(f"{what} must be a uint{bits}")
    return value


def domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": _uint(chain_id, 256, "chain_id"),
        "verifyingContract": to_checksum_address(contract),
    }


def action_typed_data(
    *,
    chain_id: int,
    contract: str,
    escrow_id: str | bytes,
    action: ActionCode | int,
    buyer_bps: int = 0,
    nonce: int,
    expiry: int,
) -> TypedData:
    """``Action(bytes32 id,uint8 action,uint16 buyerBps,uint256 nonce,uint256 expiry)``."""
    code = ActionCode(action)
    if buyer_bps and code not in (ActionCode.RESOLVE, ActionCode.SETTLE):
        raise ValueError(f"buyer_bps is only used by RESOLVE and SETTLE, not {code.name}")
    if not 0 <= buyer_bps <= 10_000:
        raise ValueError("buyer_bps must be in 0..10000")
    return TypedData(
        {
            "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "Action": ACTION_TYPE},
            "primaryType": "Action",
            "domain": domain(chain_id, contract),
            "message": {
                "id": _bytes32(escrow_id, "escrow_id"),
                "action": int(code),
                "buyerBps": _uint(buyer_bps, 16, "buyer_bps"),
                "nonce": str(_uint(nonce, 256, "nonce")),
                "expiry": str(_uint(expiry, 256, "expiry")),
            },
        }
    )


def open_typed_data(
    *,
    chain_id: int,
    contract: str,
    seller: str,
    ref: str | bytes,
    buyer: str,
    arbitrator: str,
    token: str,
    amount: int,
    payment_window: int,
    deadline: int,
    expiry: int,
) -> TypedData:
    """``Open(address seller,bytes32 ref,address buyer,address arbitrator,address token,
    uint256 amount,uint64 paymentWindow,uint64 deadline,uint256 expiry)``."""
    return TypedData(
        {
            "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "Open": OPEN_TYPE},
            "primaryType": "Open",
            "domain": domain(chain_id, contract),
            "message": {
                "seller": to_checksum_address(seller),
                "ref": _bytes32(ref, "ref"),
                "buyer": to_checksum_address(buyer),
                "arbitrator": to_checksum_address(arbitrator),
                "token": to_checksum_address(token),
                "amount": str(_uint(amount, 256, "amount")),
                "paymentWindow": _uint(payment_window, 64, "payment_window"),
                "deadline": _uint(deadline, 64, "deadline"),
                "expiry": str(_uint(expiry, 256, "expiry")),
            },
        }
    )


def recover_signer(typed: TypedData, signature: bytes | str) -> str:
    """The address that signed ``typed`` (checksummed)."""
    from eth_account import Account

    sig = bytes.fromhex(signature.removeprefix("0x")) if isinstance(signature, str) else signature
    return str(Account.recover_message(typed.signable, signature=sig))
