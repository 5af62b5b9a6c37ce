"""ABI and bytecode of the Vyper contracts, compiled by the pinned vyper.

Compiled output is cached under ``contracts/.build/`` keyed by a hash of the
sources and the compiler version, so only the first call after a change pays
for compilation (~1 s a contract)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "contracts"
BUILD_DIR = CONTRACTS_DIR / ".build"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def _source_path(name: str) -> Path:
    for candidate in (CONTRACTS_DIR / f"{name}.vy", CONTRACTS_DIR / "mocks" / f"{name}.vy"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no contract {name!r} under {CONTRACTS_DIR}")


def _sources_digest() -> str:
    import vyper

    h = hashlib.sha256(vyper.__version__.encode())
    for path in sorted(CONTRACTS_DIR.rglob("*.vy*")):
        if ".build" in path.parts or "tests" in path.parts:
            continue
        h.update(str(path.relative_to(CONTRACTS_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@cache
def load(name: str) -> Artifact:
    """The compiled contract ``name`` (``Escrow`` or a mock in contracts/mocks/)."""
    source = _source_path(name)
    cached = BUILD_DIR / f"{name}-{_sources_digest()}.json"
    if cached.exists():
        data = json.loads(cached.read_text(encoding="utf-8"))
    else:
        from vyper.cli.vyper_compile import compile_files

        out = compile_files([str(source)], ("abi", "bytecode"), paths=[str(CONTRACTS_DIR)])
        (result,) = out.values()
        data = {"abi": result["abi"], "bytecode": result["bytecode"]}
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(cached)
    return Artifact(name=name, abi=data["abi"], bytecode=data["bytecode"])
