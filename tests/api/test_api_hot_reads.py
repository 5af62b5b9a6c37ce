"""The order book and order lists answered from memory (api.hot_reads over
node.read_cache), on a real node and PostgreSQL: a repeated read is a cache
hit with the same bytes; every kind of write under a cached answer (an ad
posted, a match, a deposit the watcher credits, raw SQL, a token replaced)
shows in the very next read; one trader never gets another's list; errors
are never cached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from node.changes import wait_listening
from node.db.models import User
from node.db.session import transaction
from node.read_cache import read_cache
from node.trades import hash_token
from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import eth_id, fund, match, post_ad

BOOK = "/api/p2p-crypto/orders"
MINE = "/api/p2p-crypto/orders/my"


@pytest.fixture(autouse=True)
def listening(api: Api) -> Iterator[None]:
    """The app's change listener is connected (its connecting empties the
    cache, which would turn an expected hit into a miss)."""
    url = api.node.engine.url.render_as_string(hide_password=False)
    assert wait_listening(url), "the change listener did not connect"
    yield


def read(api: Api, path: str, who: str | None = None, **params: Any) -> tuple[str, Any]:
    r = api.get(path, who, params=params or None)
    assert r.status_code == 200, r.text
    return r.headers["x-escrowd-cache"], r.json()


def warm(api: Api, path: str, who: str | None = None) -> Any:
    """Read until answered from memory (a caller's first read of their list
    only teaches the cache who they are; the second is kept)."""
    for _ in range(3):
        state, body = read(api, path, who)
        if state == "hit":
            return body
    raise AssertionError(f"{path} for {who} never came from memory")


def ids(body: Any) -> list[int]:
    return [o["id"] for o in body["data"]]


def test_a_repeated_read_is_a_hit_with_the_same_bytes(api: Api) -> None:
    post_ad(api)
    first = api.get(BOOK, params={"fiat_currency": "EUR"})
    second = api.get(BOOK, params={"fiat_currency": "EUR"})
    assert (first.headers["x-escrowd-cache"], second.headers["x-escrowd-cache"]) == ("miss", "hit")
    assert first.content == second.content
    assert second.headers["content-type"] == "application/json"
    # another query string is another answer
    assert read(api, BOOK, fiat_currency="USD")[0] == "miss"


def test_writes_show_in_the_next_read(api: Api) -> None:
    ad = post_ad(api).json()
    for who in ("seller", "buyer"):
        warm(api, MINE, who)
    warm(api, BOOK)

    # a new ad: the book and the seller's list, not the buyer's
    second = post_ad(api, price_per_unit="2999").json()
    state, book = read(api, BOOK)
    assert state == "miss" and ids(book)[0] == second["id"]
    assert ids(read(api, MINE, "seller")[1])[0] == second["id"]
    assert read(api, MINE, "buyer")[0] == "hit"

    # a match: both parties' lists and the ad's remaining amount in the book
    opened = match(api, ad["id"], 10**18).json()
    trade = int(opened["order"]["id"])
    for who in ("seller", "buyer"):
        state, mine = read(api, MINE, who)
        assert state == "miss" and ids(mine)[0] == trade
    listed = {o["id"]: o for o in read(api, BOOK)[1]["data"]}
    assert listed[ad["id"]]["remaining_amount"] == str(2 * 10**18)

    # the seller's wallet funds it; the watcher credits it in its own session
    assert read(api, MINE, "buyer")[0] == "hit"
    fund(api, opened["funding"])
    api.sync()
    state, mine = read(api, MINE, "buyer")
    assert state == "miss"
    assert next(o for o in mine["data"] if o["id"] == trade)["status"] == "funded"


def test_an_ad_invalidates_its_own_book_only(api: Api) -> None:
    eur = {"crypto_currency_id": eth_id(api), "fiat_currency": "eur"}
    usd = {**eur, "fiat_currency": "USD"}
    for params in (eur, usd, {}):
        for _ in range(2):
            read(api, BOOK, **params)
    ad = post_ad(api, fiat_currency="USD").json()
    # the USD book and every unfiltered read change; the EUR book does not
    state, body = read(api, BOOK, **usd)
    assert state == "miss" and ids(body) == [ad["id"]]
    assert read(api, BOOK)[0] == "miss"
    assert read(api, BOOK, **eur)[0] == "hit"
    # a repeated filter is not trusted to name one book: every ad change
    twice = api.get(BOOK + f"?fiat_currency=EUR&fiat_currency=USD&crypto_currency_id={eth_id(api)}")
    assert twice.status_code == 200
    api.get(BOOK + f"?fiat_currency=EUR&fiat_currency=USD&crypto_currency_id={eth_id(api)}")
    post_ad(api, fiat_currency="GBP")
    again = api.get(BOOK + f"?fiat_currency=EUR&fiat_currency=USD&crypto_currency_id={eth_id(api)}")
    assert again.headers["x-escrowd-cache"] == "miss"


def test_raw_sql_through_a_session_is_seen(api: Api) -> None:
    ad = post_ad(api).json()
    warm(api, BOOK)
    with transaction(api.node.sessions) as s:
        s.execute(text("UPDATE p2p_crypto_orders SET status = 'paused' WHERE id = :i"),
                  {"i": ad["id"]})
    state, book = read(api, BOOK)
    assert state == "miss" and ad["id"] not in ids(book)


def test_lists_are_per_caller(api: Api) -> None:
    ad = post_ad(api).json()
    seller = warm(api, MINE, "seller")
    assert ids(seller) == [ad["id"]]
    # the same path and query for someone else: their own (empty) list, kept
    # from their first read on
    first = read(api, MINE, "outsider")
    assert first[0] == "miss" and first[1]["total"] == 0
    assert read(api, MINE, "outsider") == ("hit", first[1])
    assert read(api, MINE, "seller") == ("hit", seller)


def test_a_replaced_token_is_refused_at_once(api: Api) -> None:
    warm(api, MINE, "seller")
    with transaction(api.node.sessions) as s:
        user = s.scalars(select(User).where(User.username == "seller")).one()
        user.api_token_hash = hash_token("a-new-token")
    r = api.get(MINE, "seller")
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    assert "x-escrowd-cache" in r.headers  # answered by the handler, not from memory


def test_errors_are_not_cached(api: Api) -> None:
    for _ in range(2):
        r = api.client.get(MINE)
        assert r.status_code == 401
        r = api.client.get(MINE, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        r = api.get(BOOK, params={"limit": 0})
        assert r.status_code == 422 and r.headers["x-escrowd-cache"] == "miss"


def test_off_answers_every_read_from_the_database(api: Api) -> None:
    post_ad(api)
    read_cache.configure(ttl_s=0, max_entries=4096)
    try:
        for _ in range(2):
            r = api.get(BOOK)
            assert r.status_code == 200 and "x-escrowd-cache" not in r.headers
    finally:
        read_cache.configure(ttl_s=10.0, max_entries=4096)
