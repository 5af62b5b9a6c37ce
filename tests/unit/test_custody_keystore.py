"""The custody seed file: generated once (0600) in dev mode and reused;
production refuses to start without it, naming the setting, and refuses a
file others can read or that is not a mnemonic."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node.custody.keystore import SETTING, load_keys, write_seed_file
from node.errors import ConfigError


def test_dev_generates_once_with_mode_0600(tmp_path: Path) -> None:
    a = load_keys(mode="dev", data_dir=tmp_path, seed_file=None)
    path = tmp_path / "custody" / "seed"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text(encoding="utf-8")
    b = load_keys(mode="dev", data_dir=tmp_path, seed_file=None)
    assert path.read_text(encoding="utf-8") == first
    assert a.evm_deposit(1).address == b.evm_deposit(1).address
    with pytest.raises(FileExistsError):
        write_seed_file(path)  # never overwrites a seed


def test_production_needs_the_configured_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_keys(mode="production", data_dir=tmp_path, seed_file=None)
    assert "custody.seed_file" in err.value.message
    with pytest.raises(ConfigError) as err:
        load_keys(mode="production", data_dir=tmp_path, seed_file=tmp_path / "missing")
    assert SETTING in err.value.message and "missing" in err.value.message
    assert not (tmp_path / "custody").exists()  # nothing generated in production


def test_refuses_readable_or_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "seed"
    write_seed_file(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keys(mode="production", data_dir=tmp_path, seed_file=path)
    bad = tmp_path / "bad"
    write_seed_file(bad, "not a mnemonic at all")
    with pytest.raises(ConfigError, match="BIP-39"):
        load_keys(mode="production", data_dir=tmp_path, seed_file=bad)


def test_custody_on_in_dev_and_in_production_only_with_a_seed_file(tmp_path: Path) -> None:
    from node.config import load_settings
    from node.custody.service import enabled

    prod = {"mode": "production", "database_url": "sqlite:///x.sqlite", "evm": {"enabled": False}}
    assert enabled(load_settings(mode="dev", data_dir=tmp_path))
    assert not enabled(load_settings(**prod))
    assert enabled(load_settings(**prod, custody={"seed_file": str(tmp_path / "seed")}))
    forced = load_settings(**prod, custody={"enabled": True})
    assert enabled(forced)
    with pytest.raises(ConfigError, match="custody.seed_file"):
        load_keys(mode=forced.mode, data_dir=tmp_path, seed_file=forced.custody.seed_file)
