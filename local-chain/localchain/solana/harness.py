"""``SolanaLocal``: the local Solana chain as a subprocess, like ``Anvil``.

Starts ``python -m localchain.solana`` on a free port with its own data dir
(where its log goes), waits until ``getHealth`` answers, and stops it. State
lives in memory only (LiteSVM has no persistence): a restart is a new chain."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from localchain.ports import free_port, wait_until
from localchain.solana.chain import DEFAULT_FINALITY_SLOTS
from localchain.solana.server import DEFAULT_SLOT_MS

LAMPORTS_PER_SOL = 1_000_000_000


class RPCError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class SolanaLocal:
    """A running local Solana chain. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        slot_ms: int = DEFAULT_SLOT_MS,
        finality_slots: int = DEFAULT_FINALITY_SLOTS,
        data_dir: Path | None = None,
        seed: bytes | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.ws_port = free_port()
        while self.ws_port == self.port:
            self.ws_port = free_port()
        self.slot_ms = slot_ms
        self.finality_slots = finality_slots
        self.seed = seed
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="escrowd-solana-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Solana's PubSub (websocket) endpoint."""
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "solana.log"

    def start(self) -> SolanaLocal:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "localchain.solana", "--host", self.host]
        args += ["--port", str(self.port), "--ws-port", str(self.ws_port)]
        args += ["--slot-ms", str(self.slot_ms), "--finality-slots", str(self.finality_slots)]
        if self.seed is not None:
            args += ["--seed", self.seed.hex()]
        log = self.log_path.open("ab")
        # its own session: a Ctrl-C reaches the node, which stops the chain last
        self.proc = subprocess.Popen(  # noqa: S603
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        wait_until(
            self._ready, timeout=30, what=f"local Solana on {self.url} (log: {self.log_path})"
        )
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"local Solana exited with {self.proc.returncode}: "
                f"{self.log_path.read_text(encoding='utf-8')[-2000:]}"
            )
        return bool(self.rpc("getHealth") == "ok")

    def rpc(self, method: str, *params: Any) -> Any:
        reply = self._client.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        ).json()
        if "error" in reply:
            err = reply["error"]
            raise RPCError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply["result"]

    # conveniences for tests and demos
    def slot(self, commitment: str = "processed") -> int:
        return int(self.rpc("getSlot", {"commitment": commitment}))

    def warp_slots(self, n: int = 1) -> int:
        """Non-standard ``escrowd_warpSlots``: open ``n`` slots now."""
        return int(self.rpc("escrowd_warpSlots", n))

    def finalize(self) -> int:
        """Advance until everything processed so far is finalized."""
        return self.warp_slots(self.finality_slots)

    def airdrop(self, pubkey: str, lamports: int) -> str:
        return str(self.rpc("requestAirdrop", pubkey, lamports))

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> SolanaLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._client.close()
