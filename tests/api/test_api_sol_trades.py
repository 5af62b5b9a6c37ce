"""Solana trades through the HTTP API on a real node (local Solana chain over
JSON-RPC, PostgreSQL): SOL listed as a currency; a trade funded by the seller's
own keypair from the transaction the API returned, marked paid and released
with the parties' own signatures (the seller's as a bare signature through the
seed's endpoint); a disputed trade ruled 30/70 by the arbitrator, co-signed by
the seller as a whole partially signed transaction through /api/sol; a
Token-2022 mint with a transfer fee refused with a clear 4xx; bad addresses
refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.commitment import Commitment
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction
from spl.token.constants import TOKEN_2022_PROGRAM_ID, WRAPPED_SOL_MINT
from spl.token.instructions import (
    get_associated_token_address,
    initialize_mint2,
)
from spl.token.models import InitializeMint2Params

from node.db.session import transaction
from node.sol_trades import sign_message_b58
from node.trades import CurrencySpec, upsert_currency
from tests.functional.solana_fixtures import solana_chain  # noqa: F401 (fixture)
from tests.functional.test_sol_watcher import SolNode, make_sol_node
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    sign_partially,
)
from wallets.solana.testing import transfer_fee_extension

P = "/api/p2p-crypto"


class SolApi:
    def __init__(self, sn: SolNode) -> None:
        self.sn = sn
        self.client = TestClient(sn.node.app(), raise_server_exceptions=False)

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sn.tokens[who]}"}

    def ok(self, resp: Any, status: int | tuple[int, ...] = (200, 201, 202)) -> Any:
        want = status if isinstance(status, tuple) else (status,)
        assert resp.status_code in want, resp.text
        return resp.json()

    def post(self, path: str, who: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, headers=self.h(who), json=body)

    def currency(self, symbol: str) -> int:
        cur = self.ok(self.client.get(f"{P}/currencies"))
        return int(next(c["id"] for c in cur if c["symbol"] == symbol and c["chain"] == "sol"))

    def ad(self, amount: int, currency: str = "SOL") -> int:
        return int(self.ok(self.post(f"{P}/orders", "seller", {
            "crypto_currency_id": self.currency(currency), "amount": str(amount),
            "price_per_unit": "150", "fiat_currency": "EUR", "payment_methods": ["SEPA"],
            "seller_address": str(self.sn.seller.pubkey())}), 201)["id"])

    def match(self, ad: int, amount: int) -> Any:
        return self.post(f"{P}/orders/{ad}/match", "buyer",
                         {"amount": str(amount), "buyer_address": str(self.sn.buyer.pubkey())})

    def fund(self, funding: dict[str, Any]) -> None:
        """The seller's own keypair signs the API's funding transaction and sends it."""
        tx = sign_partially(decode_transaction(funding["transaction"]),
                            SoftwareSigner(self.sn.seller))
        self.sn.send(tx)

    def sync(self) -> None:
        self.sn.finalize()

    def trade(self, trade: int, who: str = "buyer") -> Any:
        return self.ok(self.client.get(f"{P}/orders/{trade}", headers=self.h(who)))

    def sign_fact(self, trade: int, endpoint: str, who: str, key: Keypair,
                  extra: dict[str, Any] | None = None) -> Any:
        req = self.ok(self.post(f"{P}/orders/{trade}/{endpoint}", who, extra or {}))
        chain = req.get("chain", req)
        assert chain["payload"]["kind"] == "message"
        sig = sign_message_b58(SoftwareSigner(key), chain["payload"]["message"])
        return self.ok(self.post(f"{P}/orders/{trade}/{endpoint}", who,
                                 {**(extra or {}), "signature": sig, "expiry": chain["expiry"]}))


@pytest.fixture
def api(solana_chain: SolanaLocal, pg_url: str, tmp_path: Path) -> Iterator[SolApi]:  # noqa: F811
    sn = make_sol_node(solana_chain, pg_url, tmp_path)
    a = SolApi(sn)
    try:
        yield a
    finally:
        a.client.close()
        sn.node.stop()


def wsol(api: SolApi, owner: Keypair) -> int:
    ata = get_associated_token_address(owner.pubkey(), WRAPPED_SOL_MINT)
    acct = api.sn.sol.client.account(ata, Commitment("finalized"))
    return 0 if acct is None else int.from_bytes(acct.data[64:72], "little")


def funded_paid(api: SolApi, amount: int) -> int:
    ad = api.ad(amount)
    opened = api.ok(api.match(ad, amount), 201)
    trade = int(opened["order"]["id"])
    f = opened["funding"]
    assert f["chain"] == "sol" and f["required_signers"] == [str(api.sn.seller.pubkey())]
    assert opened["order"]["escrow"]["escrow_id"] == f["escrow_token_account"]
    api.fund(f)
    assert api.trade(trade)["status"] == "awaiting_funding"  # not yet finalized
    api.sync()
    assert api.trade(trade)["status"] == "funded"
    api.sign_fact(trade, "payment", "buyer", api.sn.buyer)
    assert api.trade(trade)["status"] == "paid"
    return trade


def test_release_through_the_api(api: SolApi) -> None:
    trade = funded_paid(api, LAMPORTS_PER_SOL)
    # the buyer cannot release
    assert api.post(f"{P}/orders/{trade}/release-escrow", "buyer", {}).status_code == 403
    req = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller", {}))
    assert req["status"] == "signature_required" and req["payload"]["action"] == "release"
    tx = sign_partially(decode_transaction(req["payload"]["transaction"]),
                        SoftwareSigner(api.sn.seller))
    sig = str(tx.signatures[tx.message.account_keys.index(api.sn.seller.pubkey())])
    # a signature by another key (the buyer's, over the same message) is refused
    bad = api.sn.buyer.sign_message(bytes(tx.message_data()))
    r = api.post(f"{P}/orders/{trade}/release-escrow", "seller",
                 {"signature": str(bad), "expiry": req["expiry"]})
    assert r.status_code == 409 and r.json()["code"] == "bad_signature"
    sub = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller",
                          {"signature": sig, "expiry": req["expiry"]}), 202)
    assert sub["kind"] == "sol_transaction" and sub["status"] == "submitted"
    api.sync()
    final = api.trade(trade)
    assert final["status"] == "completed" and final["escrow"]["payout_tx"] == sub["ref"]
    assert wsol(api, api.sn.buyer) == LAMPORTS_PER_SOL


def test_dispute_ruled_by_the_arbitrator(api: SolApi) -> None:
    amount = 2 * LAMPORTS_PER_SOL
    trade = funded_paid(api, amount)
    body = {"dispute_type": "payment_not_received", "description": "never arrived"}
    opened = api.sign_fact(trade, "dispute", "buyer", api.sn.buyer, body)
    assert api.trade(trade)["status"] == "disputed"
    dispute = opened["dispute"]["id"]
    # no payout is collecting yet; the agent refuses the seller's refund while disputed
    r = api.client.get(f"/api/sol/orders/{trade}/payout", headers=api.h("seller"))
    assert r.status_code == 404
    ruling = api.ok(api.post(f"{P}/disputes/{dispute}/resolve", "arbitrator",
                             {"buyer_bps": 3000, "resolution_notes": "partly paid"}), 202)
    assert ruling["submitted"]["status"] == "awaiting_party_signature"
    # the journal holds the ruled split: the agent refuses any other payout now (I5)
    r = api.post(f"{P}/orders/{trade}/release-escrow", "seller", {})
    assert r.status_code == 409 and r.json()["code"] == "policy_action_not_allowed", r.text
    first = api.ok(api.client.get(f"/api/sol/orders/{trade}/payout", headers=api.h("seller")))
    stale = sign_partially(decode_transaction(first["transaction"]), SoftwareSigner(api.sn.seller))
    # the seller waits too long: the agent-signed rendering expires
    api.sn.chain.warp_slots(200)
    r = api.post(f"/api/sol/orders/{trade}/payout", "seller",
                 {"payout_id": first["payout_id"], "transaction": encode_transaction(stale)})
    assert r.status_code == 409 and r.json()["code"] == "blockhash_expired", r.text
    # the seller (70%) co-signs the rebuilt ruled payout (same split, fresh blockhash,
    # the agent's signature renewed under the same journal decision), as a whole transaction
    pending = api.ok(api.client.get(f"/api/sol/orders/{trade}/payout", headers=api.h("seller")))
    assert pending["payout_id"] != first["payout_id"]
    assert pending["recent_blockhash"] != first["recent_blockhash"]
    assert pending["action"] == "split" and pending["buyer_bps"] == 3000
    assert set(pending["missing_signers"]) == {str(api.sn.fee_payer.pubkey()),
                                               str(api.sn.seller.pubkey())}
    # the outsider sees nothing, the buyer is not a signer of this payout
    assert api.client.get(f"/api/sol/orders/{trade}/payout",
                          headers=api.h("outsider")).status_code == 404
    tx = sign_partially(decode_transaction(pending["transaction"]), SoftwareSigner(api.sn.seller))
    r = api.post(f"/api/sol/orders/{trade}/payout", "buyer",
                 {"payout_id": pending["payout_id"], "transaction": encode_transaction(tx)})
    assert r.status_code == 403
    sub = api.ok(api.post(f"/api/sol/orders/{trade}/payout", "seller",
                          {"payout_id": pending["payout_id"],
                           "transaction": encode_transaction(tx)}), 202)
    assert sub["status"] == "submitted"
    api.sync()
    final = api.trade(trade)
    assert final["status"] == "resolved" and final["escrow"]["buyer_bps"] == 3000
    assert wsol(api, api.sn.buyer) == amount * 3000 // 10_000


def test_risky_token_2022_mint_is_refused(api: SolApi) -> None:
    """An operator lists a Token-2022 mint with a transfer fee: matching refuses it."""
    issuer = Keypair()
    api.sn.chain.airdrop(str(issuer.pubkey()), LAMPORTS_PER_SOL)
    mint = Keypair()
    ext = transfer_fee_extension(0)
    space = 165 + 1 + 4 + ext.value_len
    rent = int(api.sn.chain.rpc("getMinimumBalanceForRentExemption", space))
    ixs = [
        create_account(CreateAccountParams(from_pubkey=issuer.pubkey(), to_pubkey=mint.pubkey(),
                                           lamports=rent, space=space,
                                           owner=TOKEN_2022_PROGRAM_ID)),
        ext.build(mint.pubkey(), issuer.pubkey()),
        initialize_mint2(InitializeMint2Params(program_id=TOKEN_2022_PROGRAM_ID,
                                               mint=mint.pubkey(), decimals=6,
                                               mint_authority=issuer.pubkey())),
    ]
    blockhash, _ = api.sn.sol.client.latest_blockhash(Commitment("processed"))
    api.sn.send(Transaction([issuer, mint], Message.new_with_blockhash(ixs, issuer.pubkey(),
                                                                         blockhash), blockhash))
    api.sn.chain.warp_slots(2)
    with transaction(api.sn.node.sessions) as s:
        upsert_currency(s, CurrencySpec(name="Fee token", symbol="FEE", chain="sol",
                                        network=api.sn.sol.cluster, decimals=6,
                                        contract_address=str(mint.pubkey())))
    ad = api.ad(10**6, "FEE")
    r = api.match(ad, 10**6)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "mint_transfer_fee"


def test_bad_addresses_are_refused(api: SolApi) -> None:
    body = {"crypto_currency_id": api.currency("SOL"), "amount": "1000",
            "price_per_unit": "150", "fiat_currency": "EUR", "payment_methods": ["SEPA"]}
    for bad in ("0x" + "ab" * 20, "not-base58!", str(WRAPPED_SOL_MINT)[:-2]):
        r = api.post(f"{P}/orders", "seller", {**body, "seller_address": bad})
        assert r.status_code == 422 and r.json()["field"] == "seller_address", r.text
    # an off-curve address (a program-derived one) cannot sign: refused too
    from solders.pubkey import Pubkey

    pda, _ = Pubkey.find_program_address([b"x"], TOKEN_2022_PROGRAM_ID)
    r = api.post(f"{P}/orders", "seller", {**body, "seller_address": str(pda)})
    assert r.status_code == 422
