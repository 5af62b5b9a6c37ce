"""Fleet and crash-test harness: node processes on a real anvil and a real
PostgreSQL database, a prepared world of trades, and digests to compare.

- ``NodeProcess``: one node process running ``node.cli.main(argv)`` with its
  own environment. Processes are forked from a multiprocessing *forkserver*
  that imported the node once, so a process starts in tens of milliseconds
  instead of seconds (the crash suite starts hundreds); each is a separate OS
  process with its own database connections and chain clients, killed with a
  real SIGKILL. The CLI tests start the real ``escrowd`` executable instead.
- ``World``: anvil with the contracts deployed, and a template database in
  which a node (in this process) made ``released`` trades that were funded
  and credited, with a seller-signed release queued for the relayer each,
  and ``deposits`` trades funded on chain after the watcher last ran (not
  credited yet). A node process started on a copy of the template and a
  revert of anvil to the world's snapshot has to credit the deposits, relay
  the releases and index them: deposit processing, relaying and signing.
- ``digest``: what must be identical between a run that never crashed and
  one that crashed any number of times, plus ``check_chain``: what must
  agree with the chain (one transaction per relay job, nothing sent twice).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests import pg

ROOT = Path(__file__).resolve().parents[2]
ESCROWD = str(ROOT / ".venv" / "bin" / "escrowd")
JWT_SECRET = "fleet-test-jwt-secret-" + "x" * 32
AGENT, RELAYER = 7, 9

_PRELOAD = [
    "node.cli", "node.runtime", "node.relayer", "node.signing", "node.chains.evm.watcher",
    "node.chains.evm.adapter", "node.ops.jobs", "node.db.migrate", "api.app",
    "node.evm_trades", "node.market.service", "node.disputes.service", "node.custody.service",
    "node.trading.service", "alembic.command", "tests.functional.fleet_fixtures",
]
_ctx: Any = None


def _mp() -> Any:
    global _ctx
    if _ctx is None:
        _ctx = multiprocessing.get_context("forkserver")
        _ctx.set_forkserver_preload(_PRELOAD)
    return _ctx


def _child(env: dict[str, str], argv: list[str], log_path: str) -> None:
    """A node process: the CLI's main with this environment."""
    from node.cli import install_stop_signals

    if "api" not in argv:
        install_stop_signals()  # as the CLI does first thing (here: even earlier)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for k in [k for k in os.environ if k.startswith("ESCROWD_")]:
        del os.environ[k]
    os.environ.update(env)
    from node import crashpoints
    from node.cli import main

    crashpoints.reset()
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _child_call(env: dict[str, str], target: str, args: tuple[Any, ...], log_path: str) -> None:
    """A process running ``module:function(*args)`` (the signing workers)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for k in [k for k in os.environ if k.startswith("ESCROWD_")]:
        del os.environ[k]
    os.environ.update(env)
    import importlib

    from node import crashpoints

    crashpoints.reset()
    module, _, fn = target.partition(":")
    getattr(importlib.import_module(module), fn)(*args)
    os._exit(0)


class NodeProcess:
    def __init__(self, proc: Any, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    def start(cls, env: dict[str, str], argv: list[str], log_path: Path) -> NodeProcess:
        proc = _mp().Process(target=_child, args=(env, argv, str(log_path)), daemon=False)
        proc.start()
        return cls(proc, log_path)

    @classmethod
    def call(cls, env: dict[str, str], target: str, args: tuple[Any, ...],
             log_path: Path) -> NodeProcess:
        proc = _mp().Process(target=_child_call, args=(env, target, args, str(log_path)))
        proc.start()
        return cls(proc, log_path)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def alive(self) -> bool:
        return bool(self.proc.is_alive())

    def wait(self, timeout: float) -> int | None:
        self.proc.join(timeout)
        return None if self.proc.exitcode is None else int(self.proc.exitcode)

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM, then wait: a graceful stop exits 0."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.join(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


def wait_until(cond: Any, timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def node_env(db_url: str, data_dir: Path, rpc_url: str, dep: Any, **extra: str) -> dict[str, str]:
    """A production node's environment on the local anvil (no BTC/SOL)."""
    from tests.functional.evm_fixtures import accounts

    accts = accounts()
    return {
        "ESCROWD_MODE": "production",
        "ESCROWD_DATA_DIR": str(data_dir),
        "ESCROWD_DATABASE_URL": db_url,
        "ESCROWD_LOG_LEVEL": "WARNING",
        "ESCROWD_AUTH__JWT_SECRET": JWT_SECRET,
        "ESCROWD_EVM__RPC_URL": rpc_url,
        "ESCROWD_EVM__CHAIN_ID": str(dep.chain_id),
        "ESCROWD_EVM__ESCROW_ADDRESS": dep.escrow,
        "ESCROWD_EVM__START_BLOCK": str(dep.deploy_block),
        "ESCROWD_EVM__CONFIRMATIONS": "1",
        "ESCROWD_EVM__POLL_INTERVAL_MS": "50",
        # one block per watcher step: many steps, many places to die
        "ESCROWD_EVM__LOG_RANGE": "1",
        "ESCROWD_EVM__AGENT_KEY": accts[AGENT].key,
        "ESCROWD_EVM__RELAYER_KEY": accts[RELAYER].key,
        "ESCROWD_BTC__ENABLED": "false",
        "ESCROWD_SOL__ENABLED": "false",
        **extra,
    }


