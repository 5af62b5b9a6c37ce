"""Wires Solana into a node: the client, the ``SolTradeChain`` the API uses
for currency chain "sol", its currencies, and the watcher thread.

Dev mode with no ``sol.rpc_url``: the node starts the local chain
(``node.devchain.start_dev_sol``: LiteSVM behind JSON-RPC, keys in
``<data_dir>/sol/sol-keys.json``, a test USDC mint). Otherwise it talks to
``sol.rpc_url`` (any cluster: devnet, mainnet-beta) with ``sol.agent_key`` and
``sol.fee_payer_key``; the cluster is identified by its genesis hash.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from solders.keypair import Keypair

from node.chains.sol.client import SolClient
from node.chains.sol.watcher import SolWatcher
from node.db.session import transaction
from node.errors import ConfigError, ValidationError
from node.runtime import Node
from node.sol_sync import refresh_sol_escrows
from node.sol_trades import SolToken, SolTradeChain
from node.trades import CurrencySpec, upsert_currency
from wallets.solana.network import DEVNET, MAINNET_BETA, TESTNET, SolanaNetwork
from wallets.solana.signer import SoftwareSigner

log = logging.getLogger("escrowd.sol")
# solana-py's HTTP client logs every request at INFO
logging.getLogger("httpx2").setLevel(logging.WARNING)


def keypair_from_secret(secret: str, *, name: str) -> Keypair:
    """A keypair from base58 (64 bytes) or a JSON byte array (solana-keygen's file)."""
    try:
        if secret.strip().startswith("["):
            return Keypair.from_bytes(bytes(json.loads(secret)))
        return Keypair.from_base58_string(secret.strip())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"sol.{name} is not a Solana secret key (base58 or JSON bytes)") from exc


def sol_chain(node: Node) -> SolTradeChain:
    chain = node.chains.get("sol")
    assert isinstance(chain, SolTradeChain)
    return chain


def setup_sol(node: Node) -> None:
    """Register Solana on ``node`` (called by ``build_node`` when sol.enabled)."""
    cfg = node.settings.sol
    dev: Any = None
    tokens = [
        SolToken(symbol=str(t["symbol"]), name=str(t.get("name", t["symbol"])),
                 mint=str(t["mint"]), decimals=int(t["decimals"]))
        for t in cfg.tokens
    ]
    if cfg.rpc_url is None:
        if node.settings.mode != "dev":
            raise ConfigError("sol.rpc_url (ESCROWD_SOL__RPC_URL) is required outside dev mode")
        from node.devchain import start_dev_sol

        dev = start_dev_sol(node.settings.data_dir / "sol", slot_ms=cfg.dev_slot_ms,
                            finality_slots=cfg.dev_finality_slots)
        url = dev.url
        agent, fee_payer = dev.agent, dev.fee_payer
        tokens.append(SolToken(symbol="USDC", name="USD Coin (local test mint)",
                               mint=dev.usdc_mint, decimals=6))
    else:
        if cfg.agent_key is None or cfg.fee_payer_key is None:
            raise ConfigError("sol.agent_key and sol.fee_payer_key are required with "
                              "sol.rpc_url")
        url = cfg.rpc_url
        agent = keypair_from_secret(cfg.agent_key.get_secret_value(), name="agent_key")
        fee_payer = keypair_from_secret(cfg.fee_payer_key.get_secret_value(),
                                        name="fee_payer_key")
    client = SolClient(url)
    try:
        network = SolanaNetwork(cfg.cluster, client.genesis_hash())
        known = {n.name: n for n in (MAINNET_BETA, DEVNET, TESTNET)}.get(cfg.cluster)
        if known is not None and known.genesis_hash != network.genesis_hash:
            raise ConfigError(f"sol.rpc_url serves genesis {network.genesis_hash}, not "
                              f"{cfg.cluster}'s {known.genesis_hash}: check sol.cluster")
        chain = SolTradeChain(
            client=client, sessions=node.sessions, network=network,
            agent=SoftwareSigner(agent), fee_payer=SoftwareSigner(fee_payer),
            tokens=tuple(tokens), payment_window_s=cfg.payment_window_s,
            release_window_s=cfg.release_window_s, commitment=cfg.commitment,
            arbitrator=cfg.arbitrator_address,
        )
        if cfg.arbitrator_address is not None:
            try:
                chain.validate_address(cfg.arbitrator_address, field="arbitrator_address")
            except ValidationError as exc:
                raise ConfigError(f"sol.arbitrator_address: {exc.message}") from None
            if cfg.arbitrator_address == chain.agent_address:
                raise ConfigError("sol.arbitrator_address is the agent's key: leave it unset")
        node.chains.register(chain)
        with transaction(node.sessions) as session:
            for spec in chain.currencies():
                upsert_currency(session, CurrencySpec(chain="sol", **spec))
        node.watchers.append(SolWatcher(
            client, node.sessions, chain=chain.chain_key, commitment=cfg.commitment,
            poll_interval_s=cfg.poll_interval_ms / 1000, on_confirmed=refresh_sol_escrows,
        ))
    except Exception:
        client.close()
        if dev is not None:
            dev.stop()
        raise
    if dev is not None:
        node.dev_chains["sol"] = dev
        node.closers.append(dev.stop)
    node.closers.append(client.close)
    log.info("Solana %s (%s) on %s, agent %s", cfg.cluster, network.genesis_hash, url,
             agent.pubkey())
