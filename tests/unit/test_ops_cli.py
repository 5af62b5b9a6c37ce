"""The fleet's command line: roles are checked before anything starts, and
loops are assigned to the watch or sign role by what they do."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from node.cli import main
from node.runtime import BACKGROUND_ROLES, role_of


def test_unknown_role_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCROWD_CONFIG", "/nonexistent/escrowd.toml")
    assert main(["run", "--roles", "api,bogus"]) == 2
    err = capsys.readouterr().err
    assert "--roles" in err and "bogus" in err


def test_watch_needs_a_known_chain(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["watch", "--chain", "doge"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_role_of_loops() -> None:
    assert role_of(SimpleNamespace(chain="evm:1")) == "watch"
    assert role_of(SimpleNamespace(chain="btc:regtest")) == "watch"
    assert role_of(SimpleNamespace(chain="btc:regtest:watchtower")) == "sign"
    assert BACKGROUND_ROLES == ("watch", "sign", "jobs")
