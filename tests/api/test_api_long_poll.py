"""Long-poll reads of a trade (GET /orders/{id}?wait=&if_status=): the answer
comes the moment the watcher's transaction that changes the trade commits,
not at the next poll; a wait with no change ends at its time limit with the
same status; the usual access checks and bad-input errors apply."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import fund, match, post_ad


def open_funded_unconfirmed(api: Api) -> tuple[str, dict[str, Any]]:
    ad = post_ad(api).json()
    opened = match(api, ad["id"]).json()
    fund(api, opened["funding"])
    url = f"/api/p2p-crypto/orders/{opened['order']['id']}"
    return url, api.get(url, "buyer").json()


def test_long_poll_answers_when_the_confirming_step_commits(api: Api) -> None:
    url, before = open_funded_unconfirmed(api)
    assert before["status"] != "funded"
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(api.get, url, "buyer",
                          params={"wait": 20, "if_status": before["status"]})
        time.sleep(0.5)
        assert not fut.done()  # parked: nothing changed yet
        t0 = time.monotonic()
        api.sync(mine=2)  # confirmations reached; the watcher commits "funded"
        r = fut.result(timeout=20)
        answered_after = time.monotonic() - t0
    assert r.status_code == 200 and r.json()["status"] == "funded"
    assert answered_after < 15  # by the notification, far before the 20 s wait ends


def test_long_poll_without_change_ends_at_its_wait_with_the_same_status(api: Api) -> None:
    url, before = open_funded_unconfirmed(api)
    t0 = time.monotonic()
    r = api.get(url, "buyer", params={"wait": 0.6, "if_status": before["status"]})
    assert time.monotonic() - t0 >= 0.6
    assert r.status_code == 200 and r.json()["status"] == before["status"]


def test_long_poll_on_another_status_answers_at_once(api: Api) -> None:
    url, before = open_funded_unconfirmed(api)
    t0 = time.monotonic()
    r = api.get(url, "buyer", params={"wait": 20, "if_status": "released"})
    assert time.monotonic() - t0 < 10
    assert r.json()["status"] == before["status"]


def test_long_poll_keeps_access_checks_and_refuses_bad_waits(api: Api) -> None:
    url, before = open_funded_unconfirmed(api)
    api.tokens.setdefault("stranger", _token(api, "stranger"))
    r = api.get(url, "stranger", params={"wait": 5, "if_status": before["status"]})
    assert r.status_code in (403, 404)
    assert api.get(url, params={"wait": 5, "if_status": before["status"]}).status_code == 401
    for bad in ({"wait": 31, "if_status": "x"}, {"wait": -1}, {"wait": "soon"}):
        r = api.get(url, "buyer", params=bad)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_a_rolled_back_change_wakes_nobody(api: Api) -> None:
    """Only committed changes are published."""
    from node.changes import hub, note_trades_changed

    seen = hub.watch(424242)
    try:
        with api.node.sessions() as s, s.begin():
            note_trades_changed(s, [424242])
            s.rollback()
        assert hub.version(424242) == seen
        with api.node.sessions() as s, s.begin():
            note_trades_changed(s, [424242])
        assert hub.version(424242) != seen
    finally:
        hub.unwatch(424242)


def _token(api: Api, name: str) -> str:
    from node.db.session import transaction
    from node.trades import create_user

    with transaction(api.node.sessions) as s:
        _, token = create_user(s, username=name)
    return token


