"""Crash points: the spec parser, and that an armed point really kills the
process with SIGKILL at its n-th hit (and not before), leaving a marker."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.crashpoints import CrashSpec, parse_spec


def test_parse_spec() -> None:
    assert parse_spec(None) is None
    assert parse_spec("") is None
    assert parse_spec("relay.signed") == CrashSpec("relay.signed", 1)
    assert parse_spec("relay.signed:3") == CrashSpec("relay.signed", 3)
    assert parse_spec("a:b:2") == CrashSpec("a:b", 2)
    for bad in ("x:0", "x:-1", ":2", "x:two"):
        with pytest.raises(ValueError):
            parse_spec(bad)


SCRIPT = """
import sys
from node.crashpoints import crashpoint
for i in range(1, 6):
    crashpoint("other")
    print(i, flush=True)
    crashpoint("here")
"""


def test_armed_point_kills_at_nth_hit(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = {"ESCROWD_OPS__CRASH_AT": "here:3", "ESCROWD_OPS__CRASH_MARKER": str(marker),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == -signal.SIGKILL
    assert out.stdout.split() == ["1", "2", "3"]
    assert marker.read_text().startswith("here:3 pid=")


def test_unarmed_points_do_nothing(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0
    assert out.stdout.split() == ["1", "2", "3", "4", "5"]
