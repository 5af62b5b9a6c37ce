"""``BitcoinRegtest``: the local regtest node as a subprocess, for tests and
demos (the Bitcoin twin of ``localchain.evm.Anvil``).

It picks a free port, owns a data dir, waits through warm-up until
``getblockchaininfo`` answers, keeps the node's log (``debug.log`` in the data
dir) and stops it. ``rpc()`` parses amounts as ``Decimal`` as Bitcoin Core's
test framework does and raises ``RPCError`` with bitcoind's code/message."""

from __future__ import annotations

import base64
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from localchain.bitcoin.errors import RPCError
from localchain.ports import free_port
from localchain.process import LocalChainProcess

ROOT = Path(__file__).resolve().parents[3]
LOCAL_CHAIN = ROOT / "local-chain"
# a fixed regtest address nobody holds a key for (mining target by default)
BURN_ADDRESS = "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq3xueyj"


class BitcoinRegtest(LocalChainProcess):
    """A running local regtest node. Use as a context manager or start()/stop()."""

    name = "regtest node"
    log_name = "debug.log"
    data_dir_prefix = "escrowd-btc-"
    log_tail = 3000

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        rpc_user: str | None = "escrowd",
        rpc_password: str | None = "escrowd",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(data_dir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.rpc_user = rpc_user
        self.rpc_password = rpc_password
        self.extra_args = extra_args
        # long calls exist: invalidateblock on a long chain replays it in the kernel
        self._client = httpx.Client(timeout=300)
        self._id = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def cookie_path(self) -> Path:
        return self.data_dir / ".cookie"

    def auth(self) -> tuple[str, str]:
        if self.rpc_user is not None and self.rpc_password is not None:
            return self.rpc_user, self.rpc_password
        user, _, password = self.cookie_path.read_text(encoding="utf-8").partition(":")
        return user, password

    def auth_header(self) -> str:
        user, password = self.auth()
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def start(self) -> BitcoinRegtest:
        args = [
            sys.executable,
            "-m",
            "localchain.bitcoin",
            "--datadir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--bind",
            self.host,
        ]
        if self.rpc_user is not None and self.rpc_password is not None:
            args += ["--rpcuser", self.rpc_user, "--rpcpassword", self.rpc_password]
        args += list(self.extra_args)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(LOCAL_CHAIN), env.get("PYTHONPATH", "")) if p
        )
        self._spawn(args, env=env, what=f"regtest node on {self.url}")
        return self

    def _answers(self) -> bool:
        return bool(self.rpc("getblockchaininfo")["chain"] == "regtest")

    def post(self, payload: Any, *, auth: str | None = None) -> httpx.Response:
        """Raw HTTP POST (tests use it for batches, bad auth, bad JSON)."""
        headers = {"Authorization": auth if auth is not None else self.auth_header()}
        content = (
            payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
        )
        return self._client.post(self.url, content=content, headers=headers)

    def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        reply = json.loads(
            self.post(
                {
                    "jsonrpc": "1.0",
                    "id": self._id,
                    "method": method,
                    "params": [_jsonable(p) for p in params],
                }
            ).content,
            parse_float=Decimal,
        )
        if reply.get("error"):
            err = reply["error"]
            raise RPCError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply["result"]

    # conveniences for tests and demos ---------------------------------------
    def mine(self, blocks: int = 1, address: str = BURN_ADDRESS) -> list[str]:
        return list(self.rpc("generatetoaddress", blocks, address))

    def height(self) -> int:
        return int(self.rpc("getblockcount"))

    def tip(self) -> str:
        return str(self.rpc("getbestblockhash"))

    def reorg(self, depth: int, address: str = BURN_ADDRESS) -> list[str]:
        """Replace the last ``depth`` blocks by ``depth + 1`` new ones (a longer
        branch), as Core's tests do with invalidateblock. Transactions of the
        removed blocks go back to the mempool and are mined again unless
        they became invalid. Returns the new branch's hashes."""
        if depth < 1:
            raise ValueError("depth must be >= 1")
        height = self.height()
        self.rpc("invalidateblock", self.rpc("getblockhash", height - depth + 1))
        return self.mine(depth + 1, address)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.rpc("stop")
            self.proc.wait(timeout=15)
        except Exception:  # noqa: BLE001 - fall back to signals
            self._terminate()
        self.proc = None

    def kill(self) -> None:
        """Stop without a clean shutdown (crash tests)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None



def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value