def wait_http(url: str, timeout: float = 60, proc: NodeProcess | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and not proc.alive():
            raise AssertionError(f"process died: {proc.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer in {timeout}s")
        time.sleep(0.1)


# --- the world ------------------------------------------------------------


@dataclass
class World:
    anvil: Any
    deployment: Any
    w3: Any
    escrow: Any
    server_url: str
    template_db: str
    snapshot: str
    released: list[int] = field(default_factory=list)  # trade ids with a queued release
    deposits: list[int] = field(default_factory=list)  # trade ids funded, not credited
    escrow_keys: dict[int, str] = field(default_factory=dict)
    relayer_nonce: int = 0
    tokens: dict[str, str] = field(default_factory=dict)  # API tokens of seller, buyer

    def env(self, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
        return node_env(db_url, data_dir, self.anvil.url, self.deployment, **extra)

    def fresh_db(self) -> tuple[str, str]:
        """A copy of the world's template database: (name, url)."""
        name = f"escrowd_w_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        return name, pg.create_database(self.server_url, name, template=self.template_db)

    def reset_chain(self) -> None:
        assert self.anvil.revert(self.snapshot), "anvil snapshot lost"
        self.snapshot = self.anvil.snapshot()


def node_settings(world_env: dict[str, str]) -> Any:
    """Settings for an in-process node from a node process's environment."""
    from node.config import load_settings

    return load_settings(
        mode="production",
        data_dir=Path(world_env["ESCROWD_DATA_DIR"]),
        database_url=world_env["ESCROWD_DATABASE_URL"],
        auth={"jwt_secret": JWT_SECRET},
        btc={"enabled": False},
        sol={"enabled": False},
        evm={
            "rpc_url": world_env["ESCROWD_EVM__RPC_URL"],
            "chain_id": int(world_env["ESCROWD_EVM__CHAIN_ID"]),
            "escrow_address": world_env["ESCROWD_EVM__ESCROW_ADDRESS"],
            "start_block": int(world_env["ESCROWD_EVM__START_BLOCK"]),
            "confirmations": 1,
            "agent_key": world_env["ESCROWD_EVM__AGENT_KEY"],
            "relayer_key": world_env["ESCROWD_EVM__RELAYER_KEY"],
        },
    )


def _fund(w3: Any, key: str, funding: dict[str, Any]) -> None:
    for step in funding["transactions"]:
        tx = {"to": step["to"], "data": step["data"], "value": int(step["value"]),
              "chainId": step["chainId"], "from": step["from"],
              "nonce": w3.eth.get_transaction_count(step["from"])}
        tx["gas"] = w3.eth.estimate_gas(tx) * 2
        tx["maxFeePerGas"] = w3.eth.get_block("latest")["baseFeePerGas"] * 2 + 10**9
        tx["maxPriorityFeePerGas"] = 10**9
        signed = w3.eth.account.sign_transaction(tx, key)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction))
        assert receipt["status"] == 1


