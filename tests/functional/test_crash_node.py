"""Crash tests: a node process is killed with SIGKILL at named points of
deposit processing, relaying and signing, restarted, and must end exactly
where a run that never crashed ends, and agree with the chain.

The node process (``escrowd run --roles watch,sign --chain evm``: the EVM
watcher and the relayer under leadership, real anvil, real PostgreSQL, one
database per test) starts from the world of fleet_fixtures: released trades
whose seller-signed release is queued, and deposits on chain not yet
credited. For each crash point the process is armed to die at the point's
first hit, then, restarted again and again, at its second hit (so every
restart makes progress), until a run finishes without reaching the point;
every death is checked to be that point's SIGKILL (exit -9 and the marker
the crash point writes just before dying). Then:

- the database equals the uncrashed run's: every deposit credited once with
  its on-chain amount, every release relayed and indexed once, the same
  relay jobs with the same nonces (``digest``);
- the chain agrees: the relayer sent exactly one transaction per job (its
  on-chain nonce moved by the number of jobs: nothing submitted twice), all
  mined and successful, each escrow in the state the mirror shows
  (``check_chain``).

The signing journal (I5) is killed the same way in worker processes that
sign payouts: each escrow ends with one decision and one signature, the
deterministic one, and a conflicting decision is still refused.

The last test checks that the module killed processes at least 100 times
and that most deaths left work unfinished (really mid-work).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import pg
from tests.functional.fleet_fixtures import (
    NodeProcess,
    World,
    build_world,
    check_chain,
    converged,
    digest,
    expected_signature,
    leaders,
    sign_worker,
    wait_until,
)

RELEASED, DEPOSITS = 6, 4
ARGV = ["run", "--roles", "watch,sign", "--chain", "evm"]
MAX_RUNS = 30  # per point; a point hit more often than this is a bug here

NODE_POINTS = [
    "watch.read",       # a block's events read, nothing stored
    "watch.credit",     # events stored, trades about to be credited
    "watch.credited",   # trades credited, transaction not committed
    "watch.committed",  # step committed
    "relay.nonce",      # nonce allocated, nothing signed
    "relay.signed",     # transaction signed, not stored
    "relay.after_signed",  # stored, not broadcast
    "relay.broadcast",  # broadcast, 'sent' not stored
    "relay.after_sent",
    "relay.followed",   # receipt seen, not stored
    "relay.after_confirmed",
]
SIGN_POINTS = ["sign.locked", "sign.signed", "sign.committed"]

# (point, n-th hit, work left unfinished at death) of every kill in this module
KILLS: list[tuple[str, int, bool]] = []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: str,
          pg_template: str) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("crash-world"), pg_server, pg_template,
                           released=RELEASED, deposits=DEPOSITS)


@pytest.fixture
def world_db(world: World) -> Iterator[str]:
    world.reset_chain()
    name, url = world.fresh_db()
    yield url
    pg.drop_database(world.server_url, name)


def finish(world: World, db: str, tmp: Path, log: str) -> None:
    """Run the node unarmed until it has done everything; stop it with SIGTERM
    (a graceful stop exits 0)."""
    proc = NodeProcess.start(world.env(db, tmp / "node"), ARGV, tmp / log)
    try:
        # leaders: the watcher and the signer took their roles (the process
        # is up, not merely forked)
        wait_until(lambda: leaders(db) >= 2 and converged(db, world.anvil.block_number()), 60,
                   f"the node to finish (log: {proc.log_path})")
    finally:
        code = proc.terminate(30)
    assert code == 0, proc.log()


@pytest.fixture(scope="module")
def reference(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run that never crashed."""
    tmp = tmp_path_factory.mktemp("crash-ref")
    world.reset_chain()
    name, db = world.fresh_db()
    try:
        finish(world, db, tmp, "reference.log")
        check_chain(world, db)
        ref = digest(db)
    finally:
        pg.drop_database(world.server_url, name)
    statuses = collections.Counter(t[1] for t in ref["trades"])
    assert statuses == {"completed": RELEASED, "funded": DEPOSITS}, ref["trades"]
    return ref


