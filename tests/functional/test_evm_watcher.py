"""The EVM watcher against a real anvil and a real PostgreSQL.

Proves that the watcher:
- indexes every event of a funded, paid and released escrow (native coin and
  an 18-decimal token) with the right arguments: uint256 amounts as decimal
  strings, small ints as ints, checksummed addresses, 0x-hex ids;
- hands an escrow to ``on_confirmed`` only once its events have the
  configured confirmations, inside the transaction that stores them;
- on a reorg that drops the funding transaction, deletes its events and
  blocks, re-applies the new branch and hands the escrow to ``on_confirmed``
  again, in the same transaction;
- finds a reorg that happened while it was stopped on its first step;
- halts on a reorg deeper than ``finality_depth`` (ChainCursor.halted set,
  ReorgTooDeepError, and it stays halted);
- follows new heads over the websocket subscription, and by polling without it;
- works the same on the embedded SQLite database.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from localchain.ports import wait_until
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node.chains.evm.watcher import EvmWatcher
from node.db.models import ChainBlock, ChainCursor, ChainEvent
from node.errors import ReorgTooDeepError
from tests.functional.evm_fixtures import EvmChain, make_ref


class Recorder:
    """An on_confirmed callback that records what it was given and what the
    database looked like inside the watcher's transaction."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[str], int, dict[str, list[str]]]] = []

    def __call__(self, session: Session, chain: str, keys: set[str], confirmed: int) -> None:
        assert session.in_transaction()
        assert chain.startswith("evm:")
        seen: dict[str, list[str]] = {}
        for key in keys:
            seen[key] = list(
                session.execute(
                    select(ChainEvent.name)
                    .where(ChainEvent.escrow_key == key, ChainEvent.block_number <= confirmed)
                    .order_by(ChainEvent.block_number, ChainEvent.log_index)
                ).scalars()
            )
        self.calls.append((set(keys), confirmed, seen))

    def keys(self) -> set[str]:
        return set().union(*(c[0] for c in self.calls)) if self.calls else set()


def make_watcher(
    chain: EvmChain, sessions: sessionmaker[Session], rec: Recorder | None = None, **kw: Any
) -> EvmWatcher:
    kw.setdefault("confirmations", 2)
    kw.setdefault("finality_depth", 32)
    return EvmWatcher(
        chain.adapter(),
        sessions,
        start_block=chain.deployment.deploy_block,
        on_confirmed=rec,
        **kw,
    )


def events_of(sessions: sessionmaker[Session], key: str) -> list[ChainEvent]:
    with sessions() as s:
        return list(
            s.execute(
                select(ChainEvent)
                .where(ChainEvent.escrow_key == key)
                .order_by(ChainEvent.block_number, ChainEvent.log_index)
            ).scalars()
        )


