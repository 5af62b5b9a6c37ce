"""Fixtures and helpers of the dispute and trade-event API tests: an admin
and a second arbitrator with a registered EVM key, disputed trades on the
real node, and a real local HTTP server that receives webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from node.db.session import transaction
from node.trades import create_user
from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import act, funded_trade, match, post_ad

__all__ = [
    "People", "Receiver", "disputed", "matched_trade", "opened_dispute", "people", "receiver",
    "user_id",
]

ARB2_ACCOUNT = 6  # anvil dev account whose key the second arbitrator registered
P = "/api/p2p-crypto"


@dataclass
class People:
    admin_id: int
    arb2_id: int
    arb2_key: str
    arb2_address: str


def user_id(api: Api, username: str) -> int:
    from sqlalchemy import select

    from node.db.models import User

    with transaction(api.node.sessions) as s:
        uid = s.scalar(select(User.id).where(User.username == username))
    assert uid is not None
    return int(uid)


@pytest.fixture
def people(api: Api) -> People:
    """``admin`` and ``arb2`` (an arbitrator with a registered EVM key) next to
    the ``api`` fixture's seller, buyer, outsider and keyless arbitrator."""
    acct = api.chain.accounts[ARB2_ACCOUNT]
    with transaction(api.node.sessions) as s:
        admin, api.tokens["admin"] = create_user(s, username="admin", role="admin")
        arb2, api.tokens["arb2"] = create_user(
            s, username="arb2", role="arbitrator", evm_address=acct.address
        )
        ids = (admin.id, arb2.id)
    return People(admin_id=ids[0], arb2_id=ids[1], arb2_key=acct.key, arb2_address=acct.address)


def opened_dispute(api: Api) -> tuple[int, int]:
    """A funded trade and a dispute recorded by the buyer (its on-chain
    DISPUTE not signed): (trade id, dispute id). Fast: no ruling possible."""
    t = funded_trade(api)
    r = api.post(f"{P}/orders/{t}/dispute", "buyer",
                 json={"dispute_type": "payment_not_received", "description": "no SEPA"})
    assert r.status_code == 201, r.text
    return t, int(r.json()["dispute"]["id"])


def disputed(api: Api) -> tuple[int, int]:
    """A funded, paid trade disputed on chain by the buyer (ready to rule)."""
    t = funded_trade(api)
    act(api, t, "payment", "buyer")
    api.sync()
    out = act(api, t, "dispute", "buyer",
              dispute_type="payment_not_received", description="no SEPA transfer")
    api.sync()
    return t, int(out["dispute"]["id"])


def matched_trade(api: Api) -> int:
    ad = post_ad(api).json()
    r = match(api, ad["id"])
    assert r.status_code == 201, r.text
    return int(r.json()["order"]["id"])


# --- a webhook receiver ---------------------------------------------------------


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording what it receives; the first
    ``fail_first`` requests are answered 500."""

    url: str
    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            with lock:
                state.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                failing = len(state.requests) <= state.fail_first
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