def build_world(tmp: Path, server_url: str, pg_template: str, *, released: int,
                deposits: int) -> Iterator[World]:
    """Start anvil, deploy, and prepare the template database (see module doc)."""
    from fastapi.testclient import TestClient
    from localchain.evm import Anvil
    from localchain.evm_deploy import deploy
    from web3 import Web3

    from node.chains.evm.artifacts import load
    from node.db.models import P2PEscrow
    from node.db.session import transaction
    from node.evm_trades import sign_typed_data
    from node.runtime import build_node
    from node.trades import create_user
    from tests.functional.evm_fixtures import accounts

    accts = accounts()
    seller, buyer = accts[1], accts[2]
    with Anvil(data_dir=tmp / "anvil") as anvil:
        dep = deploy(anvil.url, tmp / "deployment.json", ws_url=anvil.ws_url)
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        escrow = w3.eth.contract(address=dep.escrow, abi=load("Escrow").abi)
        template = f"escrowd_world_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        url = pg.create_database(server_url, template, template=pg_template)
        world = World(anvil=anvil, deployment=dep, w3=w3, escrow=escrow,
                      server_url=server_url, template_db=template, snapshot="")
        env = world.env(url, tmp / "builder")
        node = build_node(node_settings(env))
        try:
            tokens = {}
            with transaction(node.sessions) as s:
                for name in ("seller", "buyer"):
                    _u, tokens[name] = create_user(s, username=name, role="trader")
            world.tokens = tokens
            client = TestClient(node.app(), raise_server_exceptions=True)

            def call(who: str, path: str, body: dict[str, Any], ok: tuple[int, ...]) -> Any:
                r = client.post(path, json=body,
                                headers={"Authorization": f"Bearer {tokens[who]}"})
                assert r.status_code in ok, r.text
                return r.json()

            eth = next(c for c in client.get("/api/p2p-crypto/currencies").json()
                       if c["symbol"] == "ETH")
            n = released + deposits
            ad = call("seller", "/api/p2p-crypto/orders", {
                "crypto_currency_id": eth["id"], "amount": str(n * 10**17),
                "min_amount": str(10**16), "max_amount": str(10**17), "price_per_unit": "1",
                "fiat_currency": "EUR", "payment_methods": ["SEPA"],
                "seller_address": seller.address}, (200, 201))
            opened = [call("buyer", f"/api/p2p-crypto/orders/{ad['id']}/match",
                           {"amount": str(10**17), "buyer_address": buyer.address}, (200, 201))
                      for _ in range(n)]
            for o in opened[:released]:
                _fund(w3, seller.key, o["funding"])
            node.watchers[0].sync()
            for o in opened[:released]:
                tid = int(o["order"]["id"])
                path = f"/api/p2p-crypto/orders/{tid}/release-escrow"
                req = call("seller", path, {}, (200, 201))
                call("seller", path, {"signature": sign_typed_data(seller.key, req["payload"]),
                                      "expiry": req["expiry"]}, (201, 202))
                world.released.append(tid)
            for o in opened[released:]:
                _fund(w3, seller.key, o["funding"])
                world.deposits.append(int(o["order"]["id"]))
            with node.sessions() as s:
                for e in s.query(P2PEscrow).all():
                    world.escrow_keys[e.p2p_order_id] = e.escrow_key
            client.close()
        finally:
            node.stop()
        world.relayer_nonce = w3.eth.get_transaction_count(accts[RELAYER].address)
        world.snapshot = anvil.snapshot()
        try:
            yield world
        finally:
            pg.drop_database(server_url, template)


# --- what must not differ ----------------------------------------------------


def digest(db_url: str) -> dict[str, Any]:
    """The state a run must end in, whatever crashed on the way: trades and
    escrows, the chain mirror, relay jobs and the signing journal (no tx
    hashes or times: a re-signed transaction may carry other fees)."""
    with psycopg.connect(db_url) as conn:
        trades = conn.execute(
            "SELECT o.id, o.status, e.status, e.funded_amount::text, e.payout_tx IS NOT NULL, "
            "e.funded_tx IS NOT NULL FROM p2p_crypto_orders o JOIN p2p_crypto_escrows e "
            "ON e.p2p_order_id = o.id WHERE o.kind = 'trade' ORDER BY o.id").fetchall()
        # block numbers left out: which block a relayed transaction lands
        # in depends on timing, not on correctness
        events = conn.execute(
            "SELECT name, escrow_key, count(*) FROM chain_events "
            "GROUP BY name, escrow_key ORDER BY name, escrow_key").fetchall()
        jobs = conn.execute(
            "SELECT id, action, escrow_key, status, sender_nonce FROM relay_jobs "
            "ORDER BY id").fetchall()
        journal = conn.execute(
            "SELECT chain, escrow_key, decision FROM signing_journal ORDER BY 1, 2").fetchall()
    return {"trades": [tuple(t) for t in trades], "events": [tuple(e) for e in events],
            "jobs": [tuple(j) for j in jobs], "journal": [tuple(j) for j in journal]}


