"""Trade events on Bitcoin (real regtest node + PostgreSQL): the Bitcoin
sync and payment paths change trade statuses without any event call of
their own, and every change still reaches the parties' SSE stream in order."""

from __future__ import annotations

import json
from typing import Any

from tests.functional.btc_node_fixtures import *  # noqa: F403
from tests.functional.btc_node_fixtures import BtcApi


def _stream(api: BtcApi, who: str) -> list[dict[str, Any]]:
    r = api.client.get("/api/p2p-crypto/events/stream", params={"max_duration_s": 0.3},
                       headers=api.auth(who))
    assert r.status_code == 200, r.text
    return [json.loads(line[len("data: "):]) for line in r.text.splitlines()
            if line.startswith("data: ")]


def test_bitcoin_trade_events(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(150_000)
    tid = int(m["order"]["id"])
    btc_api.fund(m)
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/payment", "buyer", json={})
    assert r.status_code == 200, r.text
    events = [e for e in _stream(btc_api, "seller") if e["trade_id"] == tid]
    assert [e["type"] for e in events] == ["trade.opened", "trade.funded", "trade.paid"]
    assert [e["data"]["from"] for e in events[1:]] == ["awaiting_funding", "funded"]
    assert _stream(btc_api, "buyer") == events
    assert _stream(btc_api, "outsider") == []