def test_indexes_funded_paid_released_escrows(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    native = c.open_native(make_ref(1), amount=3 * 10**18)
    c.mark_paid(native)
    c.release(native)
    big = 500_000 * 10**18 + 1  # far above 2**53
    token_id = c.open_token(make_ref(2), "TUSD", big)
    c.anvil.mine(2)

    rec = Recorder()
    r = make_watcher(c, sessions, rec).sync()
    assert r.head == c.anvil.block_number()

    evs = events_of(sessions, native)
    assert [e.name for e in evs] == ["Opened", "MarkedPaid", "Released"]
    opened, paid, released = (e.args for e in evs)
    assert opened["id"] == native and native.startswith("0x") and len(native) == 66
    assert opened["seller"] == c.seller.address  # checksummed
    assert opened["buyer"] == c.buyer.address
    assert opened["arbitrator"] == c.arbitrator.address
    assert opened["token"] == "0x0000000000000000000000000000000000000000"
    assert opened["amount"] == str(3 * 10**18)
    assert opened["fee_bps"] == 50
    assert isinstance(opened["payment_deadline"], int)
    assert opened["deadline"] > opened["payment_deadline"]
    assert opened["ref"] == "0x" + make_ref(1).hex()
    assert paid == {"id": native, "buyer": c.buyer.address}
    fee = 3 * 10**18 * 50 // 10_000
    assert released == {
        "id": native,
        "buyer": c.buyer.address,
        "amount": str(3 * 10**18 - fee),
        "fee": str(fee),
    }
    tx = c.w3.eth.get_transaction_receipt(evs[0].tx_hash)
    assert tx["blockNumber"] == evs[0].block_number
    assert "0x" + bytes(tx["blockHash"]).hex() == evs[0].block_hash

    (tok_opened,) = (e.args for e in events_of(sessions, token_id))
    assert tok_opened["amount"] == str(big)
    assert tok_opened["token"] == c.deployment.token("TUSD").address

    with sessions() as s:
        # the contract-wide fee change is stored without an escrow key
        fee_changed = s.execute(
            select(ChainEvent).where(ChainEvent.name == "FeeChanged")
        ).scalar_one()
        assert fee_changed.escrow_key == ""
        assert fee_changed.args == {"fee_bps": 50, "recipient": c.deployment.fee_recipient}
        # every event's block is stored with the chain's hash
        for e in evs:
            blk = s.get(ChainBlock, (e.chain, e.block_number))
            assert blk is not None and blk.hash == e.block_hash
        cur = s.get(ChainCursor, c.adapter().chain_key)
        assert cur is not None and cur.head_number == r.head and cur.halted is None

    assert rec.keys() == {native, token_id}
    last = {k: names for call in rec.calls for k, names in call[2].items()}
    assert last[native] == ["Opened", "MarkedPaid", "Released"]


def test_escrow_passed_to_on_confirmed_only_after_n_confirmations(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    rec = Recorder()
    w = make_watcher(c, sessions, rec, confirmations=3)
    w.sync()
    key = c.open_native(make_ref(7))
    funded_block = c.anvil.block_number()

    w.sync()  # 1 confirmation
    assert key not in rec.keys()
    assert [e.name for e in events_of(sessions, key)] == ["Opened"]  # stored, unconfirmed
    c.anvil.mine(1)
    w.sync()  # 2 confirmations
    assert key not in rec.keys()
    c.anvil.mine(1)
    w.sync()  # 3 confirmations
    assert len(rec.calls) == 1
    keys, confirmed, seen = rec.calls[0]
    assert keys == {key} and confirmed == funded_block and seen[key] == ["Opened"]
    c.anvil.mine(3)
    w.sync()
    assert len(rec.calls) == 1  # not handed over again without news


def test_reorg_removes_funding_and_reports_escrow_again(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    rec = Recorder()
    w = make_watcher(c, sessions, rec, confirmations=2)
    w.sync()
    snap = c.anvil.snapshot()
    key = c.open_native(make_ref(9))
    c.anvil.mine(3)
    w.sync()
    assert rec.keys() == {key}
    assert [e.name for e in events_of(sessions, key)] == ["Opened"]
    rec.calls.clear()

    # another branch without the funding transaction, longer than the old one
    c.anvil.revert(snap)
    c.anvil.mine(6)
    r = w.sync()
    assert r.reorg_depth >= 4
    assert events_of(sessions, key) == []
    assert len(rec.calls) == 1
    keys, _confirmed, seen = rec.calls[0]
    assert keys == {key} and seen[key] == []  # un-funded, in the same transaction
    with sessions() as s:
        for blk in s.execute(select(ChainBlock).where(ChainBlock.number > r.head - 32)).scalars():
            assert blk.hash == "0x" + bytes(c.w3.eth.get_block(blk.number)["hash"]).hex()


def test_reorg_while_stopped_is_detected_on_start(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    key = c.open_native(make_ref(11))
    c.anvil.mine(2)
    rec = Recorder()
    make_watcher(c, sessions, rec).sync()
    assert rec.keys() == {key}
    with sessions() as s:
        old_head = s.execute(select(ChainCursor.head_hash)).scalar_one()

    # node down: the last 3 blocks (funding included) are replaced
    c.anvil.reorg(3)
    assert "0x" + bytes(c.w3.eth.get_block("latest")["hash"]).hex() != old_head

    rec2 = Recorder()
    r = make_watcher(c, sessions, rec2).step()  # a new process' first step
    assert r.reorg_depth == 3
    assert events_of(sessions, key) == []
    assert rec2.keys() == {key}


def test_reorg_deeper_than_finality_halts(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    rec = Recorder()
    w = make_watcher(c, sessions, rec, finality_depth=4)
    w.sync()
    snap = c.anvil.snapshot()
    c.open_native(make_ref(13))
    c.anvil.mine(6)
    w.sync()
    c.anvil.revert(snap)
    c.anvil.mine(9)
    with pytest.raises(ReorgTooDeepError):
        w.sync()
    with sessions() as s:
        cur = s.execute(select(ChainCursor)).scalar_one()
        assert cur.halted is not None and "finality_depth=4" in cur.halted
        n_events = s.execute(select(func.count()).select_from(ChainEvent)).scalar_one()
    assert n_events > 0  # nothing rolled back: an operator decides
    with pytest.raises(ReorgTooDeepError):
        make_watcher(c, sessions, rec, finality_depth=4).step()  # stays halted


def test_follows_new_heads_over_websocket(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    rec = Recorder()
    # a poll interval far above the wait below: only the websocket can wake it
    w = make_watcher(c, sessions, rec, confirmations=1, poll_interval_s=60)
    w.sync()
    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    try:
        time.sleep(0.5)  # let the subscription connect
        key = c.open_native(make_ref(21))
        wait_until(lambda: key in rec.keys(), timeout=10, what="escrow confirmed via newHeads")
    finally:
        stop.set()
        c.anvil.mine(1)  # wake the loop so it sees stop
        t.join(timeout=10)
    assert not t.is_alive()


def _header_of(c: EvmChain, number: int) -> Any:
    from node.chains.base import BlockHeader

    b = c.w3.eth.get_block(number)
    return BlockHeader(number, "0x" + bytes(b["hash"]).hex(),
                       "0x" + bytes(b["parentHash"]).hex(), int(b["timestamp"]))


def test_announced_head_spares_round_trips_and_indexes_the_same(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    """A step given the websocket's header of the next block reads only its
    logs (one round trip), and stores exactly what a plain step would."""
    c = evm_chain
    rec = Recorder()
    w = make_watcher(c, sessions, rec, confirmations=1)
    w.sync()
    key = c.open_native(make_ref(23))
    n = c.anvil.block_number()
    calls: list[str] = []
    real = w.adapter.rpc.call, w.adapter.rpc.batch
    w.adapter.rpc.call = lambda m, *a: (calls.append(m), real[0](m, *a))[1]  # type: ignore[method-assign]
    w.adapter.rpc.batch = lambda reqs: (calls.append("batch"), real[1](reqs))[1]  # type: ignore[method-assign]
    r = w.step(_header_of(c, n))
    assert calls == ["eth_getLogs"]
    assert r.head == n and r.events == 1 and rec.keys() == {key}
    with sessions() as s:
        stored = s.execute(select(ChainBlock.hash).where(ChainBlock.number == n)).scalar_one()
    assert stored == _header_of(c, n).hash


def test_announced_head_from_a_dropped_branch_is_not_trusted(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    """A header announced for a block that a reorg replaced: its logs do not
    match it, the step is retried the long way, nothing wrong is stored."""
    c = evm_chain
    rec = Recorder()
    w = make_watcher(c, sessions, rec, confirmations=1)
    w.sync()
    snap = c.anvil.snapshot()
    c.open_native(make_ref(24))
    stale = _header_of(c, c.anvil.block_number())
    c.anvil.revert(snap)
    key = c.open_native(make_ref(25))  # another block at the same height
    r = w.step(stale)
    assert r.retried
    r = w.sync()
    assert rec.keys() == {key}
    assert [e.name for e in events_of(sessions, key)] == ["Opened"]


def test_follows_by_polling_without_websocket(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    rec = Recorder()
    w = make_watcher(c, sessions, rec, confirmations=1, poll_interval_s=0.1,
                     use_websocket=False)
    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    try:
        key = c.open_native(make_ref(22))
        wait_until(lambda: key in rec.keys(), timeout=10, what="escrow confirmed by polling")
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()


def test_watcher_on_embedded_sqlite(evm_chain: EvmChain, tmp_path: Any) -> None:
    """The embedded default database: same indexing and reorg handling."""
    from node.db.migrate import upgrade
    from node.db.session import make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{tmp_path / 'node.sqlite'}")
    upgrade(engine)
    try:
        sessions = make_sessionmaker(engine)
        c = evm_chain
        rec = Recorder()
        w = make_watcher(c, sessions, rec, confirmations=1)
        key = c.open_native(make_ref(31), amount=2**60)
        c.mark_paid(key)
        w.sync()
        evs = events_of(sessions, key)
        assert [e.name for e in evs] == ["Opened", "MarkedPaid"]
        assert evs[0].args["amount"] == str(2**60)
        assert rec.keys() == {key}
        c.anvil.reorg(1)  # drops the mark_paid block
        r = w.sync()
        assert r.reorg_depth == 1
        assert [e.name for e in events_of(sessions, key)] == ["Opened"]
    finally:
        engine.dispose()
