"""Wires Bitcoin into a node: the bitcoind RPC (dev: the local regtest node),
the Bitcoin TradeChain the API uses, the BTC currency, the watcher, the
watchtower loop and the job that bumps stuck payouts (``node.jobs``).
``build_node`` calls :func:`setup_btc` when ``settings.btc.enabled``."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from node.btc_bumps import bump_stuck_payouts
from node.btc_sync import refresh_btc_escrows
from node.btc_trades import BtcTradeChain, agent_signer
from node.chains.btc.adapter import BtcAdapter
from node.chains.btc.rpc import BitcoinRpc
from node.chains.btc.watcher import BtcWatcher
from node.db.session import transaction
from node.errors import ConfigError
from node.indexer import get_cursor
from node.trades import CurrencySpec, upsert_currency
from wallets.bitcoin import network_by_name

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("escrowd.btc")

# regtest P2WSH of OP_TRUE's hash: coins mined here are anyone-can-spend dev coins
DEV_MINER_ADDRESS = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85"


class WatchtowerLoop:
    """Runs the watchtower pass (matured timelock refunds) until the node stops."""

    def __init__(self, chain: BtcTradeChain, interval_s: float) -> None:
        self.btc = chain
        self.chain = f"{chain.chain_key}:watchtower"
        self.interval_s = interval_s

    def sync(self) -> list[str]:
        return self.btc.watchtower_pass()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                done = self.sync()
                if done:
                    log.info("watchtower broadcast %s", done)
            except Exception:
                log.exception("watchtower pass failed")
            stop.wait(self.interval_s)


class DevMiner:
    """Dev mode: a regtest block every ``interval_s`` seconds, so
    confirmations and timelocks progress with no one mining by hand."""

    def __init__(self, rpc: BitcoinRpc, network: str, interval_s: float) -> None:
        self.rpc = rpc
        self.chain = f"btc:{network}:miner"
        self.interval_s = interval_s

    def sync(self) -> None:
        """Tests step loops with sync(); the dev miner does nothing then."""

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            try:
                self.rpc.rpc("generatetoaddress", 1, DEV_MINER_ADDRESS)
            except Exception:
                log.exception("dev miner failed")


def _on_confirmed(session: Session, chain: str, keys: set[str], confirmed_block: int) -> None:
    changed = refresh_btc_escrows(session, chain, keys, confirmed_block)
    if changed:
        log.info("%s: trades %s changed with confirmed block %d", chain, changed, confirmed_block)


def _bump_job(chain: BtcTradeChain) -> None:
    done = bump_stuck_payouts(chain)
    if done:
        log.info("%s: stuck payouts replaced by %s", chain.chain_key, done)


def setup_btc(node: Node) -> None:
    cfg = node.settings.btc
    network = network_by_name(cfg.network)
    seed = cfg.agent_seed.get_secret_value() if cfg.agent_seed is not None else None
    if cfg.rpc_url is None:
        if node.settings.mode != "dev":
            raise ConfigError("btc.rpc_url (ESCROWD_BTC__RPC_URL) is required outside dev mode")
        if cfg.network != "regtest":
            raise ConfigError("dev mode runs Bitcoin on regtest: set btc.rpc_url for "
                              f"{cfg.network}")
        from node.devchain import start_dev_btc
        from node.runtime import _forget_chain

        dev = start_dev_btc(node.settings.data_dir / "btc")
        node.dev_chains["btc"] = dev
        node.closers.append(dev.stop)
        user, password = dev.auth()

        def make_rpc() -> BitcoinRpc:
            return BitcoinRpc(dev.url, user=user, password=password)

        if dev.fresh:
            _forget_chain(node.sessions, f"btc:{cfg.network}")
    else:
        if node.settings.mode == "production" and seed is None:
            raise ConfigError("btc.agent_seed (ESCROWD_BTC__AGENT_SEED) is required with "
                              "btc.rpc_url in production")
        url = cfg.rpc_url

        def make_rpc() -> BitcoinRpc:
            return BitcoinRpc(
                url, user=cfg.rpc_user,
                password=cfg.rpc_password.get_secret_value() if cfg.rpc_password else None,
                cookie_file=cfg.rpc_cookie_file,
            )

    # one client per thread: the API's and the watcher's
    adapter = BtcAdapter(make_rpc(), network=cfg.network)
    chain = BtcTradeChain(
        adapter=adapter,
        sessions=node.sessions,
        network=network,
        agent=agent_signer(seed, network),
        csv_blocks=cfg.csv_blocks,
        min_feerate_sat_vb=cfg.min_feerate_sat_vb,
        max_fee_sat=cfg.max_fee_sat,
        payment_window_s=node.settings.evm.payment_window_s,
        bump_after_blocks=cfg.bump_after_blocks,
        ladder_rungs=cfg.fee_ladder_rungs,
    )
    if cfg.rpc_url is None:
        chain.dev_node = dev
    node.chains.register(chain)
    with transaction(node.sessions) as session:
        for spec in chain.currencies():
            upsert_currency(session, CurrencySpec(chain="btc", **spec))
        cursor = get_cursor(session, chain.chain_key)
    if cfg.start_height is not None:
        start = cfg.start_height
    elif cursor is not None or cfg.network == "regtest":
        start = cursor.head_number + 1 if cursor is not None else 0
    else:
        start = adapter.head()
    watcher_adapter = BtcAdapter(make_rpc(), network=cfg.network)
    node.watchers.append(BtcWatcher.from_btc_settings(
        watcher_adapter, node.sessions, cfg, start_block=start,
        on_confirmed=_on_confirmed))
    node.watchers.append(WatchtowerLoop(chain, cfg.watchtower_interval_s))
    node.jobs.append((f"{chain.chain_key}:fee-bump", lambda: _bump_job(chain),
                      float(cfg.bump_interval_s)))
    if cfg.rpc_url is None and cfg.dev_block_interval_s > 0:
        node.watchers.append(DevMiner(make_rpc(), cfg.network, cfg.dev_block_interval_s))