def converged(db_url: str, tip: int) -> bool:
    """The node finished everything: no active relay job, watcher at the tip."""
    with psycopg.connect(db_url) as conn:
        active = conn.execute(
            "SELECT count(*) FROM relay_jobs WHERE status NOT IN ('confirmed', 'failed')"
        ).fetchone()
        head = conn.execute("SELECT max(head_number) FROM chain_cursors").fetchone()
    assert active is not None and head is not None
    return int(active[0]) == 0 and head[0] is not None and int(head[0]) >= tip


def leaders(db_url: str) -> int:
    """How many leadership (advisory) locks are held on this database."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    assert row is not None
    return int(row[0])


def check_chain(world: World, db_url: str) -> None:
    """The database agrees with the chain: each relay job's transaction is
    mined and successful, the relayer sent exactly one transaction per job
    (nothing submitted twice), each escrow's on-chain state is the one the
    mirror shows, and each deposit is credited with the amount on chain."""
    from tests.functional.evm_fixtures import accounts

    w3 = world.w3
    with psycopg.connect(db_url) as conn:
        jobs = conn.execute(
            "SELECT id, status, tx_hash, sender_nonce FROM relay_jobs ORDER BY id").fetchall()
        escrows = conn.execute(
            "SELECT escrow_key, status, funded_amount::text, payout_tx FROM p2p_crypto_escrows"
        ).fetchall()
    sent = w3.eth.get_transaction_count(accounts()[RELAYER].address) - world.relayer_nonce
    assert sent == len(jobs), f"relayer sent {sent} transactions for {len(jobs)} jobs"
    assert sorted(int(j[3]) for j in jobs) == list(
        range(world.relayer_nonce, world.relayer_nonce + len(jobs)))
    for _id, status, tx_hash, _nonce in jobs:
        assert status == "confirmed"
        assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    tx_of_jobs = {j[2] for j in jobs}
    for key, status, funded, payout_tx in escrows:
        onchain = world.escrow.functions.escrows(key).call()
        assert ESCROW_STATES[int(onchain[STATE])] == status, (key, status, onchain)
        assert int(funded) == int(onchain[AMOUNT]), (key, funded, onchain)
        if status == "released":
            assert payout_tx in tx_of_jobs, (key, payout_tx)


# Escrow.escrows(id): (seller, buyer, arbitrator, token, amount, fee_bps,
# fee_recipient, state, ...) and the contract's state numbers
AMOUNT, STATE = 4, 7
ESCROW_STATES = {0: "awaiting_funding", 1: "funded", 2: "paid", 3: "disputed", 4: "released",
                 5: "refunded", 6: "resolved"}


# --- a signing worker (the signer's journal, in its own process) -------------


def expected_signature(escrow_key: str, decision: str) -> str:
    """The agent's deterministic (RFC 6979) signature over a payload hash."""
    from coincurve import PrivateKey

    from tests.functional.evm_fixtures import accounts

    key = PrivateKey(bytes.fromhex(accounts()[AGENT].key.removeprefix("0x")))
    digest = payload_hash(escrow_key, decision, raw=True)
    return "0x" + key.sign_recoverable(digest, hasher=None).hex()


def payload_hash(escrow_key: str, decision: str, *, raw: bool = False) -> Any:
    from eth_hash.auto import keccak

    h = keccak(f"{escrow_key}|{decision}".encode())
    return h if raw else "0x" + h.hex()


def sign_worker(db_url: str, decisions: dict[str, str], calls_log: str) -> None:
    """Ask the journal to sign ``decisions`` (escrow key -> decision), one
    after the other; every call of the signing function is appended to
    ``calls_log`` (fsync'd) before the signature is returned."""
    from node.db.session import make_engine, make_sessionmaker
    from node.errors import SigningError
    from node.signing import sign_once

    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    for key, decision in decisions.items():
        def sign(key: str = key, decision: str = decision) -> str:
            sig = expected_signature(key, decision)
            fd = os.open(calls_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, f"{key} {decision} {os.getpid()}\n".encode())
            os.fsync(fd)
            os.close(fd)
            return sig

        try:
            sign_once(sessions, chain="evm:31337", escrow_key=key, decision=decision,
                      payload_hash=payload_hash(key, decision), sign=sign)
        except SigningError:
            pass  # another decision was signed first: refused, nothing signed
    engine.dispose()
