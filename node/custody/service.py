"""This slice's hook into a running node (see ``node.runtime.SLICE_SERVICES``).

``install(node)`` loads the custody keys, adds the deposit watchers (Bitcoin
and EVM, when those chains are on) to ``node.watchers`` — so they run under
the same per-chain leadership and supervision as the escrow watchers — and
registers the withdrawal, sweep and reconciliation jobs. The API finds the
node's ``CustodyService`` by its session factory (``service_for``)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from node.custody.deposits import apply_confirmed
from node.custody.keystore import load_keys
from node.errors import EscrowdError
from wallets.bitcoin.network import BitcoinNetwork, network_by_name
from wallets.custody_keys import CustodyKeys

if TYPE_CHECKING:
    from node.chains.btc.rpc import BitcoinRpc
    from node.chains.evm.adapter import EvmAdapter
    from node.config import Settings
    from node.runtime import Node

log = logging.getLogger("escrowd.custody")

_REGISTRY: dict[int, CustodyService] = {}


class CustodyUnavailableError(EscrowdError):
    code = "custody_unavailable"
    http_status = 503


@dataclass
class CustodyService:
    settings: Settings
    sessions: sessionmaker[Session]
    keys: CustodyKeys
    btc_network: BitcoinNetwork
    evm: EvmAdapter | None = None
    evm_native: str = "ETH"
    evm_tokens: dict[str, str] = field(default_factory=dict)  # symbol -> token address
    btc_rpc: BitcoinRpc | None = None
    sol_watcher: Any = None
    watchers: list[Any] = field(default_factory=list)
    # One sender at a time from the hot wallet (withdrawals and cold sweeps run
    # as separate jobs): its pending nonce is read, signed and sent under it.
    hot_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def chains(self) -> list[str]:
        out = []
        if self.btc_rpc is not None:
            out.append("btc")
        if self.evm is not None:
            out.append("evm")
        if self.sol_watcher is not None:
            out.append("sol")
        return out

    def withdrawal_chains(self) -> set[str]:
        """Chains whose withdrawals this node signs and sends."""
        return set(self.chains)

    def unsupported_withdrawal_assets(self) -> set[str]:
        """Assets listed on an enabled chain that cannot be withdrawn (none)."""
        return set()

    def hot_addresses(self) -> set[str]:
        """The node's hot wallets (lowercase), which no withdrawal may pay."""
        out = {self.keys.evm_hot().address.lower(), self.keys.sol_hot().address.lower()}
        out.add(self.keys.btc_hot(self.btc_network).address.lower())
        if self.sol_watcher is not None:
            out |= {
                a.lower() for a in self.sol_watcher.token_accounts_of(self.keys.sol_hot().address)
            }
        return out

    # -- jobs ---------------------------------------------------------------

    def withdrawals_job(self) -> None:
        from node.custody.withdrawals import process_withdrawals

        done = process_withdrawals(self)
        if done:
            log.info("withdrawals: %s", done)

    def sweep_job(self) -> None:
        from node.custody.sweeps import sweep_pass

        done = sweep_pass(self)
        if done:
            log.info("sweeps: %s", done)

    def reconcile_job(self) -> None:
        from node.custody.reconcile import reconcile

        with self.sessions() as session:
            report = reconcile(self, session)
        for line in report:
            if not line.ok:
                log.critical("ALERT custody reconciliation: %s", line.describe())

    # One pass of each job, returning what it did (the jobs log it).
    def run_sweeps(self) -> list[str]:
        from node.custody.sweeps import sweep_pass

        return sweep_pass(self)

    def run_withdrawals(self) -> dict[int, str]:
        from node.custody.withdrawals import process_withdrawals

        return process_withdrawals(self)


def service_for(sessions: sessionmaker[Session]) -> CustodyService:
    svc = _REGISTRY.get(id(sessions))
    if svc is None:
        raise CustodyUnavailableError("custody is not enabled on this node")
    return svc


def enabled(settings: Settings) -> bool:
    cfg = settings.custody
    if cfg.enabled is not None:
        return cfg.enabled
    return settings.mode == "dev" or cfg.seed_file is not None


def install(node: Node) -> None:
    """Register this slice's periodic jobs (``node.jobs``), threads and closers."""
    settings = node.settings
    if not enabled(settings):
        log.info("custody off (set custody.seed_file to turn it on in production)")
        return
    keys = load_keys(
        mode=settings.mode, data_dir=settings.data_dir, seed_file=settings.custody.seed_file
    )
    svc = CustodyService(
        settings=settings,
        sessions=node.sessions,
        keys=keys,
        btc_network=network_by_name(settings.btc.network),
    )
    if node.evm_deployment is not None:
        _setup_evm(node, svc)
    if settings.btc_enabled:
        _setup_btc(node, svc)
    if settings.sol_enabled:
        _setup_sol(node, svc)
    _REGISTRY[id(node.sessions)] = svc

    def unregister() -> None:
        _REGISTRY.pop(id(node.sessions), None)

    node.closers.append(unregister)
    cfg = settings.custody
    node.jobs.append(("custody-withdrawals", svc.withdrawals_job, cfg.withdrawal_interval_s))
    node.jobs.append(("custody-sweep", svc.sweep_job, cfg.sweep_interval_s))
    node.jobs.append(("custody-reconcile", svc.reconcile_job, cfg.reconcile_interval_s))


