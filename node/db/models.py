"""SQLAlchemy 2 models: the marketplace tables of the seed (names kept where
they fit) and the node's chain mirror (blocks, events, cursors), signing journal
and relay queue.

Amounts on chain are integers in base units (``BaseUnits``); fiat prices are
decimals. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from node.db.types import BaseUnits, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON}


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- marketplace ---------------------------------------------------------


class User(Timestamps, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="trader")  # trader|arbitrator|admin
    # sha256 of the bearer token; the token itself is shown once and never stored.
    api_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    evm_address: Mapped[str | None] = mapped_column(String(42))


class CryptoCurrency(Timestamps, Base):
    __tablename__ = "crypto_currencies"
    __table_args__ = (UniqueConstraint("chain", "network", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(16))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric(36, 8))
    market_cap: Mapped[Decimal | None] = mapped_column(Numeric(36, 2))
    logo_url: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    chain: Mapped[str] = mapped_column(String(8))  # evm | btc | sol
    network: Mapped[str] = mapped_column(String(32))  # e.g. EVM chain id "31337"
    # Token contract / mint; None for the chain's native coin.
    contract_address: Mapped[str | None] = mapped_column(String(64))
    decimals: Mapped[int] = mapped_column(Integer)


class P2POrder(Timestamps, Base):
    """An ad (``kind='ad'``: a sell offer with min/max amounts) or a trade
    (``kind='trade'``: one match of an ad by a buyer, with its escrow).

    The seed keeps one row per order with seller and buyer; an ad that is matched
    several times for parts of its amount gives one trade row per match
    (``parent_id`` points at the ad), so the seed's per-order endpoints
    (/payment, /dispute, /release-escrow) act on the trade."""

    __tablename__ = "p2p_crypto_orders"
    __table_args__ = (
        Index("ix_p2p_orders_listing", "kind", "status", "crypto_currency_id"),
        # the order book: equality on the filters, then already in price order
        Index(
            "ix_p2p_orders_book",
            "kind", "status", "crypto_currency_id", "fiat_currency", "price_per_unit", "id",
        ),
        Index("ix_p2p_orders_seller", "seller_id", "kind"),
        # a user's orders newest first, per side (node.trades.my_orders)
        Index("ix_p2p_orders_seller_id", "seller_id", "id"),
        Index("ix_p2p_orders_buyer_id", "buyer_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # ad | trade
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("p2p_crypto_orders.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    buyer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    crypto_currency_id: Mapped[int] = mapped_column(ForeignKey("crypto_currencies.id"))
    order_type: Mapped[str] = mapped_column(String(8), default="sell")
    amount: Mapped[int] = mapped_column(BaseUnits)
    min_amount: Mapped[int | None] = mapped_column(BaseUnits)
    max_amount: Mapped[int | None] = mapped_column(BaseUnits)
    remaining_amount: Mapped[int | None] = mapped_column(BaseUnits)
    price_per_unit: Mapped[Decimal] = mapped_column(Numeric(36, 8))
    fiat_currency: Mapped[str] = mapped_column(String(8))
    total_amount: Mapped[Decimal | None] = mapped_column(Numeric(36, 8))
    payment_method: Mapped[str | None] = mapped_column(String(64))
    payment_methods: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(24))
    seller_address: Mapped[str | None] = mapped_column(String(128))
    buyer_address: Mapped[str | None] = mapped_column(String(128))
    matched_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    terms_and_conditions: Mapped[str | None] = mapped_column(Text)
    additional_notes: Mapped[str | None] = mapped_column(Text)
    crypto_transaction_id: Mapped[str | None] = mapped_column(String(128))
    payment_transaction_id: Mapped[str | None] = mapped_column(String(128))

    # inner join: every order has a currency, and PostgreSQL allows FOR UPDATE on it
    currency: Mapped[CryptoCurrency] = relationship(lazy="joined", innerjoin=True)
    # joined: every view of a trade shows its escrow (one query, not two)
    escrow: Mapped[P2PEscrow | None] = relationship(
        back_populates="order", uselist=False, lazy="joined"
    )


class P2PEscrow(Timestamps, Base):
    """The on-chain escrow of one trade, mirrored from indexed chain events."""

    __tablename__ = "p2p_crypto_escrows"
    __table_args__ = (UniqueConstraint("chain", "network", "escrow_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    p2p_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_orders.id"), unique=True)
    chain: Mapped[str] = mapped_column(String(8))
    network: Mapped[str] = mapped_column(String(32))
    contract_address: Mapped[str | None] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(66))  # the node's trade reference (bytes32 hex)
    escrow_key: Mapped[str] = mapped_column(String(128))  # on-chain escrow id / address
    token_address: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BaseUnits)
    funded_amount: Mapped[int] = mapped_column(BaseUnits, default=0)
    seller_address: Mapped[str] = mapped_column(String(128))
    buyer_address: Mapped[str] = mapped_column(String(128))
    arbitrator_address: Mapped[str] = mapped_column(String(128))
    fee_bps: Mapped[int] = mapped_column(Integer, default=0)
    payment_window_s: Mapped[int] = mapped_column(Integer)
    payment_deadline: Mapped[int | None] = mapped_column(BigInteger)  # unix seconds, from chain
    deadline: Mapped[int] = mapped_column(BigInteger)  # unix seconds
    # Escrow state as the confirmed chain events say (domain.escrow.EscrowState).
    status: Mapped[str] = mapped_column(String(24), default="awaiting_funding")
    funded_tx: Mapped[str | None] = mapped_column(String(128))
    funded_block: Mapped[int | None] = mapped_column(BigInteger)
    payout_tx: Mapped[str | None] = mapped_column(String(128))
    buyer_bps: Mapped[int | None] = mapped_column(Integer)
    crypto_transaction_id: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[datetime | None]
    refunded_at: Mapped[datetime | None]
    release_notes: Mapped[str | None] = mapped_column(Text)
    refund_notes: Mapped[str | None] = mapped_column(Text)

    order: Mapped[P2POrder] = relationship(back_populates="escrow")


class P2PDispute(Timestamps, Base):
    __tablename__ = "p2p_crypto_trade_disputes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    p2p_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_orders.id"), index=True)
    initiator_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    arbitrator_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dispute_type: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    buyer_bps: Mapped[int | None] = mapped_column(Integer)
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]


# --- chain mirror --------------------------------------------------------


class ChainBlock(Base):
    """Blocks the watcher has indexed: number, hash, parent (reorg detection)."""

    __tablename__ = "chain_blocks"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)  # e.g. "evm:31337"
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class ChainCursor(Base):
    """Where a chain's watcher is; ``halted`` is set when it stopped on purpose
    (a reorg deeper than the configured finality) and needs an operator."""

    __tablename__ = "chain_cursors"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    head_number: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(66))
    halted: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChainEvent(Base):
    """An escrow-relevant event as indexed from a block. Removed on reorg."""

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("chain", "block_number", "log_index"),
        Index("ix_chain_events_escrow", "chain", "escrow_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    escrow_key: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)


# --- signing and relaying ------------------------------------------------


class SigningJournal(Base):
    """Invariant I5: one row per (escrow, kind of decision). The unique
    constraint makes a second, conflicting decision fail in the same
    transaction that would record it, across processes and restarts."""

    __tablename__ = "signing_journal"
    __table_args__ = (UniqueConstraint("chain", "escrow_key", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))
    escrow_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # payout
    decision: Mapped[str] = mapped_column(String(32))  # release | refund | split:<bps>
    payload_hash: Mapped[str] = mapped_column(String(66))
    signature: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RelayJob(Timestamps, Base):
    """A signed instruction the node submits and pays gas for.

    ``instruction_hash`` is unique: one instruction is never queued twice. The
    signed raw transaction is stored before it is broadcast, so after a crash
    the same transaction (same sender nonce) is re-broadcast, never a new one."""

    __tablename__ = "relay_jobs"
    __table_args__ = (Index("ix_relay_jobs_status", "chain", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))
    escrow_key: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    instruction_hash: Mapped[str] = mapped_column(String(66), unique=True)
    instruction: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    sender: Mapped[str | None] = mapped_column(String(42))
    sender_nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    tx_hashes: Mapped[list[str]] = mapped_column(JSON, default=list)
    raw_tx: Mapped[str | None] = mapped_column(Text)
    max_fee_per_gas: Mapped[int | None] = mapped_column(BaseUnits)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None]
    confirmed_block: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)


# --- bitcoin -------------------------------------------------------------


class BtcPartyKeys(Base):
    """The public keys a trader brought for a Bitcoin ad (the seller's
    multisig key and refund key) or trade (the buyer's key). Key expressions:
    a plain pubkey or ``[fp/path]xpub/child``; never a private key."""

    __tablename__ = "btc_party_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    p2p_order_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_orders.id"), unique=True)
    seller_key: Mapped[str | None] = mapped_column(Text)
    seller_refund_key: Mapped[str | None] = mapped_column(Text)
    buyer_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BtcEscrow(Timestamps, Base):
    """The P2WSH escrow of one Bitcoin trade: its descriptor and keys, the
    payout addresses, the fold of its confirmed deposits and spends, and the
    payout the node is assembling or has broadcast."""

    __tablename__ = "btc_escrows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    p2p_escrow_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_escrows.id"), unique=True)
    address: Mapped[str] = mapped_column(String(128), unique=True)
    script_pubkey: Mapped[str] = mapped_column(String(68))
    descriptor: Mapped[str] = mapped_column(Text)
    witness_script: Mapped[str] = mapped_column(Text)
    csv_blocks: Mapped[int] = mapped_column(Integer)
    buyer_key: Mapped[str] = mapped_column(Text)
    seller_key: Mapped[str] = mapped_column(Text)
    seller_refund_key: Mapped[str] = mapped_column(Text)
    arbitrator_key: Mapped[str] = mapped_column(Text)
    buyer_payout_address: Mapped[str] = mapped_column(String(128))
    seller_payout_address: Mapped[str] = mapped_column(String(128))
    # the fold of confirmed chain events (node.domain.btc_escrow)
    deposited_sat: Mapped[int] = mapped_column(BigInteger, default=0)
    unspent_sat: Mapped[int] = mapped_column(BigInteger, default=0)
    extra_sat: Mapped[int] = mapped_column(BigInteger, default=0)
    deposit_count: Mapped[int] = mapped_column(Integer, default=0)
    deposits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    funded_height: Mapped[int | None] = mapped_column(BigInteger)
    spent_txid: Mapped[str | None] = mapped_column(String(64))
    # the payout being assembled / broadcast
    payout_kind: Mapped[str | None] = mapped_column(String(24))
    payout_buyer_bps: Mapped[int | None] = mapped_column(Integer)
    payout_psbt: Mapped[str | None] = mapped_column(Text)
    payout_txid: Mapped[str | None] = mapped_column(String(64))
    payout_raw: Mapped[str | None] = mapped_column(Text)
    payout_fee_sat: Mapped[int | None] = mapped_column(BigInteger)
    payout_vsize: Mapped[int | None] = mapped_column(Integer)
    payout_broadcast_at: Mapped[datetime | None]
    # RBF fee ladder: party-signed higher-fee rungs and bump state (node/btc_bumps.py)
    payout_ladder: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # watchtower: the seller's signed timelock refund, broadcast at maturity
    watchtower_psbt: Mapped[str | None] = mapped_column(Text)
    watchtower_txid: Mapped[str | None] = mapped_column(String(64))


# --- Solana escrows (node/sol_trades.py, node/chains/sol/) -----------------


class SolEscrow(Timestamps, Base):
    """A trade's Solana escrow: the 2-of-3 SPL Token multisig and the escrow
    token account it owns (both derived with seeds from the seller's key), and
    what the watcher last saw of that account at the configured commitment."""

    __tablename__ = "sol_escrows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    p2p_escrow_id: Mapped[int] = mapped_column(ForeignKey("p2p_crypto_escrows.id"), unique=True)
    chain: Mapped[str] = mapped_column(String(32))  # "sol:<cluster>"
    genesis_hash: Mapped[str] = mapped_column(String(64))
    trade_ref: Mapped[str] = mapped_column(String(66))
    mint: Mapped[str] = mapped_column(String(64))
    decimals: Mapped[int] = mapped_column(Integer)
    token_program: Mapped[str] = mapped_column(String(64))
    multisig: Mapped[str] = mapped_column(String(64))
    escrow_token_account: Mapped[str] = mapped_column(String(64), unique=True)
    multisig_seed: Mapped[str] = mapped_column(String(32))
    escrow_seed: Mapped[str] = mapped_column(String(32))
    # the escrow token account at the commitment, as the watcher last read it
    observed_slot: Mapped[int | None] = mapped_column(BigInteger)
    observed_exists: Mapped[bool] = mapped_column(Boolean, default=False)
    observed_owner: Mapped[str | None] = mapped_column(String(64))
    observed_mint: Mapped[str | None] = mapped_column(String(64))
    observed_amount: Mapped[int] = mapped_column(BaseUnits, default=0)
    # off-chain facts, each signed by the party's own key (ed25519, base58)
    buyer_paid_signature: Mapped[str | None] = mapped_column(String(100))
    buyer_paid_at: Mapped[datetime | None]
    dispute_signature: Mapped[str | None] = mapped_column(String(100))
    disputed_at: Mapped[datetime | None]


class SolMovement(Base):
    """A transaction that changed an escrow token account's balance, as seen at
    the configured commitment (deposit in, or payout out with its recipients)."""

    __tablename__ = "sol_movements"
    __table_args__ = (UniqueConstraint("sol_escrow_id", "signature"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sol_escrow_id: Mapped[int] = mapped_column(ForeignKey("sol_escrows.id"), index=True)
    signature: Mapped[str] = mapped_column(String(100))
    slot: Mapped[int] = mapped_column(BigInteger)
    amount_in: Mapped[int] = mapped_column(BaseUnits, default=0)
    amount_out: Mapped[int] = mapped_column(BaseUnits, default=0)
    to_buyer: Mapped[int] = mapped_column(BaseUnits, default=0)
    to_seller: Mapped[int] = mapped_column(BaseUnits, default=0)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SolPayout(Timestamps, Base):
    """One rendering of a payout intent (release / refund / split) at one
    blockhash, collecting its signatures. When the blockhash expires the node
    renders the same intent again (a new row) and the parties sign again."""

    __tablename__ = "sol_payouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sol_escrow_id: Mapped[int] = mapped_column(ForeignKey("sol_escrows.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # release | refund | split
    buyer_bps: Mapped[int | None] = mapped_column(Integer)
    cosigners: Mapped[str] = mapped_column(String(200))  # two base58 keys, comma-separated
    blockhash: Mapped[str] = mapped_column(String(64))
    last_valid_block_height: Mapped[int] = mapped_column(BigInteger)
    transaction: Mapped[str] = mapped_column(Text)  # base64, signatures so far
    status: Mapped[str] = mapped_column(String(16), default="collecting")
    tx_signature: Mapped[str | None] = mapped_column(String(100))


# Tables of later slices live in their own modules; importing them here puts them
# in Base.metadata (migrations, create_all) whatever the caller imported first.
from node.db import (  # noqa: E402,F401
    models_accounts,
    models_custody,
    models_disputes_ext,
    models_jobs,
    models_market,
    models_trading,
)
