"""Order listings read off their indexes (node.trades.list_ads / my_orders):
the same rows, order and totals as the plain queries they replace, across
pages, for a user who is seller on some orders and buyer on others."""

from __future__ import annotations

from sqlalchemy import or_, select

from node import trades
from node.db.models import P2POrder, User
from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import match, post_ad


def test_my_orders_pages_match_the_plain_query(api: Api) -> None:
    ads = [post_ad(api, price_per_unit=str(3000 + i)).json() for i in range(4)]
    for ad in ads[:3]:
        assert match(api, ad["id"], 10**17).status_code == 201
    with api.node.sessions() as s:
        for name in ("seller", "buyer"):
            user = s.scalars(select(User).where(User.username == name)).one()
            plain = s.scalars(
                select(P2POrder.id)
                .where(or_(P2POrder.seller_id == user.id, P2POrder.buyer_id == user.id))
                .order_by(P2POrder.id.desc())
            ).all()
            assert len(plain) >= 3
            paged: list[int] = []
            for offset in range(0, len(plain) + 2, 2):
                rows, total = trades.my_orders(s, user=user, limit=2, offset=offset)
                assert total == len(plain)
                paged += [o.id for o in rows]
            assert paged == list(plain)


def test_book_is_cheapest_first_with_exact_small_totals(api: Api) -> None:
    for price in ("3100", "2900", "3000"):
        post_ad(api, price_per_unit=price)
    body = api.get("/api/p2p-crypto/orders", params={"fiat_currency": "EUR", "limit": 2}).json()
    assert body["total"] == 3
    assert [float(o["price_per_unit"]) for o in body["data"]] == [2900, 3000]
    rest = api.get("/api/p2p-crypto/orders",
                   params={"fiat_currency": "EUR", "limit": 2, "offset": 2}).json()
    assert [float(o["price_per_unit"]) for o in rest["data"]] == [3100]


def test_totals_count_a_bounded_way_past_the_page(api: Api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for price in ("3100", "2900", "3000"):
        post_ad(api, price_per_unit=price)
    monkeypatch.setattr(trades, "COUNT_AHEAD", 0)
    # counted up to the end of the page: "at least 2"
    body = api.get("/api/p2p-crypto/orders", params={"fiat_currency": "EUR", "limit": 2}).json()
    assert body["total"] == 2 and len(body["data"]) == 2
    mine = api.get("/api/p2p-crypto/orders/my", "seller", params={"limit": 2}).json()
    assert mine["total"] == 2 and len(mine["data"]) == 2
    # the next page counts further: exact once the end is in sight
    body = api.get("/api/p2p-crypto/orders",
                   params={"fiat_currency": "EUR", "limit": 2, "offset": 2}).json()
    assert body["total"] == 3 and len(body["data"]) == 1
    monkeypatch.setattr(trades, "COUNT_AHEAD", 1_000)
    mine = api.get("/api/p2p-crypto/orders/my", "seller", params={"limit": 1}).json()
    assert mine["total"] == 3 and len(mine["data"]) == 1