def crash_repeatedly(world: World, db: str, tmp: Path, point: str, argv: list[str]) -> int:
    """Kill the node at ``point`` (first hit, then second hits) until a run
    no longer reaches it; returns the number of deaths."""
    marker = tmp / "crash.marker"
    kills = 0
    for run in range(MAX_RUNS):
        hit = 1 if run == 0 else 2
        env = world.env(db, tmp / "node", ESCROWD_OPS__CRASH_AT=f"{point}:{hit}",
                        ESCROWD_OPS__CRASH_MARKER=str(marker))
        proc = NodeProcess.start(env, argv, tmp / f"run{run}.log")
        while proc.wait(0.05) is None:
            if converged(db, world.anvil.block_number()):
                assert proc.terminate(30) == 0, proc.log()
                return kills
        code = proc.wait(0)
        assert code == -9, f"{point}: exit {code}, not SIGKILL\n{proc.log()}"
        last = marker.read_text(encoding="utf-8").splitlines()[-1]
        assert last == f"{point}:{hit} pid={proc.pid}", last
        kills += 1
        KILLS.append((point, hit, not converged(db, world.anvil.block_number())))
    raise AssertionError(f"{point} still hit after {MAX_RUNS} runs")


@pytest.mark.parametrize("point", NODE_POINTS)
def test_node_killed_at_point_ends_as_if_never_crashed(
    world: World, reference: dict[str, Any], world_db: str, tmp_path: Path, point: str
) -> None:
    kills = crash_repeatedly(world, world_db, tmp_path, point, ARGV)
    assert kills >= 1, f"{point} was never reached"
    finish(world, world_db, tmp_path, "final.log")
    assert digest(world_db) == reference
    check_chain(world, world_db)


# --- the signing journal -------------------------------------------------------

ESCROWS = {f"0x{i:064x}": ("release" if i % 2 else "refund") for i in range(1, 19)}


def journal(db: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT escrow_key, decision, signature FROM signing_journal").fetchall()
    return {k: (d, s) for k, d, s in rows}


@pytest.mark.parametrize("point", SIGN_POINTS)
def test_signer_killed_at_point_signs_each_escrow_once(
    world: World, world_db: str, tmp_path: Path, point: str
) -> None:
    calls = tmp_path / "sign-calls.log"
    marker = tmp_path / "crash.marker"
    target = "tests.functional.fleet_fixtures:sign_worker"
    kills = 0
    for run in range(MAX_RUNS):
        hit = 1 if run == 0 else 2
        env = {"ESCROWD_OPS__CRASH_AT": f"{point}:{hit}",
               "ESCROWD_OPS__CRASH_MARKER": str(marker)}
        proc = NodeProcess.call(env, target, (world_db, ESCROWS, str(calls)),
                                tmp_path / f"sign{run}.log")
        code = proc.wait(60)
        if code == 0:
            break
        assert code == -9, proc.log()
        assert marker.read_text(encoding="utf-8").splitlines()[-1] == (
            f"{point}:{hit} pid={proc.pid}")
        kills += 1
        KILLS.append((point, hit, len(journal(world_db)) < len(ESCROWS)
                      or point != "sign.committed"))
    else:
        raise AssertionError(f"{point} still hit after {MAX_RUNS} runs")
    assert kills >= 1
    got = journal(world_db)
    assert got == {k: (d, expected_signature(k, d)) for k, d in ESCROWS.items()}
    # every signature ever made for an escrow was for its one decision
    made = [line.split() for line in calls.read_text(encoding="utf-8").splitlines()]
    assert all(ESCROWS[key] == decision for key, decision, _pid in made)
    # and a conflicting decision is refused after all the crashes
    flipped = {k: ("refund" if d == "release" else "release") for k, d in ESCROWS.items()}
    sign_worker(world_db, flipped, str(tmp_path / "flipped.log"))
    assert journal(world_db) == got
    assert not (tmp_path / "flipped.log").exists()


def test_suite_killed_at_least_100_times_mostly_mid_work() -> None:
    """Counts the deaths of the tests above (run the module, not this alone)."""
    points = {p for p, _n, _mid in KILLS}
    assert points == set(NODE_POINTS) | set(SIGN_POINTS), points
    assert len(KILLS) >= 100, len(KILLS)
    mid_work = sum(1 for _p, _n, mid in KILLS if mid)
    print(f"\ncrash suite: {len(KILLS)} kills, {mid_work} with work unfinished, "
          f"{len(points)} points")
    assert mid_work >= 0.9 * len(KILLS), (mid_work, len(KILLS))
