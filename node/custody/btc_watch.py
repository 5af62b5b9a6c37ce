"""The Bitcoin deposit watcher: the escrow watcher's block-following logic
(reorg check first, rollback, confirmations, finality halt; node/chains/btc)
under its own chain key ``custody:btc:<network>``, with the set of watched
scripts being every user's deposit address. Each block is read once and every
output's script looked up in that set: one pass finds the payments to all
deposit addresses at once, no address is polled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from node.chains.btc.adapter import BtcAdapter
from node.chains.btc.rpc import BitcoinRpc
from node.chains.btc.watcher import BtcWatcher
from node.chains.evm.watcher import OnConfirmed
from node.db.models import ChainEvent
from node.db.models_custody import CustodyAddress


class CustodyBtcAdapter(BtcAdapter):
    def __init__(self, rpc: BitcoinRpc, *, network: str) -> None:
        super().__init__(rpc, network=network)
        self._chain_key = f"custody:btc:{network}"


class CustodyBtcWatcher(BtcWatcher):
    adapter: CustodyBtcAdapter

    def __init__(
        self, adapter: CustodyBtcAdapter, sessions: sessionmaker[Session], **kw: Any
    ) -> None:
        super().__init__(adapter, sessions, **kw)
        self._last_address_id = 0

    @classmethod
    def for_settings(
        cls,
        adapter: CustodyBtcAdapter,
        sessions: sessionmaker[Session],
        btc: Any,
        *,
        start_block: int,
        on_confirmed: OnConfirmed,
    ) -> CustodyBtcWatcher:
        """From ``node.config.BtcSettings``: its confirmations and finality."""
        return cls(
            adapter,
            sessions,
            start_block=start_block,
            confirmations=btc.confirmations,
            finality_depth=btc.finality_depth,
            poll_interval_s=btc.poll_interval_ms / 1000,
            on_confirmed=on_confirmed,
        )

    def refresh_watched(self, s: Session) -> int:
        rows = s.execute(
            select(CustodyAddress.id, CustodyAddress.script_hex, CustodyAddress.address)
            .where(CustodyAddress.chain == "btc", CustodyAddress.id > self._last_address_id)
            .order_by(CustodyAddress.id)
        ).all()
        if rows:
            self.adapter.watch((spk, addr) for _i, spk, addr in rows if spk)
            self._last_address_id = int(rows[-1][0])
        if not self._outpoints_loaded:
            deps = s.execute(
                select(ChainEvent.args, ChainEvent.escrow_key).where(
                    ChainEvent.chain == self.chain, ChainEvent.name == "Deposit"
                )
            ).all()
            self.adapter.watch_outpoints((f"{a['txid']}:{a['vout']}", key) for a, key in deps)
            self._outpoints_loaded = True
        return len(rows)
