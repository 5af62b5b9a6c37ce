"""Invariant I5 on real PostgreSQL: the node never signs two conflicting
payouts for one escrow, even when many threads (each its own connection, as
separate processes would be) race to sign release and refund at once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node.db.models import SigningJournal
from node.errors import SigningError
from node.signing import sign_once, signed_decision


def test_conflicting_decision_refused(sessions: sessionmaker[Session]) -> None:
    calls: list[str] = []
    first = sign_once(sessions, chain="evm:1", escrow_key="0xaa", decision="release",
                      payload_hash="0x01", sign=lambda: calls.append("a") or "sig-a")
    assert first.signature == "sig-a"
    with pytest.raises(SigningError) as err:
        sign_once(sessions, chain="evm:1", escrow_key="0xaa", decision="refund",
                  payload_hash="0x02", sign=lambda: calls.append("b") or "sig-b")
    assert err.value.code == "conflicting_decision"
    assert calls == ["a"]  # the refund was never signed


def test_same_request_twice_signs_once(sessions: sessionmaker[Session]) -> None:
    calls: list[int] = []
    for _ in range(3):
        entry = sign_once(sessions, chain="evm:1", escrow_key="0xbb", decision="split:3000",
                          payload_hash="0x01", sign=lambda: calls.append(1) or "sig")
        assert entry.signature == "sig"
    assert len(calls) == 1


def test_other_escrows_are_independent(sessions: sessionmaker[Session]) -> None:
    sign_once(sessions, chain="evm:1", escrow_key="0x01", decision="release",
              payload_hash="0x", sign=lambda: "s1")
    sign_once(sessions, chain="evm:1", escrow_key="0x02", decision="refund",
              payload_hash="0x", sign=lambda: "s2")
    sign_once(sessions, chain="evm:5", escrow_key="0x01", decision="refund",
              payload_hash="0x", sign=lambda: "s3")
    with sessions() as s:
        assert signed_decision(s, chain="evm:1", escrow_key="0x01") == "release"
        assert signed_decision(s, chain="evm:5", escrow_key="0x01") == "refund"


def test_racing_signers_produce_one_decision(sessions: sessionmaker[Session]) -> None:
    n = 24
    barrier = threading.Barrier(n)
    results: list[str] = []
    signed: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        decision = "release" if i % 2 else "refund"
        barrier.wait()

        def sign() -> str:
            with lock:
                signed.append(decision)
            return f"sig-{decision}"

        try:
            entry = sign_once(sessions, chain="evm:1", escrow_key="0xcc", decision=decision,
                              payload_hash="0x01", sign=sign)
            out = entry.decision
        except SigningError as exc:
            out = f"refused:{exc.code}"
        with lock:
            results.append(out)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(results)
    winners = [k for k in counts if not k.startswith("refused")]
    assert len(winners) == 1, counts
    assert counts[winners[0]] == n // 2 and counts["refused:conflicting_decision"] == n // 2
    assert set(signed) == {winners[0]} and len(signed) == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(SigningJournal)) == 1
