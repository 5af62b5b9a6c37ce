"""Assembles a running node from the settings: database (migrated), chains
(dev: started locally), the trade chains the API uses, the watcher and the
relayer threads, scheduled jobs, and the API app. ``escrowd run`` and the demo
use it; tests build the same pieces directly."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from node.chain_trades import ChainRegistry
from node.config import Settings
from node.db.migrate import upgrade
from node.db.models import ChainBlock, ChainCursor, ChainEvent
from node.db.session import make_engine, make_sessionmaker, transaction
from node.errors import ConfigError
from node.escrow_sync import refresh_escrows
from node.evm_trades import EvmDeployment, EvmTradeChain, TokenInfo
from node.leadership import Leadership, run_as_leader
from node.trades import CurrencySpec, expire_unfunded, upsert_currency

log = logging.getLogger("escrowd.runtime")


@dataclass
class Node:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    chains: ChainRegistry
    evm: EvmTradeChain | None = None
    evm_deployment: EvmDeployment | None = None
    dev_evm: Any = None
    relayer_key: str | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    scheduler: BackgroundScheduler | None = None
    watchers: list[Any] = field(default_factory=list)
    relayers: list[Any] = field(default_factory=list)
    # Called in reverse order when the node stops, after its threads ended
    # (dev chains, RPC clients of the chain slices).
    closers: list[Callable[[], None]] = field(default_factory=list)
    dev_chains: dict[str, Any] = field(default_factory=dict)
    # Periodic jobs of the slices: (id, function, every seconds), scheduled by
    # start_background; each runs in its own transaction(s).
    jobs: list[tuple[str, Callable[[], None], float]] = field(default_factory=list)

    # -- life cycle ---------------------------------------------------------

    def start_background(self) -> None:
        """Watcher and relayer threads, and the scheduled jobs."""
        for watcher in self.watchers:
            # one active watcher per chain across all node processes
            lead = Leadership(self.engine, f"watch:{watcher.chain}")
            self._thread(
                f"watch-{watcher.chain}",
                lambda stop, w=watcher, lead=lead: run_as_leader(lead, w.run, stop),
            )
        for relayer in self.relayers:
            self._thread(f"relay-{relayer.chain}", relayer.run)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.scheduler.add_job(
            self.expire_trades, "interval", seconds=30, id="expire-unfunded",
            max_instances=1, coalesce=True,
        )
        for job_id, fn, every_s in self.jobs:
            self.scheduler.add_job(
                fn, "interval", seconds=every_s, id=job_id, max_instances=1, coalesce=True
            )
        self.scheduler.start()

    def _thread(self, name: str, target: Any) -> None:
        def supervised() -> None:
            # Restart a crashed loop (after a pause) until the node stops; a
            # halted watcher (reorg deeper than finality) stays down.
            from node.errors import ReorgTooDeepError

            while not self.stop_event.is_set():
                try:
                    target(self.stop_event)
                    return
                except ReorgTooDeepError as exc:
                    log.critical("%s halted: %s", name, exc.message)
                    return
                except Exception:
                    log.exception("%s crashed; restarting in 2 s", name)
                    self.stop_event.wait(2)

        t = threading.Thread(target=supervised, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def expire_trades(self) -> None:
        with transaction(self.sessions) as session:
            expired = expire_unfunded(
                session,
                now=datetime.now(UTC),
                funding_window_s=self.settings.evm.payment_window_s,
            )
        if expired:
            log.info("expired unfunded trades %s", expired)

    def stop(self) -> None:
        self.stop_event.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for t in self.threads:
            t.join(timeout=10)
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                log.exception("closing %r failed", close)
        if self.dev_evm is not None:
            self.dev_evm.stop()
        self.engine.dispose()

    def app(self) -> Any:
        from api.app import create_app  # the API sits above the node

        return create_app(sessions=self.sessions, chains=self.chains, settings=self.settings)


def build_node(settings: Settings) -> Node:
    """Everything ``escrowd run`` needs, from the settings alone."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    node = Node(settings=settings, engine=engine, sessions=sessions, chains=ChainRegistry())
    if settings.evm.enabled:
        _setup_evm(node)
    # each chain slice loads its libraries only when it is on
    if settings.btc_enabled:
        from node.btc_runtime import setup_btc

        setup_btc(node)
    if settings.sol_enabled:
        from node.sol_runtime import setup_sol

        setup_sol(node)
    for service in SLICE_SERVICES:
        importlib.import_module(service).install(node)
    return node


# Slices beyond the chains hook into the node here: each module's
# ``install(node)`` adds its jobs (``node.jobs``), threads or closers.
SLICE_SERVICES = (
    "node.market.service",
    "node.disputes.service",
    "node.custody.service",
    "node.trading.service",
)