def _setup_evm(node: Node, svc: CustodyService) -> None:
    from node.chains.evm.adapter import EvmAdapter
    from node.custody.evm_watch import CustodyEvmAdapter, CustodyEvmWatcher

    dep = node.evm_deployment
    assert dep is not None
    cfg = node.settings.evm
    svc.evm = EvmAdapter.connect(
        dep.rpc_url, escrow_address=dep.escrow_address, chain_id=dep.chain_id
    )
    svc.evm_native = dep.native_symbol
    if node.dev_evm is not None and getattr(node.dev_evm, "fresh", False):
        from node.runtime import _forget_chain

        _forget_chain(node.sessions, f"custody:evm:{dep.chain_id}")
    svc.evm_tokens = {t.symbol: t.address for t in dep.tokens}
    watch_rpc = EvmAdapter.connect(
        dep.rpc_url, escrow_address=dep.escrow_address, chain_id=dep.chain_id
    )
    node.closers.append(svc.evm.rpc.close)
    node.closers.append(watch_rpc.rpc.close)
    adapter = CustodyEvmAdapter(
        watch_rpc,
        native=dep.native_symbol,
        tokens={t.address: t.symbol for t in dep.tokens},
        internal_senders=[svc.keys.evm_hot().address],
    )
    native = dep.native_symbol

    def on_confirmed(session: Session, chain: str, keys: set[str], confirmed: int) -> None:
        changed = apply_confirmed(session, chain, keys, confirmed, family="evm", native=native)
        if changed:
            log.info("%s deposits: %s", chain, changed)

    watcher = CustodyEvmWatcher(
        adapter,
        node.sessions,
        # A first start in production begins at the tip (deposit addresses are
        # new, and a chain's history since the escrow's deployment can be long);
        # dev mode at the deployment. Later starts resume from the cursor.
        start_block=watch_rpc.head() if node.settings.mode == "production" else dep.start_block,
        confirmations=cfg.confirmations,
        finality_depth=cfg.finality_depth,
        log_range=min(cfg.log_range, 200),
        poll_interval_s=cfg.poll_interval_ms / 1000,
        on_confirmed=on_confirmed,
    )
    svc.watchers.append(watcher)
    node.watchers.append(watcher)


def _btc_rpc(node: Node) -> BitcoinRpc:
    from node.chains.btc.rpc import BitcoinRpc

    cfg = node.settings.btc
    dev = node.dev_chains.get("btc")
    if dev is not None:
        user, password = dev.auth()
        return BitcoinRpc(dev.url, user=user, password=password)
    assert cfg.rpc_url is not None
    return BitcoinRpc(
        cfg.rpc_url,
        user=cfg.rpc_user,
        password=cfg.rpc_password.get_secret_value() if cfg.rpc_password else None,
        cookie_file=cfg.rpc_cookie_file,
    )


def _setup_btc(node: Node, svc: CustodyService) -> None:
    from node.custody.btc_watch import CustodyBtcAdapter, CustodyBtcWatcher

    cfg = node.settings.btc
    if cfg.rpc_url is None and "btc" not in node.dev_chains:
        return
    svc.btc_rpc = _btc_rpc(node)
    adapter = CustodyBtcAdapter(_btc_rpc(node), network=cfg.network)
    node.closers.append(svc.btc_rpc.close)
    node.closers.append(adapter.rpc.close)
    dev = node.dev_chains.get("btc")
    if dev is not None and getattr(dev, "fresh", False):
        from node.runtime import _forget_chain

        _forget_chain(node.sessions, adapter.chain_key)  # a new dev chain: forget the old one
    if cfg.start_height is not None:
        start = cfg.start_height
    elif cfg.network == "regtest":
        start = 0
    else:  # the first start begins at the tip (addresses are new); later the cursor
        start = adapter.head()

    def on_confirmed(session: Session, chain: str, keys: set[str], confirmed: int) -> None:
        changed = apply_confirmed(session, chain, keys, confirmed, family="btc", native="BTC")
        if changed:
            log.info("%s deposits: %s", chain, changed)

    watcher = CustodyBtcWatcher.for_settings(
        adapter, node.sessions, cfg, start_block=start, on_confirmed=on_confirmed
    )
    svc.watchers.append(watcher)
    node.watchers.append(watcher)


def _setup_sol(node: Node, svc: CustodyService) -> None:
    from sqlalchemy import select

    from node.chains.sol.client import SolClient
    from node.custody.sol_watch import SolDepositWatcher
    from node.db.models import CryptoCurrency

    cfg = node.settings.sol
    dev = node.dev_chains.get("sol")
    url = dev.url if dev is not None else cfg.rpc_url
    if url is None:
        return
    with node.sessions() as s:
        tokens = {
            c.symbol: str(c.contract_address)
            for c in s.scalars(
                select(CryptoCurrency).where(
                    CryptoCurrency.chain == "sol", CryptoCurrency.contract_address.is_not(None)
                )
            )
        }
    client = SolClient(url)
    node.closers.append(client.close)
    watcher = SolDepositWatcher(
        client,
        node.sessions,
        cluster=cfg.cluster,
        commitment=cfg.commitment,
        native="SOL",
        tokens=tokens,
        poll_interval_s=cfg.poll_interval_ms / 1000,
    )
    svc.sol_watcher = watcher
    svc.watchers.append(watcher)
    node.watchers.append(watcher)
