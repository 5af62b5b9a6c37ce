"""The Solana deposit watcher: a fold of account balances read at the
configured commitment (``sol.commitment``, finalized by default).

Each step reads every deposit account in one batched ``getMultipleAccounts``
pass (100 per call; no per-address polling): each user's deposit wallet (SOL,
in lamports) and its associated token account per listed SPL mint (the
token amount). Only the node can move coins out of these accounts (it holds
their keys; its SOL sweeps are booked by this watcher's own step, see
``node.custody.sol_moves``), so a balance above what was credited so far is a
deposit: the difference is credited. A balance *below*
it can only come from a rollback (a commitment below ``finalized``): the
difference is reversed, with the same reorg-debt rule as the other chains
(``node.custody.deposits``). One ledger entry per change, numbered by the
observation's ``changes`` counter.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spl.token.constants import TOKEN_PROGRAM_ID
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from node.custody.deposits import credit_legs, reversal_legs
from node.custody.ledger import balance, post_entry, user_account
from node.db.models_custody import CustodyAddress, CustodyObservation
from node.errors import ChainError
from wallets.custody_keys import sol_token_account

log = logging.getLogger("escrowd.custody.sol")

TOKEN_PROGRAM = str(TOKEN_PROGRAM_ID)  # SPL Token


@dataclass(frozen=True, slots=True)
class Watched:
    account: str
    asset: str
    user_id: int
    mint: str | None  # None: the wallet's SOL


def token_amount(data: bytes, mint: str) -> int | None:
    """An SPL token account's amount if it holds ``mint`` (layout: mint 32,
    owner 32, amount u64 little-endian)."""
    from solders.pubkey import Pubkey

    if len(data) < 72 or bytes(Pubkey.from_string(mint)) != data[:32]:
        return None
    return int(struct.unpack_from("<Q", data, 64)[0])


class SolDepositWatcher:
    def __init__(
        self,
        client: Any,  # node.chains.sol.client.SolClient
        sessions: sessionmaker[Session],
        *,
        cluster: str,
        commitment: str,
        native: str,
        tokens: dict[str, str],  # symbol -> mint
        poll_interval_s: float,
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.chain = f"custody:sol:{cluster}"
        self.commitment = commitment
        self.native = native
        self.tokens = tokens
        self.poll_interval_s = poll_interval_s

    def watched(self, s: Session) -> list[Watched]:
        out: list[Watched] = []
        for a in s.scalars(select(CustodyAddress).where(CustodyAddress.chain == "sol")):
            out.append(Watched(a.address, self.native, a.user_id, None))
            for symbol, mint in sorted(self.tokens.items()):
                out.append(Watched(sol_token_account(a.address, mint), symbol, a.user_id, mint))
        return out

    def token_accounts_of(self, owner: str) -> list[str]:
        return [sol_token_account(owner, mint) for mint in self.tokens.values()]

    def read(self, items: list[Watched]) -> tuple[int, dict[tuple[str, str], int]]:
        """(slot, {(account, asset): balance}) at the commitment."""
        from solana.rpc.commitment import Commitment
        from solders.pubkey import Pubkey

        slot, states = self.client.accounts(
            [Pubkey.from_string(w.account) for w in items], Commitment(self.commitment)
        )
        out: dict[tuple[str, str], int] = {}
        for w, st in zip(items, states, strict=True):
            if st is None:
                amount = 0
            elif w.mint is None:
                amount = int(st.lamports)
            else:
                ok = str(st.owner) == TOKEN_PROGRAM
                amount = (token_amount(st.data, w.mint) or 0) if ok else 0
            out[(w.account, w.asset)] = amount
        return int(slot), out

    def step(self) -> list[str]:
        with self.sessions() as s:
            items = self.watched(s)
        if not items:
            return []
        slot, observed = self.read(items)
        changed: list[str] = []
        with self.sessions() as s, s.begin():
            rows = {
                (o.account, o.asset): o
                for o in s.scalars(
                    select(CustodyObservation)
                    .where(CustodyObservation.chain == self.chain)
                    .with_for_update()
                )
            }
            # our own sweeps out of these wallets, finalized by the slot read:
            # booked now, and no longer owed to the depositor's observation
            from node.custody.sol_moves import settle_sweeps

            for key, out in settle_sweeps(s, self.client, slot).items():
                swept = rows.get(key)
                if swept is not None:
                    swept.credited -= out
            for w in items:
                now = observed[(w.account, w.asset)]
                row = rows.get((w.account, w.asset))
                if row is None:
                    row = CustodyObservation(
                        chain=self.chain,
                        account=w.account,
                        asset=w.asset,
                        user_id=w.user_id,
                        credited=0,
                        changes=0,
                        slot=0,
                    )
                    s.add(row)
                if slot < row.slot or now == row.credited:
                    continue
                row.changes += 1
                ref = f"deposit:{self.chain}:{w.account}:{w.asset}:{row.changes}"
                if now > row.credited:
                    debt = balance(s, user_account(w.user_id, "debt"), w.asset)
                    legs = credit_legs(w.user_id, w.asset, now - row.credited, debt)
                    post_entry(s, ref=ref, kind="deposit", legs=legs)
                    changed.append(f"credit:{ref}")
                else:
                    avail = balance(s, user_account(w.user_id, "available"), w.asset)
                    legs = reversal_legs(w.user_id, w.asset, row.credited - now, avail)
                    post_entry(s, ref=ref, kind="deposit_reversal", legs=legs)
                    changed.append(f"reverse:{ref}")
                    log.warning(
                        "%s: %s %s fell to %d (rollback)", self.chain, w.account, w.asset, now
                    )
                row.credited = now
                row.slot = slot
        return changed

    def sync(self) -> list[str]:
        return self.step()

    def run(
        self, stop: threading.Event, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        while not stop.is_set():
            try:
                done = self.step()
                if done:
                    log.info("%s deposits: %s", self.chain, done)
            except ChainError as exc:
                log.warning("%s deposit watcher: %s", self.chain, exc.message)
                if on_error is not None:
                    on_error(exc)
            stop.wait(self.poll_interval_s)