def _setup_evm(node: Node) -> None:
    cfg = node.settings.evm
    if cfg.rpc_url is None:
        if node.settings.mode != "dev":
            raise ConfigError("evm.rpc_url (ESCROWD_EVM__RPC_URL) is required outside dev mode")
        from node.devchain import start_dev_evm

        dev = start_dev_evm(node.settings.data_dir / "evm")
        node.dev_evm = dev
        deployment = EvmDeployment.from_dict(dev.deployment)
        agent_key = dev.agent_key
        relayer_key = dev.relayer_key
        ws_url: str | None = dev.deployment.get("ws_url")
        if dev.fresh:
            _forget_chain(node.sessions, f"evm:{deployment.chain_id}")
    else:
        if cfg.escrow_address is None or cfg.chain_id is None:
            raise ConfigError("evm.escrow_address and evm.chain_id are required with evm.rpc_url")
        deployment = EvmDeployment(
            chain_id=cfg.chain_id,
            rpc_url=cfg.rpc_url,
            escrow_address=cfg.escrow_address,
            start_block=cfg.start_block,
            native_symbol=cfg.native_symbol,
            tokens=tuple(
                TokenInfo(symbol=t.symbol, name=t.name, address=t.address, decimals=t.decimals)
                for t in cfg.tokens
            ),
        )
        if cfg.agent_key is None or cfg.relayer_key is None:
            raise ConfigError("evm.agent_key and evm.relayer_key are required with evm.rpc_url")
        agent_key = cfg.agent_key.get_secret_value()
        relayer_key = cfg.relayer_key.get_secret_value()
        ws_url = cfg.ws_url
    node.evm_deployment = deployment
    node.relayer_key = relayer_key
    adapter = _evm_adapter(deployment, ws_url)
    relayer = _evm_relayer(node, adapter, relayer_key)
    node.relayers.append(relayer)
    chain = EvmTradeChain(
        relayer=relayer.relayer,
        deployment=deployment,
        sessions=node.sessions,
        agent_key=agent_key,
        payment_window_s=cfg.payment_window_s,
        release_window_s=cfg.release_window_s,
    )
    node.evm = chain
    node.chains.register(chain)
    with transaction(node.sessions) as session:
        for spec in chain.currencies():
            upsert_currency(session, CurrencySpec(chain="evm", **spec))
    node.watchers.append(_evm_watcher(node, deployment, _evm_adapter(deployment, ws_url)))


def _evm_adapter(deployment: EvmDeployment, ws_url: str | None) -> Any:
    from node.chains.evm.adapter import EvmAdapter

    return EvmAdapter.connect(
        deployment.rpc_url,
        escrow_address=deployment.escrow_address,
        ws_url=ws_url,
        chain_id=deployment.chain_id,
    )


def _evm_watcher(node: Node, deployment: EvmDeployment, adapter: Any) -> Any:
    from node.chains.evm.watcher import EvmWatcher

    cfg = node.settings.evm.model_copy(update={"start_block": deployment.start_block})
    def on_confirmed(session: Session, chain: str, keys: set[str], confirmed: int) -> None:
        refresh_escrows(session, chain, keys, confirmed)

    return EvmWatcher.from_settings(adapter, node.sessions, cfg, on_confirmed=on_confirmed)


class RelayLoop:
    """Runs a relayer's queue until the node stops."""

    def __init__(self, relayer: Any, idle_s: float) -> None:
        self.relayer = relayer
        self.chain = relayer.chain
        self.idle_s = idle_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self.relayer, name)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                changed = self.relayer.process_once()
            except Exception:
                log.exception("%s relayer pass failed", self.chain)
                changed = 0
            if not changed:
                stop.wait(self.idle_s)


def _evm_relayer(node: Node, adapter: Any, relayer_key: str) -> Any:
    from node.relayer import EvmRelayer
    from wallets.evm.signer import SoftwareSigner

    cfg = node.settings.evm
    relayer = EvmRelayer(
        adapter,
        node.sessions,
        SoftwareSigner(relayer_key),
        confirmations=cfg.confirmations,
        fee_bump_after_s=cfg.fee_bump_after_s,
    )
    return RelayLoop(relayer, idle_s=min(cfg.poll_interval_ms / 1000, 0.25))


def _forget_chain(sessions: sessionmaker[Session], chain: str) -> None:
    """A dev chain started from nothing: drop the mirror of the previous one."""
    with transaction(sessions) as session:
        for model in (ChainEvent, ChainBlock, ChainCursor):
            session.execute(delete(model).where(model.chain == chain))
