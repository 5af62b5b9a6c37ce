"""Where the custody seed lives: a BIP-39 mnemonic in a 0600 file.

Dev mode generates it once under ``<data_dir>/custody/seed``; production reads
the configured ``custody.seed_file`` and refuses to start when it is not set,
missing or readable by others (the error names the setting)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from node.errors import ConfigError
from wallets.custody_keys import CustodyKeys, new_mnemonic

SETTING = "custody.seed_file (ESCROWD_CUSTODY__SEED_FILE)"


def write_seed_file(path: Path, mnemonic: str | None = None) -> None:
    """Create ``path`` (0600, exclusive: never overwrites a seed) with a new mnemonic."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write((mnemonic or new_mnemonic()) + "\n")


def load_keys(*, mode: str, data_dir: Path, seed_file: Path | None) -> CustodyKeys:
    if seed_file is None:
        if mode != "dev":
            raise ConfigError(f"{SETTING} is required in production mode", setting=SETTING)
        seed_file = data_dir / "custody" / "seed"
        if not seed_file.exists():
            write_seed_file(seed_file)
    if not seed_file.is_file():
        raise ConfigError(f"{SETTING}: no seed file at {seed_file}", setting=SETTING)
    if stat.S_IMODE(seed_file.stat().st_mode) & 0o077:
        raise ConfigError(
            f"{SETTING}: {seed_file} is readable by group or others (chmod 600)", setting=SETTING
        )
    try:
        return CustodyKeys(seed_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{SETTING}: {seed_file}: {exc}", setting=SETTING) from exc
