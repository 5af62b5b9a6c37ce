"""``escrowd demo sol`` end to end, as a user runs it: a dev node (SQLite, its
own local Solana chain, the watcher thread at the finalized commitment) and the
HTTP API; one released and one arbitrated trade; exit 0 and one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_sol(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCROWD_")}
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "node.cli", "demo", "sol", "--quiet"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"chain": "sol", "trades": 2, "released": 1, "resolved": 1}.items() <= last.items()
    assert last["buyer_received"] == str(10**9 + 5 * 10**8 * 3000 // 10_000)
