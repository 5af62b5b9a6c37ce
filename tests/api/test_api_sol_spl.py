"""An SPL token (a USDC-style mint, 6 decimals, classic Token program) traded
end to end through the HTTP API on a real node (local Solana chain over
JSON-RPC, PostgreSQL): the mint is listed as a currency; the seller funds the
escrow token account from their own token account with the transaction the
API returned; the buyer marks paid; the seller releases; the buyer's token
account receives exactly the amount. A second trade is disputed and split by
the arbitrator (25/75), co-signed by the seller; both sides get their share
and the escrow account is closed. The agent's policy refuses on the way what
it must (the buyer's release, the seller's reclaim of a paid trade, a
conflicting payout after the ruling)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.commitment import Commitment
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction
from spl.token.constants import MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint,
    mint_to,
)
from spl.token.models import InitializeMintParams, MintToParams

from tests.api.test_api_sol_trades import P, SolApi
from tests.functional.solana_fixtures import solana_chain  # noqa: F401 (fixture)
from tests.functional.test_sol_watcher import make_sol_node
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    sign_partially,
)

USDC = 10**6  # one token in base units
SELLER_HOLDS = 1_000 * USDC


def _send(chain: SolanaLocal, payer: Keypair, ixs: list[Instruction], *signers: Keypair) -> None:
    blockhash = chain.rpc("getLatestBlockhash", {"commitment": "processed"})["value"]["blockhash"]
    bh = Hash.from_string(blockhash)
    tx = Transaction([payer, *signers], Message.new_with_blockhash(ixs, payer.pubkey(), bh), bh)
    chain.rpc("sendTransaction", base64.b64encode(bytes(tx)).decode(),
              {"encoding": "base64", "preflightCommitment": "processed"})


def usdc_mint(chain: SolanaLocal, holder: Pubkey) -> Pubkey:
    """A fresh 6-decimal mint; ``holder`` gets SELLER_HOLDS in their ATA."""
    issuer, mint = Keypair(), Keypair()
    chain.airdrop(str(issuer.pubkey()), LAMPORTS_PER_SOL)
    rent = int(chain.rpc("getMinimumBalanceForRentExemption", MINT_LEN))
    ata = get_associated_token_address(holder, mint.pubkey())
    _send(chain, issuer, [
        create_account(CreateAccountParams(from_pubkey=issuer.pubkey(), to_pubkey=mint.pubkey(),
                                           lamports=rent, space=MINT_LEN,
                                           owner=TOKEN_PROGRAM_ID)),
        initialize_mint(InitializeMintParams(decimals=6, program_id=TOKEN_PROGRAM_ID,
                                             mint=mint.pubkey(),
                                             mint_authority=issuer.pubkey())),
        create_associated_token_account(issuer.pubkey(), holder, mint.pubkey()),
        mint_to(MintToParams(program_id=TOKEN_PROGRAM_ID, mint=mint.pubkey(), dest=ata,
                             mint_authority=issuer.pubkey(), amount=SELLER_HOLDS)),
    ], mint)
    chain.warp_slots(2)
    return mint.pubkey()


@pytest.fixture
def spl(solana_chain: SolanaLocal, pg_url: str, tmp_path: Path) -> Iterator[tuple[SolApi, Pubkey]]:  # noqa: F811
    seller = Keypair()
    solana_chain.airdrop(str(seller.pubkey()), 20 * LAMPORTS_PER_SOL)
    mint = usdc_mint(solana_chain, seller.pubkey())
    sn = make_sol_node(solana_chain, pg_url, tmp_path, tokens=[
        {"symbol": "USDC", "name": "USD Coin (test mint)", "mint": str(mint), "decimals": 6}])
    sn.seller = seller  # the holder of the tokens
    api = SolApi(sn)
    try:
        yield api, mint
    finally:
        api.client.close()
        sn.node.stop()


def balance(api: SolApi, owner: Pubkey, mint: Pubkey) -> int:
    ata = get_associated_token_address(owner, mint)
    acct = api.sn.sol.client.account(ata, Commitment("finalized"))
    return 0 if acct is None else int.from_bytes(acct.data[64:72], "little")


def usdc_ad(api: SolApi, amount: int) -> int:
    """An ad selling ``amount`` base units of USDC at 0.92 EUR."""
    return int(api.ok(api.post(f"{P}/orders", "seller", {
        "crypto_currency_id": api.currency("USDC"), "amount": str(amount),
        "price_per_unit": "0.92", "fiat_currency": "EUR", "payment_methods": ["SEPA"],
        "seller_address": str(api.sn.seller.pubkey())}), 201)["id"])


def funded_paid(api: SolApi, mint: Pubkey, amount: int) -> int:
    ad = usdc_ad(api, amount)
    opened = api.ok(api.match(ad, amount), 201)
    trade = int(opened["order"]["id"])
    f = opened["funding"]
    assert f["chain"] == "sol" and f["currency"] == "USDC"
    assert f["required_signers"] == [str(api.sn.seller.pubkey())]
    assert opened["order"]["escrow"]["escrow_id"] == f["escrow_token_account"]
    assert opened["order"]["escrow"]["token_address"] == str(mint)
    before = balance(api, api.sn.seller.pubkey(), mint)
    api.fund(f)
    api.sync()
    assert api.trade(trade)["status"] == "funded"
    assert balance(api, api.sn.seller.pubkey(), mint) == before - amount
    escrow_acct = api.sn.sol.client.account(Pubkey.from_string(f["escrow_token_account"]),
                                            Commitment("finalized"))
    assert escrow_acct is not None
    assert int.from_bytes(escrow_acct.data[64:72], "little") == amount
    api.sign_fact(trade, "payment", "buyer", api.sn.buyer)
    assert api.trade(trade)["status"] == "paid"
    return trade


def test_usdc_release_through_the_api(spl: tuple[SolApi, Pubkey]) -> None:
    api, mint = spl
    cur = api.ok(api.client.get(f"{P}/currencies"))
    usdc = next(c for c in cur if c["symbol"] == "USDC")
    assert usdc["chain"] == "sol" and usdc["decimals"] == 6
    assert usdc["contract_address"] == str(mint)
    amount = 250 * USDC
    trade = funded_paid(api, mint, amount)
    # the agent's policy: the buyer cannot release, the seller cannot take a paid trade back
    assert api.post(f"{P}/orders/{trade}/release-escrow", "buyer", {}).status_code == 403
    r = api.post(f"{P}/orders/{trade}/reclaim", "seller", {})
    assert r.status_code in (403, 409) and r.headers["content-type"] == "application/problem+json"
    req = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller", {}))
    assert req["payload"]["action"] == "release"
    tx = sign_partially(decode_transaction(req["payload"]["transaction"]),
                        SoftwareSigner(api.sn.seller))
    sig = str(tx.signatures[tx.message.account_keys.index(api.sn.seller.pubkey())])
    sub = api.ok(api.post(f"{P}/orders/{trade}/release-escrow", "seller",
                          {"signature": sig, "expiry": req["expiry"]}), 202)
    api.sync()
    final = api.trade(trade)
    assert final["status"] == "completed" and final["escrow"]["payout_tx"] == sub["ref"]
    assert balance(api, api.sn.buyer.pubkey(), mint) == amount
    assert balance(api, api.sn.seller.pubkey(), mint) == SELLER_HOLDS - amount
    # the escrow token account was emptied and closed
    escrow_key = Pubkey.from_string(final["escrow"]["escrow_id"])
    assert api.sn.sol.client.account(escrow_key, Commitment("finalized")) is None


def test_usdc_dispute_split_by_the_arbitrator(spl: tuple[SolApi, Pubkey]) -> None:
    api, mint = spl
    amount = 100 * USDC + 3  # odd base units: the seller gets the rounding remainder
    trade = funded_paid(api, mint, amount)
    body = {"dispute_type": "payment_not_received", "description": "no transfer seen"}
    opened = api.sign_fact(trade, "dispute", "buyer", api.sn.buyer, body)
    assert api.trade(trade)["status"] == "disputed"
    ruling = api.ok(api.post(f"{P}/disputes/{opened['dispute']['id']}/resolve", "arbitrator",
                             {"buyer_bps": 2500, "resolution_notes": "a quarter was paid"}), 202)
    assert ruling["submitted"]["status"] == "awaiting_party_signature"
    # the journal holds the split: a release is refused now (I5)
    r = api.post(f"{P}/orders/{trade}/release-escrow", "seller", {})
    assert r.status_code == 409 and r.json()["code"] == "policy_action_not_allowed", r.text
    pending = api.ok(api.client.get(f"/api/sol/orders/{trade}/payout", headers=api.h("seller")))
    assert pending["action"] == "split" and pending["buyer_bps"] == 2500
    tx = sign_partially(decode_transaction(pending["transaction"]), SoftwareSigner(api.sn.seller))
    sub = api.ok(api.post(f"/api/sol/orders/{trade}/payout", "seller",
                          {"payout_id": pending["payout_id"],
                           "transaction": encode_transaction(tx)}), 202)
    assert sub["status"] == "submitted"
    api.sync()
    final = api.trade(trade)
    assert final["status"] == "resolved" and final["escrow"]["buyer_bps"] == 2500
    buyer_share = amount * 2500 // 10_000
    assert balance(api, api.sn.buyer.pubkey(), mint) == buyer_share
    assert balance(api, api.sn.seller.pubkey(), mint) == SELLER_HOLDS - buyer_share
