"""Helpers and fixtures of the trading tests: a market (BTC/USDT on a fresh
database, or ETH/USDT on the API's real node), users, and deposits posted to
the custody ledger (``node:deposit -> user available``).

Prices of the default pairs are in quote base units per whole base coin
(BTC/USDT: micro-USDT per BTC, tick 0.01 USDT; quantity step 0.0001 BTC)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from node.custody.ledger import NODE_DEPOSIT, Leg, balance, post_entry, user_account
from node.db.models_trading import TradingPair
from node.db.session import transaction
from node.orderbook import STP, OrderType, Side, TimeInForce
from node.trades import CurrencySpec, create_user, upsert_currency
from node.trading.pairs import ensure_pair, seed_pairs
from node.trading.service import OrderRequest

BTC = 10**8  # sat per BTC
USD = 10**6  # micro-USDT per USDT


def usd(amount: float) -> int:
    """A USDT price or amount in micro-USDT."""
    return round(amount * USD)


def deposit(session: Session, user_id: int, asset: str, amount: int, ref: str) -> None:
    post_entry(session, ref=ref, kind="deposit", legs=[
        Leg(NODE_DEPOSIT, asset, -amount), Leg(user_account(user_id, "available"), asset, amount),
    ])


def available(session: Session, user_id: int, asset: str) -> int:
    return balance(session, user_account(user_id, "available"), asset)


def held(session: Session, user_id: int, asset: str) -> int:
    return balance(session, user_account(user_id, "held"), asset)


def req(pair: int, side: Side, otype: OrderType, qty: int, price: int | None = None,
        **kw: object) -> OrderRequest:
    return OrderRequest(pair, side, otype, qty, price, **kw)  # type: ignore[arg-type]


def order_stream(pair: int, users: list[int], n: int, seed: int) -> list[tuple[str, int, object]]:
    """A reproducible mix of limit (every time in force), market, stop-market,
    stop-limit, OCO and trailing orders, and cancels of earlier ones."""
    rng = random.Random(seed)  # noqa: S311 - test data
    mid = usd(65_000)
    tick = usd(0.01)
    out: list[tuple[str, int, object]] = []
    for i in range(n):
        user = rng.choice(users)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side is Side.BUY else -1
        qty = rng.randint(1, 30) * 10**6  # 0.01 .. 0.3 BTC
        r = rng.random()
        if r < 0.45:
            price = mid - sign * rng.randint(-5, 40) * 100 * tick
            tif = rng.choice([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK])
            out.append(("place", user, req(pair, side, OrderType.LIMIT, qty, price,
                                           time_in_force=tif, client_order_id=f"c{i}")))
        elif r < 0.55:
            out.append(("place", user, req(pair, side, OrderType.MARKET, qty,
                                           time_in_force=TimeInForce.IOC, stp=STP.CANCEL_OLDEST,
                                           client_order_id=f"c{i}")))
        elif r < 0.65:
            stop = mid + sign * rng.randint(1, 20) * 100 * tick
            kind = rng.choice([OrderType.STOP_MARKET, OrderType.STOP_LIMIT])
            limit = stop + sign * 100 * tick if kind is OrderType.STOP_LIMIT else None
            out.append(("place", user, req(pair, side, kind, qty, limit, stop_price=stop,
                                           client_order_id=f"c{i}")))
        elif r < 0.72:
            limit = mid - sign * rng.randint(20, 60) * 100 * tick
            stop = mid + sign * rng.randint(10, 30) * 100 * tick
            out.append(("place", user, req(pair, side, OrderType.OCO, qty, limit,
                                           stop_price=stop, client_order_id=f"c{i}")))
        elif r < 0.76:
            out.append(("place", user, req(pair, side, OrderType.TRAILING_STOP, qty,
                                           trail_amount=rng.randint(5, 20) * 100 * tick,
                                           client_order_id=f"c{i}")))
        else:
            out.append(("cancel", user, rng.randrange(max(i, 1))))
    return out


@dataclass
class Market:
    pair_id: int
    users: dict[str, int]


def make_market(
    sessions: sessionmaker[Session], names: tuple[str, ...] = ("alice", "bob", "carol"),
    *, fund: bool = True,
) -> Market:
    """BTC/USDT with 10 / 20 bps fees; each user funded with 10 BTC and 1M USDT."""
    with transaction(sessions) as session:
        btc = upsert_currency(session, CurrencySpec("Bitcoin", "BTC", "btc", "regtest", 8))
        usdt = upsert_currency(session, CurrencySpec("Tether", "USDT", "evm", "31337", 6))
        pair = ensure_pair(session, btc, usdt)
        users = {}
        for name in names:
            user, _token = create_user(session, username=name)
            users[name] = user.id
            if fund:
                deposit(session, user.id, "BTC", 10 * BTC, f"test:{name}:btc")
                deposit(session, user.id, "USDT", usd(1_000_000), f"test:{name}:usdt")
        return Market(pair.id, users)


@pytest.fixture
def eth_usdt(api):  # type: ignore[no-untyped-def]
    """ETH/USDT on the API's node (its EVM currencies); seller and buyer funded
    with 10 ETH and 100,000 USDT each. Returns the pair id."""
    with transaction(api.node.sessions) as session:
        (pair,) = seed_pairs(session, (("ETH", "USDT"),))
        assert isinstance(pair, TradingPair)
        from sqlalchemy import select

        from node.db.models import User

        for name in ("seller", "buyer"):
            uid = session.scalar(select(User.id).where(User.username == name))
            assert uid is not None
            deposit(session, uid, "ETH", 10 * 10**18, f"test:{name}:eth")
            deposit(session, uid, "USDT", usd(100_000), f"test:{name}:usdt")
        return pair.id
