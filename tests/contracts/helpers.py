"""Helpers for the Escrow contract suite: state and action codes, time
travel, EIP-712 signing with eth-account, assets (native coin or token) and
an escrow opener. Imported by conftest.py and the test modules."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ape import chain
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak

# ----------------------------------------------------------------- constants

FUNDED, PAID, DISPUTED, RELEASED, REFUNDED, RESOLVED = 1, 2, 3, 4, 5, 6
MARK_PAID, RELEASE, CANCEL, DISPUTE, RESOLVE, RECLAIM, SETTLE = 1, 2, 3, 4, 5, 6, 7
REASON_CANCEL, REASON_RECLAIM = 1, 2
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# Transactions whose outcome depends on the block time are sent with a fixed
# gas limit: ape's gas estimation runs at the latest block's time, not at the
# timestamp set for the next block.
TIMED_GAS = 1_000_000

ACTION_TYPES = {
    "Action": [
        {"name": "id", "type": "bytes32"},
        {"name": "action", "type": "uint8"},
        {"name": "buyerBps", "type": "uint16"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ]
}
OPEN_TYPES = {
    "Open": [
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
}
PERMIT_TYPES = {
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}

_refs = itertools.count(1)


def new_ref() -> bytes:
    return next(_refs).to_bytes(32, "big")


def addr(who: Any) -> str:
    return who if isinstance(who, str) else who.address


def now() -> int:
    return chain.blocks.head.timestamp


def next_block_at(timestamp: int) -> dict[str, int]:
    """Makes the next block carry `timestamp`; returns the kwargs for the
    transaction that must land in it."""
    chain.pending_timestamp = timestamp
    return {"gas": TIMED_GAS}


# ------------------------------------------------------------------ signing


def digest(signable: SignableMessage) -> bytes:
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def escrow_domain(escrow: Any, chain_id: int | None = None, contract: str | None = None) -> dict:
    return {
        "name": "escrowd",
        "version": "1",
        "chainId": chain.chain_id if chain_id is None else chain_id,
        "verifyingContract": contract or escrow.address,
    }


def action_message(
    escrow: Any,
    id_: bytes,
    action: int,
    buyer_bps: int,
    nonce: int,
    expiry: int,
    *,
    chain_id: int | None = None,
    contract: str | None = None,
) -> SignableMessage:
    return encode_typed_data(
        domain_data=escrow_domain(escrow, chain_id, contract),
        message_types=ACTION_TYPES,
        message_data={
            "id": id_,
            "action": action,
            "buyerBps": buyer_bps,
            "nonce": nonce,
            "expiry": expiry,
        },
    )


def sign(account: Any, signable: SignableMessage) -> bytes:
    return bytes(Account.sign_message(signable, account.private_key).signature)


def sign_action(
    account: Any,
    escrow: Any,
    id_: bytes,
    action: int,
    buyer_bps: int = 0,
    nonce: int | None = None,
    expiry: int | None = None,
    **domain: Any,
) -> tuple[bytes, int]:
    """The account's signature over an Action at the escrow's current nonce
    (unless given); returns (signature, expiry)."""
    if nonce is None:
        nonce = escrow.escrows(id_).nonce
    if expiry is None:
        expiry = now() + 3600
    msg = action_message(escrow, id_, action, buyer_bps, nonce, expiry, **domain)
    return sign(account, msg), expiry


def open_message(escrow: Any, **fields: Any) -> SignableMessage:
    return encode_typed_data(
        domain_data=escrow_domain(escrow), message_types=OPEN_TYPES, message_data=fields
    )


def sign_permit(owner: Any, token: Any, spender: str, value: int, deadline: int) -> tuple:
    """(v, r, s) of an EIP-2612 permit for a TestToken."""
    msg = encode_typed_data(
        domain_data={
            "name": token.name(),
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": token.address,
        },
        message_types=PERMIT_TYPES,
        message_data={
            "owner": owner.address,
            "spender": spender,
            "value": value,
            "nonce": token.nonces(owner.address),
            "deadline": deadline,
        },
    )
    signed = Account.sign_message(msg, owner.private_key)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def high_s(signature: bytes) -> bytes:
    """The malleable twin of a valid signature (s -> n - s, v flipped)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


# ------------------------------------------------------------------- assets


@dataclass
class Asset:
    """The native coin (token None) or an ERC-20 test token."""

    kind: str
    token: Any = None

    @property
    def address(self) -> str:
        return self.token.address if self.token is not None else ZERO_ADDRESS

    @property
    def native(self) -> bool:
        return self.token is None

    def balance(self, who: Any) -> int:
        if self.token is None:
            return chain.provider.get_balance(addr(who))
        return self.token.balanceOf(addr(who))

    def fund(self, seller: Any, escrow: Any, amount: int) -> None:
        """Gives `seller` `amount` tokens and approves `escrow` for exactly them."""
        if self.token is not None:
            self.token.mint(seller, amount, sender=seller)
            self.token.approve(escrow, amount, sender=seller)


@dataclass
class Parties:
    owner: Any
    seller: Any
    buyer: Any
    arbitrator: Any
    outsider: Any
    fee_recipient: Any
    relayer: Any
    fresh: Any  # holds no tokens and approved nothing


class Opener:
    """Opens escrows with sensible defaults. The sellers it uses (`seller`,
    `outsider`) hold every test token and approved the escrow at setup."""

    def __init__(self, escrow: Any, parties: Parties) -> None:
        self.escrow = escrow
        self.p = parties

    def __call__(
        self,
        asset: Asset,
        amount: int = 1_000_000,
        *,
        seller: Any = None,
        buyer: Any = None,
        arbitrator: Any = None,
        window: int = 3600,
        dispute_period: int = 7200,
        ref: bytes | None = None,
    ) -> bytes:
        seller = seller or self.p.seller
        buyer = buyer or self.p.buyer
        arbitrator = arbitrator or self.p.arbitrator
        ref = ref or new_ref()
        deadline = now() + window + dispute_period
        self.escrow.open(
            ref,
            buyer,
            arbitrator,
            asset.address,
            amount,
            window,
            deadline,
            sender=seller,
            value=amount if asset.native else 0,
        )
        return self.escrow.escrow_id(seller, ref)


PREFUNDED = 10**30


def prefund(escrow: Any, tokens: list[Any], accounts: list[Any]) -> None:
    """Mints PREFUNDED of each token to each account and approves `escrow`
    without limit, so opening an escrow in a test costs one transaction."""
    for token in tokens:
        for account in accounts:
            token.mint(account, PREFUNDED, sender=account)
            token.approve(escrow, 2**256 - 1, sender=account)
