"""What every local chain process has in common: its own data dir and log,
a subprocess in its own session (a Ctrl-C reaches the node, which stops the
chain last), warm-up until it answers, and a clean stop."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any, Self

from localchain.ports import wait_until


class RPCError(Exception):
    """A JSON-RPC error reply: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class LocalChainProcess:
    """Base of ``Anvil``, ``BitcoinRegtest`` and ``SolanaLocal``."""

    name = "local chain"
    log_name = "chain.log"
    data_dir_prefix = "escrowd-chain-"
    log_tail = 2000

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix=self.data_dir_prefix))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    def start(self) -> Self:
        raise NotImplementedError

    def _answers(self) -> bool:
        """True once the chain answers its health call."""
        raise NotImplementedError

    def _spawn(self, args: list[str], *, env: dict[str, str] | None = None, what: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own binaries and args
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        wait_until(self._ready, timeout=30, what=f"{what} (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}: "
                f"{self.log_path.read_text(encoding='utf-8', errors='replace')[-self.log_tail:]}"
            )
        return self._answers()

    def _terminate(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        self._terminate()
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
