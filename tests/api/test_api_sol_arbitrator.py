"""A human arbitrator on Solana, through the HTTP API (local Solana chain,
PostgreSQL): the escrows' arbitrator slot holds a person's wallet
(``sol.arbitrator_address``), so the node's agent signs nothing for them.

- A dispute ruled 40/60: the ruling renders the split unsigned; the
  arbitrator fetches it and posts their partial signature (a signature by any
  other key, a non-signer's post, an outsider's read are refused); the seller
  (60%) co-signs; the split lands; the signing journal holds no agent
  signature for the escrow.
- A cooperative release needs both parties (no agent): the seller's signature
  is kept, the buyer co-signs the pending payout; the arbitrator is not a
  signer of it.
- On an agent-arbitrated escrow an arbitrator user still has no key to sign
  with (wrong_party)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solders.keypair import Keypair
from sqlalchemy import func, select

from node.config import load_settings
from node.db.models import SigningJournal
from node.errors import ConfigError
from node.runtime import build_node
from tests.api.test_api_sol_trades import P, SolApi, funded_paid, wsol
from tests.functional.solana_fixtures import solana_chain  # noqa: F401 (fixture)
from tests.functional.test_sol_watcher import make_sol_node
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    sign_partially,
)


@pytest.fixture
def human(solana_chain: SolanaLocal, pg_url: str,  # noqa: F811
          tmp_path: Path) -> Iterator[tuple[SolApi, Keypair]]:
    arbitrator = Keypair()  # the arbitrator's own wallet: the node never sees this key
    sn = make_sol_node(solana_chain, pg_url, tmp_path, arbitrator_address=str(arbitrator.pubkey()))
    api = SolApi(sn)
    try:
        yield api, arbitrator
    finally:
        api.client.close()
        sn.node.stop()


def journal_rows(api: SolApi) -> int:
    with api.sn.node.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(SigningJournal)
                            .where(SigningJournal.chain == api.sn.sol.chain_key)) or 0)


def payout(api: SolApi, trade: int, who: str) -> dict[str, object]:
    return dict(api.ok(api.client.get(f"/api/sol/orders/{trade}/payout", headers=api.h(who))))


def test_human_arbitrator_signs_the_ruling(human: tuple[SolApi, Keypair]) -> None:
    api, arb = human
    amount = LAMPORTS_PER_SOL
    trade = funded_paid(api, amount)
    assert api.trade(trade)["escrow"]["arbitrator_address"] == str(arb.pubkey())
    body = {"dispute_type": "payment_not_received", "description": "partly paid"}
    opened = api.sign_fact(trade, "dispute", "buyer", api.sn.buyer, body)
    ruling = api.ok(api.post(f"{P}/disputes/{opened['dispute']['id']}/resolve", "arbitrator",
                             {"buyer_bps": 4000, "resolution_notes": "40% was paid"}), 202)
    assert ruling["submitted"]["status"] == "awaiting_arbitrator_signature"
    assert journal_rows(api) == 0  # the agent signed nothing

    pending = payout(api, trade, "arbitrator")
    assert pending["action"] == "split" and pending["buyer_bps"] == 4000
    assert set(pending["missing_signers"]) == {  # type: ignore[arg-type]
        str(arb.pubkey()), str(api.sn.seller.pubkey()), str(api.sn.fee_payer.pubkey())}
    assert api.client.get(f"/api/sol/orders/{trade}/payout",
                          headers=api.h("outsider")).status_code == 404
    tx = decode_transaction(str(pending["transaction"]))
    signed = sign_partially(tx, SoftwareSigner(arb))
    pid = pending["payout_id"]
    # the buyer (40%) is not a co-signer of this payout
    r = api.post(f"/api/sol/orders/{trade}/payout", "buyer",
                 {"payout_id": pid, "transaction": encode_transaction(signed)})
    assert r.status_code == 403 and r.json()["code"] == "not_a_signer", r.text
    # a signature by another key than the arbitrator's wallet
    forged = Keypair().sign_message(bytes(tx.message_data()))
    r = api.post(f"/api/sol/orders/{trade}/payout", "arbitrator",
                 {"payout_id": pid, "signature": str(forged)})
    assert r.status_code == 409 and r.json()["code"] == "bad_signature", r.text
    sub = api.ok(api.post(f"/api/sol/orders/{trade}/payout", "arbitrator",
                          {"payout_id": pid, "transaction": encode_transaction(signed)}), 202)
    assert sub["status"] == "awaiting_party_signature"

    pending = payout(api, trade, "seller")
    assert pending["payout_id"] == pid
    assert set(pending["missing_signers"]) == {  # type: ignore[arg-type]
        str(api.sn.seller.pubkey()), str(api.sn.fee_payer.pubkey())}
    tx = decode_transaction(str(pending["transaction"]))
    seller_sig = api.sn.seller.sign_message(bytes(tx.message_data()))
    sub = api.ok(api.post(f"/api/sol/orders/{trade}/payout", "seller",
                          {"payout_id": pid, "signature": str(seller_sig)}), 202)
    assert sub["status"] == "submitted"
    api.sync()
    final = api.trade(trade)
    assert final["status"] == "resolved" and final["escrow"]["buyer_bps"] == 4000
    assert wsol(api, api.sn.buyer) == amount * 4000 // 10_000
    assert journal_rows(api) == 0


def test_cooperative_release_needs_both_parties(human: tuple[SolApi, Keypair]) -> None:
    api, arb = human
    trade = funded_paid(api, LAMPORTS_PER_SOL)
    req = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller", {}))
    assert set(req["payload"]["required_signers"]) == {
        str(api.sn.seller.pubkey()), str(api.sn.buyer.pubkey()), str(api.sn.fee_payer.pubkey())}
    tx = decode_transaction(req["payload"]["transaction"])
    sig = api.sn.seller.sign_message(bytes(tx.message_data()))
    sub = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller",
                          {"signature": str(sig), "expiry": req["expiry"]}), 202)
    assert sub["status"] == "awaiting_party_signature"
    pending = payout(api, trade, "buyer")
    assert set(pending["missing_signers"]) == {  # type: ignore[arg-type]
        str(api.sn.buyer.pubkey()), str(api.sn.fee_payer.pubkey())}
    # the arbitrator's wallet is not a signer of a release
    arb_sig = arb.sign_message(bytes(tx.message_data()))
    r = api.post(f"/api/sol/orders/{trade}/payout", "arbitrator",
                 {"payout_id": pending["payout_id"], "signature": str(arb_sig)})
    assert r.status_code == 403 and r.json()["code"] == "not_a_signer", r.text
    buyer_sig = api.sn.buyer.sign_message(bytes(tx.message_data()))
    sub = api.ok(api.post(f"/api/sol/orders/{trade}/payout", "buyer",
                          {"payout_id": pending["payout_id"], "signature": str(buyer_sig)}), 202)
    assert sub["status"] == "submitted"
    api.sync()
    assert api.trade(trade)["status"] == "completed"
    assert wsol(api, api.sn.buyer) == LAMPORTS_PER_SOL
    assert journal_rows(api) == 0


def test_agent_arbitrated_escrow_has_no_arbitrator_key(solana_chain: SolanaLocal,  # noqa: F811
                                                       pg_url: str, tmp_path: Path) -> None:
    sn = make_sol_node(solana_chain, pg_url, tmp_path)
    api = SolApi(sn)
    try:
        trade = funded_paid(api, LAMPORTS_PER_SOL)
        req = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller", {}))
        tx = decode_transaction(req["payload"]["transaction"])
        sig = Keypair().sign_message(bytes(tx.message_data()))
        r = api.post(f"/api/sol/orders/{trade}/payout", "arbitrator",
                     {"payout_id": req["payload"]["payout_id"], "signature": str(sig)})
        assert r.status_code == 403 and r.json()["code"] == "wrong_party", r.text
    finally:
        api.client.close()
        sn.node.stop()


def test_bad_arbitrator_address_is_a_config_error(solana_chain: SolanaLocal,  # noqa: F811
                                                  pg_url: str, tmp_path: Path) -> None:
    agent = Keypair()
    for bad in ("not-a-key", str(agent.pubkey())):
        settings = load_settings(
            mode="production", data_dir=tmp_path, database_url=pg_url,
            auth={"jwt_secret": "test-jwt-secret-" + "x" * 32}, evm={"enabled": False},
            sol={"enabled": True, "rpc_url": solana_chain.url, "agent_key": str(agent),
                 "fee_payer_key": str(Keypair()), "arbitrator_address": bad})
        with pytest.raises(ConfigError, match="arbitrator_address"):
            build_node(settings)
