"""The trading endpoints on a real node (anvil + PostgreSQL): pairs and their
parameters, placing orders that rest and match, aggregated depth, the caller's
orders and trade history with pagination, cancel releasing the hold in the
custody ledger, bad input as 4xx problem+json with the engine's codes, an
order the engine refuses kept as rejected, another user's order invisible
(404) and no token a 401; the WebSocket stream sends a snapshot, then book
deltas and trades."""

from __future__ import annotations

from typing import Any

from node.db.models_trading import TradingOrder
from tests.api.conftest import Api
from tests.api.trading_fixtures import *  # noqa: F403
from tests.api.trading_fixtures import available, held, usd

ETH = 10**18
P = usd(2_000)  # 2,000 USDT per ETH, in micro-USDT


def order(pair: int, side: str, qty: int, price: int | None = None, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"trading_pair_id": pair, "side": side,
                            "order_type": "limit" if price is not None else "market",
                            "quantity": str(qty), **kw}
    if price is not None:
        body["price"] = str(price)
    return body


def problem(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == code, resp.json()


def test_trading_through_the_api(api: Api, eth_usdt: int) -> None:
    pair = eth_usdt
    pairs = api.get("/api/p2p-crypto/trading-pairs").json()
    assert pairs["total"] == 1
    spec = pairs["data"][0]
    assert spec["symbol"] == "ETHUSDT" and spec["base_asset"] == "ETH"
    assert spec["price_scale"] == str(ETH) and spec["price_tick_size"] == "10000"
    assert api.get(f"/api/p2p-crypto/trading-pairs/{pair}").json()["id"] == pair

    r = api.post("/api/p2p-crypto/trading-orders", "seller", json=order(pair, "sell", ETH, P))
    assert r.status_code == 201, r.text
    sell = r.json()
    assert sell["status"] == "open" and sell["held"] == str(ETH)
    api.post("/api/p2p-crypto/trading-orders", "seller", json=order(pair, "sell", ETH, P + 10_000))
    book = api.get(f"/api/p2p-crypto/trading-pairs/{pair}/orderbook").json()
    assert book["asks"] == [[str(P), str(ETH)], [str(P + 10_000), str(ETH)]]
    assert book["bids"] == [] and book["last_price"] is None

    r = api.post("/api/p2p-crypto/trading-orders", "buyer",
                 json=order(pair, "buy", ETH // 4, P + 10_000, client_order_id="b-1"))
    assert r.status_code == 201, r.text
    buy = r.json()
    assert buy["status"] == "filled" and buy["executed_quote"] == str(usd(500))
    assert buy["avg_price"] == "2000000000.00000000" or float(buy["avg_price"]) == P
    assert buy["fee"] == str(ETH // 4 * 20 // 10_000) and buy["fee_currency"] == "ETH"
    # the same client_order_id again: the order it placed, not a second one
    again = api.post("/api/p2p-crypto/trading-orders", "buyer",
                     json=order(pair, "buy", ETH // 4, P + 10_000, client_order_id="b-1"))
    assert again.status_code == 201 and again.json()["id"] == buy["id"]

    book = api.get(f"/api/p2p-crypto/trading-pairs/{pair}/orderbook?depth=1").json()
    assert book["asks"] == [[str(P), str(ETH - ETH // 4)]] and book["last_price"] == str(P)

    history = api.get("/api/p2p-crypto/trade-history", "buyer").json()
    assert history["total"] == 1
    (t,) = history["data"]
    assert (t["side"], t["role"], t["price"], t["quantity"]) == ("buy", "taker", str(P),
                                                                 str(ETH // 4))
    (m,) = api.get("/api/p2p-crypto/trade-history", "seller").json()["data"]
    assert (m["side"], m["role"], m["fee_currency"]) == ("sell", "maker", "USDT")
    assert api.get("/api/p2p-crypto/trade-history", "outsider").json()["total"] == 0
    trades = api.get(f"/api/p2p-crypto/trading-pairs/{pair}/trades").json()
    assert [x["quantity"] for x in trades] == [str(ETH // 4)]

    mine = api.get("/api/p2p-crypto/trading-orders?limit=1", "seller").json()
    assert mine["total"] == 2 and len(mine["data"]) == 1 and mine["limit"] == 1
    opened = api.get("/api/p2p-crypto/trading-orders", "seller",
                     params={"status": "partially_filled", "trading_pair_id": pair}).json()
    assert [o["id"] for o in opened["data"]] == [sell["id"]]

    # ownership: another user's order does not exist for them; no token is a 401
    problem(api.get(f"/api/p2p-crypto/trading-orders/{sell['id']}", "buyer"), 404,
            "order_not_found")
    problem(api.delete(f"/api/p2p-crypto/trading-orders/{sell['id']}", "buyer"), 404,
            "order_not_found")
    assert api.get("/api/p2p-crypto/trading-orders").status_code == 401
    assert api.post("/api/p2p-crypto/trading-orders", json=order(pair, "buy", ETH, P)
                    ).status_code == 401

    r = api.client.patch(f"/api/p2p-crypto/trading-orders/{sell['id']}", headers=api.auth("buyer"),
                         json={"quantity": str(ETH // 2)})
    problem(r, 404, "order_not_found")
    r = api.client.patch(f"/api/p2p-crypto/trading-orders/{sell['id']}", headers=api.auth("seller"),
                         json={"quantity": str(ETH // 8)})
    problem(r, 422, "amend_not_reduce")  # a quarter is filled already
    with api.node.sessions() as s:
        row = s.get(TradingOrder, sell["id"])
        assert row is not None
        seller_id = row.user_id
        assert held(s, seller_id, "ETH") == 2 * ETH - ETH // 4
    r = api.delete(f"/api/p2p-crypto/trading-orders/{sell['id']}", "seller")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    with api.node.sessions() as s:
        assert held(s, seller_id, "ETH") == ETH
        assert available(s, seller_id, "ETH") == 10 * ETH - ETH - ETH // 4  # 1 on sale, 1/4 sold
    problem(api.post(f"/api/p2p-crypto/trading-orders/{sell['id']}/cancel", "seller"), 409,
            "order_not_open")


def test_bad_orders_are_4xx_with_a_code(api: Api, eth_usdt: int) -> None:
    pair = eth_usdt
    url = "/api/p2p-crypto/trading-orders"
    problem(api.post(url, "buyer", json=order(pair, "buy", ETH, P + 1)), 422, "price_not_on_tick")
    problem(api.post(url, "buyer", json=order(pair, "buy", ETH + 1, P)), 422,
            "quantity_not_on_step")
    problem(api.post(url, "buyer", json=order(pair, "buy", ETH, P, order_type="stop_limit")),
            422, "missing_stop_price")
    problem(api.post(url, "buyer", json={**order(pair, "buy", ETH, P), "quantity": "1.5"}),
            422, "invalid_input")
    problem(api.post(url, "buyer", json={**order(pair, "buy", ETH, P), "quantity": "-5"}),
            422, "invalid_input")
    problem(api.post(url, "buyer", json=order(pair, "buy", ETH, P, time_in_force="gtd")),
            422, "missing_expiry")
    problem(api.post(url, "buyer", json=order(2**31 - 1, "buy", ETH, P)), 404, "pair_not_found")
    problem(api.get("/api/p2p-crypto/trading-pairs/99999/orderbook"), 404, "pair_not_found")
    problem(api.get(f"/api/p2p-crypto/trading-orders/{2**40}", "buyer"), 422, "invalid_input")
    # the engine refuses: 100 ETH of USDT is more than the buyer has; kept as rejected
    problem(api.post(url, "buyer", json=order(pair, "buy", 100 * ETH, P)), 409,
            "insufficient_funds")
    problem(api.post(url, "buyer", json=order(pair, "buy", ETH, P, time_in_force="fok")), 409,
            "fok_not_fillable")
    rejected = api.get(f"{url}?status=rejected", "buyer").json()
    assert [o["reason"] for o in rejected["data"]] == ["fok_not_fillable", "insufficient_funds"]


def test_the_stream_sends_a_snapshot_then_deltas_and_trades(api: Api, eth_usdt: int) -> None:
    pair = eth_usdt
    url = "/api/p2p-crypto/trading-orders"
    api.post(url, "seller", json=order(pair, "sell", ETH, P))
    with api.client.websocket_connect(f"/api/p2p-crypto/trading-pairs/{pair}/stream") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and snap["asks"] == [[str(P), str(ETH)]]
        api.post(url, "seller", json=order(pair, "sell", ETH, P + 10_000))
        delta = ws.receive_json()
        assert delta["type"] == "book" and delta["asks"] == [[str(P + 10_000), str(ETH)]]
        assert delta["seq"] > snap["seq"]
        api.post(url, "buyer", json=order(pair, "buy", ETH, P))
        trade = ws.receive_json()
        assert trade["type"] == "trade" and trade["price"] == str(P)
        assert trade["quantity"] == str(ETH) and trade["taker_side"] == "buy"
        delta = ws.receive_json()
        assert delta["type"] == "book" and delta["asks"] == [[str(P), "0"]]
        assert delta["last_price"] == str(P)
    with api.client.websocket_connect("/api/p2p-crypto/trading-pairs/424242/stream") as ws:
        assert ws.receive_json()["code"] == "pair_not_found"
