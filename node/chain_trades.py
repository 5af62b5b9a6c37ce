"""The chain-specific half of a trade, behind one interface per chain family.

The API and the marketplace services are chain-agnostic; for each currency's
``chain`` ("evm", later "btc" and "sol") a ``TradeChain`` opens the escrow of a
matched trade, says how the seller funds it from their own wallet, builds what
a party signs for an action, and takes the signed action to the chain. The
registry is an explicit mapping filled at start-up by configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from node.db.models import CryptoCurrency, P2PEscrow, P2POrder, User
from node.domain.escrow import Action, EscrowView
from node.errors import ValidationError


@dataclass(frozen=True)
class SignRequest:
    """What a party signs for an action (e.g. an EIP-712 payload)."""

    action: Action
    payload: dict[str, Any]
    digest: str
    expiry: int
    nonce: int


@dataclass(frozen=True)
class Submitted:
    """An action taken to the chain: a relay job, or a transaction id."""

    kind: str  # "relay_job"
    ref: str
    status: str


class TradeChain(Protocol):
    family: str

    def currencies(self) -> list[dict[str, Any]]:
        """Currency specs (name, symbol, network, decimals, contract) to list."""
        ...

    def open_escrow(
        self,
        session: Session,
        *,
        trade: P2POrder,
        currency: CryptoCurrency,
        arbitrator_address: str | None,
        now: datetime,
    ) -> P2PEscrow: ...

    def validate_address(self, address: str, *, field: str) -> str: ...

    def funding_instructions(
        self, escrow: P2PEscrow, currency: CryptoCurrency
    ) -> dict[str, Any]: ...

    def escrow_view(self, escrow: P2PEscrow) -> EscrowView:
        """The escrow as the chain says now (head, not only confirmed)."""
        ...

    def sign_request(
        self, escrow: P2PEscrow, action: Action, *, buyer_bps: int = 0
    ) -> SignRequest: ...

    def submit_signed(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        action: Action,
        buyer_bps: int,
        expiry: int,
        signatures: list[str],
        requested_by: User,
    ) -> Submitted: ...

    def agent_rule(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        buyer_bps: int,
        requested_by: User,
    ) -> Submitted:
        """The node's arbitration agent signs a ruling (under the signing
        journal) and submits it."""
        ...


class ChainRegistry:
    """The configured chain families, by name."""

    def __init__(self, chains: dict[str, TradeChain] | None = None) -> None:
        self._chains: dict[str, TradeChain] = dict(chains or {})

    def register(self, chain: TradeChain) -> None:
        self._chains[chain.family] = chain

    def get(self, family: str) -> TradeChain:
        try:
            return self._chains[family]
        except KeyError:
            raise ValidationError(
                f"chain {family!r} is not enabled on this node", code="chain_not_enabled"
            ) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._chains.values())
