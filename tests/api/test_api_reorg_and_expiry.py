"""A trade's state follows the chain, not the first thing the node saw: a
reorg that removes the funding puts a funded trade back to awaiting funding
(invariant I6), and the funding mined again on the new branch funds it once.
A trade never funded within the funding window expires and gives its amount
back to the ad."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from node.db.session import transaction
from node.trades import expire_unfunded
from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import fund, match, post_ad, status


def test_reorg_removing_the_funding_unfunds_the_trade(api: Api) -> None:
    ad = post_ad(api).json()
    opened = match(api, ad["id"]).json()
    trade_id = opened["order"]["id"]
    api.sync()
    before_funding = api.chain.anvil.snapshot()
    fund(api, opened["funding"])
    api.sync()
    assert status(api, trade_id)["status"] == "funded"

    # the chain forgets the funding block: a longer branch without it
    api.chain.anvil.revert(before_funding)
    api.chain.anvil.mine(6)
    api.sync()
    got = status(api, trade_id)
    assert got["status"] == "awaiting_funding", got
    assert got["escrow"]["funded_amount"] == "0" and got["escrow"]["funded_tx"] is None

    # funded again on the new branch: credited once
    fund(api, opened["funding"])
    api.sync()
    got = status(api, trade_id)
    assert got["status"] == "funded" and got["escrow"]["funded_amount"] == str(10**18)


def test_unfunded_trades_expire_and_return_their_amount(api: Api) -> None:
    ad = post_ad(api).json()
    trade = match(api, ad["id"], 2 * 10**18).json()["order"]
    window = api.node.settings.evm.payment_window_s
    with transaction(api.node.sessions) as session:
        assert expire_unfunded(session, now=datetime.now(UTC), funding_window_s=window) == []
    later = datetime.now(UTC) + timedelta(seconds=window + 1)
    with transaction(api.node.sessions) as session:
        assert expire_unfunded(session, now=later, funding_window_s=window) == [trade["id"]]
    assert status(api, trade["id"])["status"] == "expired"
    ads = api.get("/api/p2p-crypto/orders").json()["data"]
    assert ads[0]["remaining_amount"] == str(3 * 10**18)
