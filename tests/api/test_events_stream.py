"""Trade events over Server-Sent Events on a real node (anvil + PostgreSQL):
each party's stream carries the events of their trades in order (opened,
funded, paid, disputed, ...), written in the transaction of each change; an
outsider's stream carries none; ``Last-Event-ID`` resumes after the last
event seen; an event committed while a stream is open reaches it."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from node.db.models import P2POrder
from node.db.session import transaction
from node.events.outbox import emit_trade_event
from tests.api.conftest import Api
from tests.api.disputes_fixtures import *  # noqa: F403
from tests.api.disputes_fixtures import opened_dispute
from tests.api.test_api_p2p_orders import act

S = "/api/p2p-crypto/events/stream"


def read_stream(api: Api, who: str, **kw: Any) -> list[dict[str, Any]]:
    """The SSE frames of one stream (it ends after max_duration_s)."""
    params = {"max_duration_s": kw.pop("duration", 0.3), **kw.pop("params", {})}
    headers = {**api.auth(who), **kw.pop("headers", {})}
    r = api.client.get(S, params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = []
    for block in r.text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "data" in fields:
            frames.append({"id": int(fields["id"]), "event": fields["event"],
                           "data": json.loads(fields["data"])})
    return frames


def test_parties_stream_their_trade_events_and_resume(api: Api) -> None:
    t, d = opened_dispute(api)
    frames = read_stream(api, "buyer")
    kinds = [f["event"] for f in frames]
    assert kinds == ["trade.opened", "trade.funded", "dispute.opened"], kinds
    assert all(f["data"]["trade_id"] == t for f in frames)
    assert frames[-1]["data"]["data"]["dispute_id"] == d
    ids = [f["id"] for f in frames]
    assert ids == sorted(ids) and all(f["data"]["id"] == f["id"] for f in frames)
    assert [f["event"] for f in read_stream(api, "seller")] == kinds
    assert read_stream(api, "outsider") == []

    # the buyer marks paid: resuming after the last event seen gives only that
    act(api, t, "payment", "buyer")
    api.sync()
    resumed = read_stream(api, "buyer", headers={"Last-Event-ID": str(ids[-1])})
    assert [f["event"] for f in resumed] == ["trade.paid"]
    assert resumed[0]["data"]["data"]["from"] == "funded"
    assert [f["event"] for f in read_stream(api, "buyer", params={"after": ids[0]})] == [
        "trade.funded", "dispute.opened", "trade.paid"]
    assert api.get(S, "buyer", params={"after": -1}).status_code == 422
    assert api.client.get(S).status_code == 401

    # a browser's EventSource sends no header: it opens the stream with a ticket
    ticket = api.post("/api/p2p-crypto/events/stream-ticket", "buyer").json()
    assert ticket["expires_in"] == 60
    r = api.client.get(S, params={"ticket": ticket["ticket"], "max_duration_s": 0.3,
                                  "after": ids[-1]})
    assert r.status_code == 200 and "event: trade.paid" in r.text
    r = api.client.get(S, params={"ticket": ticket["ticket"] + "x", "max_duration_s": 0.3})
    assert r.status_code == 401 and r.json()["code"] == "invalid_ticket"


def test_an_event_committed_while_the_stream_is_open_reaches_it(api: Api) -> None:
    t, _d = opened_dispute(api)
    last = read_stream(api, "buyer")[-1]["id"]

    def later() -> None:
        time.sleep(0.3)
        with transaction(api.node.sessions) as s:
            trade = s.get(P2POrder, t)
            assert trade is not None
            emit_trade_event(s, trade, "test.ping", {"n": 1})

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    frames = read_stream(api, "buyer", duration=1.5, headers={"Last-Event-ID": str(last)})
    thread.join()
    assert [f["event"] for f in frames] == ["test.ping"]
    assert time.monotonic() - started < 10


def test_every_status_change_is_an_event_whatever_changed_it(api: Api) -> None:
    """Cancellation is not a chain event: the flush hook records it all the same."""
    from tests.api.disputes_fixtures import matched_trade

    t = matched_trade(api)
    r = api.delete(f"/api/p2p-crypto/orders/{t}", "seller")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    frames = [f for f in read_stream(api, "seller") if f["data"]["trade_id"] == t]
    assert [f["event"] for f in frames] == ["trade.opened", "trade.cancelled"]
    assert frames[1]["data"]["data"]["from"] == "awaiting_funding"
    assert frames[1]["data"]["data"]["status"] == "cancelled"
