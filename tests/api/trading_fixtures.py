"""Helpers and fixtures of the trading tests: a market (BTC/USDT on a fresh
database, or ETH/USDT on the API's real node), users, and deposits posted to
the custody ledger (``node:deposit -> user available``).

Prices of the default pairs are in quote base units per whole base coin
(BTC/USDT: micro-USDT per BTC, tick 0.01 USDT; quantity step 0.0001 BTC)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from node.custody.ledger import NODE_DEPOSIT, Leg, balance, post_entry, user_account
from node.db.models_trading import TradingPair
from node.db.session import transaction
from node.trades import CurrencySpec, create_user, upsert_currency
from node.trading.pairs import ensure_pair, seed_pairs

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
