"""The Solana watcher: finds deposits into, and payouts out of, escrow token
accounts by watching those accounts (a wallet's own signature list misses its
token accounts' transfers).

One *step* is one database transaction:

1. the open escrows' token accounts are read with ``getMultipleAccounts`` (100
   per call) **at the configured commitment** (finalized by default);
2. for each account whose balance, owner, mint or existence differs from the
   stored observation, ``getSignaturesForAddress`` (same commitment, only
   signatures at or below the slot read) names the transactions, and
   ``getTransaction`` gives each one's pre/post token balances: a deposit
   (escrow balance up) or a payout (down, with what the buyer and the seller
   received). Each (escrow, signature) is stored once (``sol_movements``);
3. the new observation is stored and ``on_confirmed(session, chain,
   escrow_token_accounts, slot)`` recomputes those escrows
   (``node.sol_sync.refresh_sol_escrows``).

Dropped transactions: nothing below the commitment is ever read, so a
transaction that was processed but never reaches the commitment (dropped,
expired blockhash, a fork that lost) is never credited; and because the
escrow's state is the fold of the latest observation, a balance that is not
there at the commitment is simply not funded.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solana.rpc.commitment import Commitment
from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from node.chains.sol.client import AccountState, SolClient
from node.db.models import P2PEscrow, P2POrder, SolEscrow, SolMovement
from node.domain.escrow import TradeStatus
from node.errors import ChainError

log = logging.getLogger(__name__)

OnConfirmed = Callable[[Session, str, set[str], int], Any]
# Paid-out trades are not watched any more. Cancelled and expired ones still
# are: a late funding must be seen (the coins are then in escrow, and the fold
# shows the trade funded again).
_FINAL = [TradeStatus.COMPLETED.value, TradeStatus.REFUNDED.value, TradeStatus.RESOLVED.value]


@dataclass(frozen=True, slots=True)
class TokenAccount:
    mint: str
    owner: str
    amount: int


def parse_token_account(acct: AccountState | None, token_program: str) -> TokenAccount | None:
    """An SPL token account's mint, owner and amount (None if it is not one)."""
    if acct is None or str(acct.owner) != token_program or len(acct.data) < 165:
        return None
    if acct.data[108] == 0:  # AccountState::Uninitialized
        return None
    mint = str(Pubkey.from_bytes(acct.data[0:32]))
    owner = str(Pubkey.from_bytes(acct.data[32:64]))
    (amount,) = struct.unpack_from("<Q", acct.data, 64)
    return TokenAccount(mint, owner, int(amount))


@dataclass(frozen=True, slots=True)
class SolStepResult:
    slot: int
    watched: int
    changed: int
    movements: int


