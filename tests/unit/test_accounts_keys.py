"""The auth secret: production refuses to start without one (naming
auth.jwt_secret) or with a placeholder; dev mode generates one, keeps it 0600
in the data dir and reuses it; TOTP secrets encrypt under a derived key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node.accounts.keys import TotpCipher, load_secret
from node.config import load_settings
from node.errors import ConfigError


def test_production_needs_a_real_secret(tmp_path: Path) -> None:
    base = {"mode": "production", "data_dir": tmp_path, "database_url": "sqlite:///x.db",
            "evm": {"enabled": False}}
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret \(ESCROWD_AUTH__JWT_SECRET\)"):
        load_secret(load_settings(**base))
    for bad in ("changeme", "short-secret"):
        with pytest.raises(ConfigError, match="auth.jwt_secret"):
            load_secret(load_settings(**base, auth={"jwt_secret": bad}))
    good = "s" * 40
    assert load_secret(load_settings(**base, auth={"jwt_secret": good})) == good.encode()
    assert not (tmp_path / "auth_secret").exists()


def test_dev_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = load_secret(settings)
    assert len(first) >= 48
    mode = stat.S_IMODE((tmp_path / "auth_secret").stat().st_mode)
    assert mode == 0o600
    assert load_secret(settings) == first


def test_totp_cipher_round_trip_and_wrong_key() -> None:
    a, b = TotpCipher(b"a" * 48), TotpCipher(b"b" * 48)
    token = a.encrypt("JBSWY3DPEHPK3PXPJBSWY3DP")
    assert "JBSWY3DP" not in token and a.decrypt(token) == "JBSWY3DPEHPK3PXPJBSWY3DP"
    with pytest.raises(ConfigError):
        b.decrypt(token)
