"""Assembles a running node from the settings: database (migrated), chains
(dev: started locally), the trade chains the API uses, the watcher and the
relayer threads, scheduled jobs, and the API app. ``escrowd run`` and the demo
use it; tests build the same pieces directly."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, delete, event, text
from sqlalchemy.orm import Session, sessionmaker

from node.chain_trades import ChainRegistry
from node.changes import stop_listener
from node.config import Settings
from node.crashpoints import crashpoint
from node.db.migrate import upgrade
from node.db.models import ChainBlock, ChainCursor, ChainEvent
from node.db.session import make_engine, make_sessionmaker, transaction
from node.errors import ConfigError
from node.escrow_sync import refresh_escrows
from node.evm_trades import EvmDeployment, EvmTradeChain, TokenInfo
from node.leadership import Leadership, run_as_leader
from node.trades import CurrencySpec, expire_unfunded, upsert_currency

log = logging.getLogger("escrowd.runtime")

BACKGROUND_ROLES = ("watch", "sign", "jobs")


def role_of(loop: Any) -> str:
    """``sign`` for loops that sign or broadcast payouts (the Bitcoin
    watchtower), ``watch`` for the ones that follow a chain."""
    return "sign" if str(loop.chain).endswith(":watchtower") else "watch"


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

    def start_background(
        self,
        roles: Collection[str] = BACKGROUND_ROLES,
        chains: Collection[str] | None = None,
    ) -> None:
        """The background roles of this process: ``watch`` (chain watchers),
        ``sign`` (relayers and other signers/broadcasters), ``jobs`` (the
        periodic jobs). ``chains`` limits watch and sign to chain families
        (``evm``, ``btc``, ``sol``). Watchers and signers run under
        per-chain PostgreSQL leadership, jobs are claimed per run (SKIP
        LOCKED): any number of processes may run any roles."""
        unknown = set(roles) - set(BACKGROUND_ROLES)
        if unknown:
            raise ConfigError(f"unknown role(s) {sorted(unknown)}; roles are {BACKGROUND_ROLES}")

        def wanted(chain: str) -> bool:
            # "evm:1", "btc:regtest:watchtower", "custody:evm:1": any part names it
            return chains is None or bool(set(chain.split(":")) & set(chains))

        for watcher in self.watchers:
            role = role_of(watcher)
            if role not in roles or not wanted(watcher.chain):
                continue
            # one active watcher (signer) per chain across all node processes
            lead = Leadership(self.engine, f"{role}:{watcher.chain}")
            self._thread(
                f"{role}-{watcher.chain}",
                lambda stop, w=watcher, lead=lead: run_as_leader(lead, w.run, stop),
            )
        if "sign" in roles:
            for relayer in self.relayers:
                if not wanted(relayer.chain):
                    continue
                lead = Leadership(self.engine, f"sign:{relayer.chain}")
                self._thread(
                    f"sign-{relayer.chain}",
                    lambda stop, r=relayer, lead=lead: run_as_leader(lead, r.run, stop),
                )
        if "jobs" in roles:
            self._start_jobs()
        if roles:
            self._thread("ops-metrics", self._sample_metrics)

    def all_jobs(self) -> list[tuple[str, Callable[[], None], float]]:
        return [("expire-unfunded", self.expire_trades, 30.0), *self.jobs]

    def _start_jobs(self) -> None:
        from node.ops.jobs import owner_name, register_jobs, run_if_due

        jobs = self.all_jobs()
        register_jobs(self.sessions, [(job_id, every_s) for job_id, _fn, every_s in jobs])
        owner = owner_name()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        for job_id, fn, every_s in jobs:
            self.scheduler.add_job(
                run_if_due, "interval", seconds=every_s, id=job_id, max_instances=1,
                coalesce=True, next_run_time=datetime.now(UTC),
                args=(self.sessions, job_id, fn), kwargs={"owner": owner},
            )
        self.scheduler.start()

    def _sample_metrics(self, stop: threading.Event) -> None:
        from node.ops.metrics import sample_db, sample_tips

        confs = {"evm": self.settings.evm.confirmations, "btc": self.settings.btc.confirmations}
        tips = {}
        for w in self.watchers:
            head = getattr(getattr(w, "adapter", None), "head", None)
            if role_of(w) == "watch" and callable(head):
                tips[w.chain] = head
        while not stop.wait(self.settings.ops.metrics_interval_s):
            try:
                sample_db(self.sessions, confs)
                sample_tips(tips)
            except Exception:  # noqa: BLE001 - metrics must never stop the node
                log.warning("metrics sample failed", exc_info=True)

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
        """Stop the roles: each loop finishes its current unit of work (a
        watcher step, a relay transition, a job run) and leadership is
        released; then the chains' clients are closed."""
        self.stop_event.set()
        grace = self.settings.ops.shutdown_grace_s
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        deadline = time.monotonic() + grace
        for t in self.threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.1))
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                log.exception("closing %r failed", close)
        if self.dev_evm is not None:
            self.dev_evm.stop()
        if self.engine.dialect.name == "postgresql":
            stop_listener(self.engine.url.render_as_string(hide_password=False))
        self.engine.dispose()

    def app(self) -> Any:
        from api.app import create_app  # the API sits above the node

        return create_app(sessions=self.sessions, chains=self.chains, settings=self.settings)


def build_node(settings: Settings) -> Node:
    """Everything ``escrowd run`` needs, from the settings alone."""
    engine = make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    with _migration_lock(engine):
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
    "node.accounts.housekeeping",
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


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Processes of a fleet starting together migrate one at a time."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext('escrowd:migrate'))"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext('escrowd:migrate'))"))
            conn.commit()


class _CrashPointAdapter:
    """The watcher's adapter with a crash point after each read of events
    (a block range read, nothing stored yet); everything else passes through."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def events(self, frm: int, to: int) -> Any:
        batch = self._adapter.events(frm, to)
        crashpoint("watch.read")
        return batch


def _watcher_sessions(engine: Engine) -> sessionmaker[Session]:
    """The watcher's own session factory, with a crash point right after
    each commit that wrote something (``watch.committed``)."""
    sessions = make_sessionmaker(engine)

    @event.listens_for(sessions, "after_flush")
    def _wrote(session: Session, _ctx: Any) -> None:
        session.info["wrote"] = True

    @event.listens_for(sessions, "after_commit")
    def _committed(session: Session) -> None:
        if session.info.pop("wrote", False):
            crashpoint("watch.committed")

    return sessions


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
        # crash points around the credit, inside the watcher's transaction
        crashpoint("watch.credit")
        refresh_escrows(session, chain, keys, confirmed)
        crashpoint("watch.credited")

    return EvmWatcher.from_settings(
        cast(Any, _CrashPointAdapter(adapter)), _watcher_sessions(node.engine), cfg,
        on_confirmed=on_confirmed,
    )


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
