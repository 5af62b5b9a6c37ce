"""The per-process fan-out of trade changes: a waiter registered before its
read hears a change published after it, even one published before it starts
waiting; unrelated trades and unwatched trades wake nobody."""

from __future__ import annotations

import threading
import time

from node.changes import ChangeHub


def test_change_published_after_watch_wakes_the_waiter() -> None:
    hub = ChangeHub()
    seen = hub.watch(1)
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(hub.wait(1, seen, 10)))
    t.start()
    time.sleep(0.05)
    hub.publish([1])
    t.join(5)
    assert woke == [True]
    hub.unwatch(1)


def test_change_between_read_and_wait_is_not_lost() -> None:
    hub = ChangeHub()
    seen = hub.watch(2)
    hub.publish([2])  # lands after the caller's read, before its wait
    t0 = time.monotonic()
    assert hub.wait(2, seen, 10) is True
    assert time.monotonic() - t0 < 1
    hub.unwatch(2)


def test_other_trades_do_not_wake_and_the_wait_times_out() -> None:
    hub = ChangeHub()
    seen = hub.watch(3)
    hub.publish([4, 5])
    t0 = time.monotonic()
    assert hub.wait(3, seen, 0.2) is False
    assert time.monotonic() - t0 >= 0.2
    hub.unwatch(3)


def test_unwatched_trades_keep_no_state() -> None:
    hub = ChangeHub()
    hub.publish([6])
    assert hub.version(6) == 0
    a = hub.watch(6)
    b = hub.watch(6)
    assert a == b == 0
    hub.publish([6])
    hub.unwatch(6)
    assert hub.version(6) == 1  # one waiter left
    hub.unwatch(6)
    assert hub.version(6) == 0