class SolWatcher:
    def __init__(
        self,
        client: SolClient,
        sessions: sessionmaker[Session],
        *,
        chain: str,
        commitment: str = "finalized",
        poll_interval_s: float = 1.0,
        on_confirmed: OnConfirmed | None = None,
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.chain = chain
        self.commitment = Commitment(commitment)
        self.poll_interval_s = poll_interval_s
        self.on_confirmed = on_confirmed

    def step(self) -> SolStepResult:
        with self.sessions() as session, session.begin():
            return self._step(session)

    def _step(self, s: Session) -> SolStepResult:
        rows = s.execute(
            select(SolEscrow, P2PEscrow)
            .join(P2PEscrow, P2PEscrow.id == SolEscrow.p2p_escrow_id)
            .join(P2POrder, P2POrder.id == P2PEscrow.p2p_order_id)
            .where(SolEscrow.chain == self.chain, P2POrder.status.not_in(_FINAL))
            .order_by(SolEscrow.id)
        ).all()
        if not rows:
            return SolStepResult(slot=-1, watched=0, changed=0, movements=0)
        keys = [Pubkey.from_string(sol.escrow_token_account) for sol, _e in rows]
        slot, accounts = self.client.accounts(keys, self.commitment)
        # Read everything from the chain first, write after: no database write
        # lock is held across RPC calls (SQLite has a single writer).
        updates: list[tuple[SolEscrow, tuple[bool, str | None, str | None, int],
                            list[SolMovement]]] = []
        for (sol, escrow), acct in zip(rows, accounts, strict=True):
            ta = parse_token_account(acct, sol.token_program)
            new = (
                acct is not None,
                ta.owner if ta else None,
                ta.mint if ta else None,
                ta.amount if ta else 0,
            )
            old = (sol.observed_exists, sol.observed_owner, sol.observed_mint,
                   sol.observed_amount)
            if sol.observed_slot is not None and new == old:
                continue
            moves = self._movements(s, sol, escrow, slot) if new != old else []
            updates.append((sol, new, moves))
        for sol, new, moves in updates:
            s.add_all(moves)
            sol.observed_slot = slot
            sol.observed_exists, sol.observed_owner, sol.observed_mint, sol.observed_amount = new
        changed = {sol.escrow_token_account for sol, _n, _m in updates}
        if changed and self.on_confirmed is not None:
            s.flush()
            self.on_confirmed(s, self.chain, changed, slot)
        return SolStepResult(slot=slot, watched=len(rows), changed=len(changed),
                             movements=sum(len(m) for _s, _n, m in updates))

    def _movements(
        self, s: Session, sol: SolEscrow, escrow: P2PEscrow, slot: int
    ) -> list[SolMovement]:
        """The committed transactions that moved the account's balance and are
        not stored yet (read only)."""
        known = set(
            s.scalars(select(SolMovement.signature).where(SolMovement.sol_escrow_id == sol.id))
        )
        key = Pubkey.from_string(sol.escrow_token_account)
        out: list[SolMovement] = []
        for info in reversed(self.client.signatures_for(key, self.commitment, limit=100)):
            if info.failed or info.slot > slot or info.signature in known:
                continue
            tx = self.client.transaction(info.signature, self.commitment)
            if tx is None:
                continue
            move = _movement_of(tx, sol, escrow)
            if move is None:
                continue
            amount_in, amount_out, to_buyer, to_seller, closed = move
            out.append(SolMovement(
                sol_escrow_id=sol.id, signature=info.signature, slot=info.slot,
                amount_in=amount_in, amount_out=amount_out, to_buyer=to_buyer,
                to_seller=to_seller, closed=closed,
            ))
            known.add(info.signature)
        return out

    def sync(self) -> SolStepResult:
        return self.step()

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                self.step()
                backoff = 0.5
            except (ChainError, SQLAlchemyError, OSError) as exc:
                log.warning("%s watcher step failed: %r; retrying in %.1fs", self.chain, exc,
                            backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            stop.wait(self.poll_interval_s)


def _movement_of(
    tx: Any, sol: SolEscrow, escrow: P2PEscrow
) -> tuple[int, int, int, int, bool] | None:
    """(in, out, to buyer, to seller, closed) of one transaction for the escrow
    account, from its pre/post token balances; None if the balance did not move."""
    meta = tx.transaction.meta
    if meta is None or meta.err is not None:
        return None
    keys = [str(k) for k in tx.transaction.transaction.message.account_keys]
    if sol.escrow_token_account not in keys:
        return None
    idx = keys.index(sol.escrow_token_account)

    def balances(items: Any) -> dict[int, tuple[str, str, int]]:
        out = {}
        for b in items or []:
            out[int(b.account_index)] = (str(b.mint), str(b.owner), int(b.ui_token_amount.amount))
        return out

    pre, post = balances(meta.pre_token_balances), balances(meta.post_token_balances)
    before = pre[idx][2] if idx in pre else 0
    after = post[idx][2] if idx in post else 0
    closed = idx in pre and idx not in post
    if before == after and not closed:
        return None
    if after > before:
        return after - before, 0, 0, 0, False
    to_buyer = to_seller = 0
    for i, (mint, owner, amount) in post.items():
        if i == idx or mint != sol.mint:
            continue
        gained = amount - (pre[i][2] if i in pre else 0)
        if gained <= 0:
            continue
        if owner == escrow.buyer_address:
            to_buyer += gained
        elif owner == escrow.seller_address:
            to_seller += gained
    return 0, before - after, to_buyer, to_seller, closed
