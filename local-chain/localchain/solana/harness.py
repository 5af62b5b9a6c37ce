"""``SolanaLocal``: the local Solana chain as a subprocess, like ``Anvil``.

Starts ``python -m localchain.solana`` on a free port with its own data dir
(where its log goes), waits until ``getHealth`` answers, and stops it. State
lives in memory only (LiteSVM has no persistence): a restart is a new chain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from localchain.ports import free_port
from localchain.process import LocalChainProcess, RPCError
from localchain.solana.chain import DEFAULT_FINALITY_SLOTS
from localchain.solana.server import DEFAULT_SLOT_MS

LAMPORTS_PER_SOL = 1_000_000_000


class SolanaLocal(LocalChainProcess):
    """A running local Solana chain. Use as a context manager or start()/stop()."""

    name = "local Solana"
    log_name = "solana.log"
    data_dir_prefix = "escrowd-solana-"

    def __init__(
        self,
        *,
        port: int | None = None,
        slot_ms: int = DEFAULT_SLOT_MS,
        finality_slots: int = DEFAULT_FINALITY_SLOTS,
        data_dir: Path | None = None,
        seed: bytes | None = None,
    ) -> None:
        super().__init__(data_dir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.ws_port = free_port()
        while self.ws_port == self.port:
            self.ws_port = free_port()
        self.slot_ms = slot_ms
        self.finality_slots = finality_slots
        self.seed = seed
        self._client = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Solana's PubSub (websocket) endpoint."""
        return f"ws://{self.host}:{self.ws_port}"

    def start(self) -> SolanaLocal:
        args = [sys.executable, "-m", "localchain.solana", "--host", self.host]
        args += ["--port", str(self.port), "--ws-port", str(self.ws_port)]
        args += ["--slot-ms", str(self.slot_ms), "--finality-slots", str(self.finality_slots)]
        if self.seed is not None:
            args += ["--seed", self.seed.hex()]
        self._spawn(args, what=f"local Solana on {self.url}")
        return self

    def _answers(self) -> bool:
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

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._client.close()
