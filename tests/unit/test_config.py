"""Settings: defaults need nothing; environment variables override a TOML
file; a wrong value fails with a message naming the setting and its
environment variable; production refuses missing or placeholder secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_settings
from node.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ESCROWD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no ./escrowd.toml from the developer's checkout


def test_defaults_need_no_configuration() -> None:
    s = load_settings()
    assert s.mode == "dev" and s.api.host == "127.0.0.1" and s.api.port == 8000
    assert s.resolved_database_url.startswith("sqlite:///")
    assert s.evm.rpc_url is None and s.evm.confirmations >= 1


def test_toml_file_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text('log_level = "DEBUG"\n[api]\nport = 9001\n[evm]\nconfirmations = 5\n',
                   encoding="utf-8")
    monkeypatch.setenv("ESCROWD_CONFIG", str(cfg))
    s = load_settings()
    assert (s.log_level, s.api.port, s.evm.confirmations) == ("DEBUG", 9001, 5)
    monkeypatch.setenv("ESCROWD_EVM__CONFIRMATIONS", "7")
    assert load_settings().evm.confirmations == 7


def test_default_toml_in_working_directory(tmp_path: Path) -> None:
    (tmp_path / "escrowd.toml").write_text("[api]\nport = 8123\n", encoding="utf-8")
    assert load_settings().api.port == 8123


@pytest.mark.parametrize(
    "env,named",
    [
        ({"ESCROWD_API__PORT": "70000"}, "api.port (ESCROWD_API__PORT)"),
        ({"ESCROWD_EVM__CONFIRMATIONS": "0"}, "evm.confirmations"),
        ({"ESCROWD_EVM__RPC_URL": "localhost:8545"}, "evm.rpc_url"),
        ({"ESCROWD_EVM__ESCROW_ADDRESS": "0x12"}, "evm.escrow_address"),
        ({"ESCROWD_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"ESCROWD_MODE": "staging"}, "mode"),
        ({"ESCROWD_NOPE": "1"}, "ESCROWD_NOPE"),
        ({"ESCROWD_EVM__CONFIRMATION": "3"}, "ESCROWD_EVM__CONFIRMATION"),
    ],
)
def test_wrong_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert named in str(err.value)


def test_unknown_key_in_toml_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[evm]\nconfirmation = 3\n", encoding="utf-8")
    monkeypatch.setenv("ESCROWD_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="evm.confirmation"):
        load_settings()


def test_production_needs_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {
        "mode": "production",
        "database_url": "postgresql://x@y/z",
        "evm": {"rpc_url": "https://rpc", "chain_id": 1, "escrow_address": "0x" + "11" * 20,
                "agent_key": "changeme", "relayer_key": "0x" + "22" * 32},
    }
    with pytest.raises(ConfigError, match="evm.agent_key"):
        load_settings(**base)
    base["evm"]["agent_key"] = "0x" + "33" * 32  # type: ignore[index]
    s = load_settings(**base)
    assert s.evm.agent_key is not None and "33" not in repr(s)  # secrets never print
    with pytest.raises(ConfigError, match="database_url"):
        load_settings(mode="production")
