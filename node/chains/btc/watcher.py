"""The Bitcoin watcher: follows blocks, mirrors escrow deposits and spends
into the database (node/indexer.py), counts confirmations, handles reorgs.

The step logic (one database transaction per step: reorg check against the
stored blocks — so a reorg that happened while the node was down is found by
the first step —, rollback to the common ancestor, a range of new blocks,
``on_confirmed`` for escrows whose events became confirmed or were rolled
back, a halt on a reorg deeper than ``finality_depth``) is the EVM watcher's,
unchanged: only where events come from differs. Here they come from whole
blocks (``getblock`` verbosity 2) matched against the set of watched escrow
scripts (``BtcAdapter.scan_block``), so the cost per block does not grow with
the number of escrows and no address is polled.

The watched set is loaded from ``btc_escrows`` at the start of every step,
incrementally (rows with a higher id than seen so far): a new escrow is
watched from the next step on. Known escrow outputs (for spends) are loaded
from the stored ``Deposit`` events once, then kept by the adapter.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from node.chains.btc.adapter import BtcAdapter
from node.chains.evm.watcher import EvmWatcher, OnConfirmed, StepResult
from node.db.models import BtcEscrow, ChainEvent

log = logging.getLogger(__name__)

__all__ = ["BtcWatcher", "StepResult"]


class BtcWatcher(EvmWatcher):
    adapter: BtcAdapter  # type: ignore[assignment]

    def __init__(
        self,
        adapter: BtcAdapter,
        sessions: sessionmaker[Session],
        *,
        start_block: int = 0,
        confirmations: int = 1,
        finality_depth: int = 100,
        block_range: int = 50,
        poll_interval_s: float = 1.0,
        on_confirmed: OnConfirmed | None = None,
    ) -> None:
        super().__init__(
            adapter,  # type: ignore[arg-type]
            sessions,
            start_block=start_block,
            confirmations=confirmations,
            finality_depth=finality_depth,
            log_range=block_range,
            poll_interval_s=poll_interval_s,
            on_confirmed=on_confirmed,
            use_websocket=False,
        )
        self._last_escrow_id = 0
        self._outpoints_loaded = False

    @classmethod
    def from_btc_settings(
        cls,
        adapter: BtcAdapter,
        sessions: sessionmaker[Session],
        settings: Any,
        *,
        start_block: int,
        on_confirmed: OnConfirmed | None = None,
    ) -> BtcWatcher:
        """From ``node.config.BtcSettings``."""
        return cls(
            adapter,
            sessions,
            start_block=start_block,
            confirmations=settings.confirmations,
            finality_depth=settings.finality_depth,
            poll_interval_s=settings.poll_interval_ms / 1000,
            on_confirmed=on_confirmed,
        )

    def refresh_watched(self, s: Session) -> int:
        """Add escrows created since the last call to the watched set; returns
        how many were added."""
        rows = s.execute(
            select(BtcEscrow.id, BtcEscrow.script_pubkey, BtcEscrow.address)
            .where(BtcEscrow.id > self._last_escrow_id)
            .order_by(BtcEscrow.id)
        ).all()
        if rows:
            self.adapter.watch((spk, addr) for _i, spk, addr in rows)
            self._last_escrow_id = int(rows[-1][0])
        if not self._outpoints_loaded:
            deps = s.execute(
                select(ChainEvent.args, ChainEvent.escrow_key).where(
                    ChainEvent.chain == self.chain, ChainEvent.name == "Deposit")
            ).all()
            self.adapter.watch_outpoints(
                (f"{a['txid']}:{a['vout']}", key) for a, key in deps)
            self._outpoints_loaded = True
        return len(rows)

    def _step(self, s: Session, hint: Any = None) -> StepResult | str:
        # ``hint``: a websocket head announcement (EVM); bitcoind has none, the
        # base step polls when it is None
        self.refresh_watched(s)
        if hint is None:
            return super()._step(s)
        return super()._step(s, hint)  # type: ignore[call-arg,unused-ignore]
