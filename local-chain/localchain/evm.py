"""A local EVM chain: anvil from the npm package @foundry-rs/anvil.

``Anvil`` starts one on a free port with its own data dir, waits through
warm-up, keeps its log, and stops it. The dev accounts are anvil's well-known
mnemonic accounts (never use them anywhere real)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from localchain.ports import free_port
from localchain.process import LocalChainProcess, RPCError

ROOT = Path(__file__).resolve().parents[2]
ANVIL_PACKAGE_BIN = (
    ROOT / "local-chain" / "evm" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin"
)
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 31337


def anvil_binary() -> str:
    """The anvil the project's set-up installed (or ``$ANVIL_BIN``)."""
    explicit = os.environ.get("ANVIL_BIN")
    if explicit:
        return explicit
    local = ANVIL_PACKAGE_BIN / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise FileNotFoundError(
        f"anvil not found at {local}: run `make setup` (it installs @foundry-rs/anvil with npm)"
    )


@dataclass(frozen=True)
class DevAccount:
    address: str
    key: str  # 0x-hex private key


def dev_accounts(n: int = 10) -> list[DevAccount]:
    """anvil's default accounts, derived from its well-known mnemonic."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(n):
        acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append(DevAccount(address=acct.address, key=acct.key.to_0x_hex()))
    return out


class Anvil(LocalChainProcess):
    """A running anvil. Use as a context manager or call start()/stop()."""

    name = "anvil"
    log_name = "anvil.log"
    data_dir_prefix = "escrowd-anvil-"

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = DEV_CHAIN_ID,
        data_dir: Path | None = None,
        block_time: float | None = None,
        load_state: Path | None = None,
        dump_state: Path | None = None,
        prune_history: int | None = 512,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(data_dir)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.chain_id = chain_id
        self.block_time = block_time
        self.load_state = load_state
        self.dump_state = dump_state
        self.extra_args = extra_args
        # Keep this many recent states in memory (reorgs and rollbacks need
        # them) and none on disk; None keeps everything (anvil's default).
        self.prune_history = prune_history
        self._client = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> Anvil:
        args = [
            anvil_binary(),
            "--host", self.host,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--mnemonic", DEV_MNEMONIC,
        ]
        if self.prune_history is not None:
            args += ["--prune-history", str(self.prune_history)]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        if self.load_state:
            args += ["--load-state", str(self.load_state)]
        if self.dump_state:
            args += ["--dump-state", str(self.dump_state)]
        args += list(self.extra_args)
        # anvil keeps its temp state under $HOME/.foundry: give it the data dir.
        env = {**os.environ, "HOME": str(self.data_dir)}
        self._spawn(args, env=env, what=f"anvil on {self.url}")
        return self

    def _answers(self) -> bool:
        return int(self.rpc("eth_chainId"), 16) == self.chain_id

    def rpc(self, method: str, *params: Any) -> Any:
        reply = self._client.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        ).json()
        if "error" in reply:
            err = reply["error"]
            raise RPCError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply["result"]

    # conveniences for tests and demos
    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", snapshot_id))

    def increase_time(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", seconds)

    def reorg(self, depth: int) -> None:
        """Replace the last ``depth`` blocks by as many new, empty ones."""
        self.rpc("anvil_rollback", depth)
        self.mine(depth)
