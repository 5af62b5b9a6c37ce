"""Mempool acceptance on the local regtest node, with bitcoind's errors.

Proves that sendrawtransaction admits a correctly signed spend (scripts
verified by libbitcoinkernel) and generatetoaddress mines it; that a wrong
signature, a spend of a spent or unknown coin, a double spend paying no more,
dust, a non-standard output, a fee below the relay minimum or above
maxfeerate, an immature coinbase spend and a tx already in the chain are
refused with Core's codes and reasons; that full RBF replaces a transaction
by one paying more (BIP125 fee rules); that a child spending an unconfirmed
parent is accepted and both are mined in one block (CPFP); and that
testmempoolaccept checks a parent+child package without changing the
mempool; and that a chain of unconfirmed transactions stops at Core's limit
of 25 (getmempoolancestors/descendants report the chain).
"""

from __future__ import annotations

from decimal import Decimal

from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionOutput
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet, output_utxo

from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import assert_raises_rpc_error


def _hex(tx: Transaction) -> str:
    return bytes(tx.serialize()).hex()


def test_send_and_mine(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    txid = alice.send(bob.address, 1_000_000, feerate=3)
    assert bitcoind.rpc("getrawmempool") == [txid]
    entry = bitcoind.rpc("getmempoolentry", txid)
    assert entry["ancestorcount"] == 1 and entry["bip125-replaceable"] is True
    assert entry["fees"]["base"] >= Decimal("0.00000003") * entry["vsize"]
    # in the mempool: gettxout sees the new output (0 confirmations), not the spent coin
    assert bitcoind.rpc("gettxout", txid, 0)["confirmations"] == 0
    mempool_tx = bitcoind.rpc("getrawtransaction", txid, True)
    assert "blockhash" not in mempool_tx and "confirmations" not in mempool_tx

    block = bitcoind.mine(1)[0]
    assert bitcoind.rpc("getrawmempool") == []
    tx = bitcoind.rpc("getrawtransaction", txid, True)
    assert tx["blockhash"] == block and tx["confirmations"] == 1
    assert tx["vout"][0]["value"] == Decimal("0.01000000")
    assert tx["vout"][0]["scriptPubKey"]["address"] == bob.address
    assert tx["vin"][0]["txinwitness"][1] == alice.pubkey.sec().hex()
    assert bob.balance() == 1_000_000
    got = bitcoind.rpc("getblock", block, 2)["tx"][1]
    assert got["txid"] == txid and got["fee"] == entry["fees"]["base"]
    # already confirmed: -27, as bitcoind
    assert_raises_rpc_error(
        -27,
        "Transaction outputs already in utxo set",
        bitcoind.rpc,
        "sendrawtransaction",
        tx["hex"],
    )


def test_wrong_signature_refused(
    bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet
) -> None:
    coin = alice.utxos()[0]
    tx = alice.build([(bob.address, 100_000)], inputs=[coin])
    # sign with bob's key instead: the pubkey hash no longer matches
    bob.sign_input(tx, 0, coin.value)
    assert_raises_rpc_error(
        -26, "mandatory-script-verify-flag-failed", bitcoind.rpc, "sendrawtransaction", _hex(tx)
    )
    # a valid signature over other data (amount changed after signing)
    tx = alice.build([(bob.address, 100_000)], inputs=[coin])
    tx.vout[0].value += 1
    err = assert_raises_rpc_error(
        -26, "mandatory-script-verify-flag-failed", bitcoind.rpc, "sendrawtransaction", _hex(tx)
    )
    assert "Signature must be zero for failed CHECK(MULTI)SIG operation" in err.message
    # an empty witness
    tx.vin[0].witness = Witness([])
    assert_raises_rpc_error(
        -26, "mandatory-script-verify-flag-failed", bitcoind.rpc, "sendrawtransaction", _hex(tx)
    )
    accept = bitcoind.rpc("testmempoolaccept", [_hex(alice.build([(bob.address, 100_000)]))])
    assert accept[0]["allowed"] is True
    assert bitcoind.rpc("getrawmempool") == []


def test_double_spends(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    coin = alice.utxos()[0]
    first = alice.build([(bob.address, 200_000)], inputs=[coin], fee=1_000)
    same_fee = alice.build([(alice.address, 300_000)], inputs=[coin], fee=1_000)
    txid = bitcoind.rpc("sendrawtransaction", _hex(first))
    # same tx again: accepted as already known (bitcoind returns the txid)
    assert bitcoind.rpc("sendrawtransaction", _hex(first)) == txid
    err = assert_raises_rpc_error(
        -26,
        "insufficient fee, rejecting replacement",
        bitcoind.rpc,
        "sendrawtransaction",
        _hex(same_fee),
    )
    assert "new feerate" in err.message
    res = bitcoind.rpc("testmempoolaccept", [_hex(same_fee)])[0]
    assert res["allowed"] is False and res["reject-reason"] == "insufficient fee"
    bitcoind.mine(1)
    # now the coin is spent in the chain
    assert_raises_rpc_error(
        -25, "bad-txns-inputs-missingorspent", bitcoind.rpc, "sendrawtransaction", _hex(same_fee)
    )
    # an input that never existed
    ghost = alice.build(
        [(bob.address, 1_000)],
        inputs=[output_utxo(first, 0).__class__("ab" * 32, 0, 50_000, alice.script_pubkey)],
    )
    assert_raises_rpc_error(
        -25, "bad-txns-inputs-missingorspent", bitcoind.rpc, "sendrawtransaction", _hex(ghost)
    )


def test_rbf_replacement(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    coin = alice.utxos()[0]
    low = alice.build([(bob.address, 500_000)], inputs=[coin], feerate=2)
    low_txid = bitcoind.rpc("sendrawtransaction", _hex(low))
    # higher feerate but not enough extra absolute fee for relay of its own size
    barely = alice.build(
        [(bob.address, 500_000)],
        inputs=[coin],
        fee=bitcoind.rpc("getmempoolentry", low_txid)["vsize"] * 2 + 10,
    )
    assert_raises_rpc_error(
        -26, "not enough additional fees to relay", bitcoind.rpc, "sendrawtransaction", _hex(barely)
    )
    high = alice.build([(bob.address, 500_000)], inputs=[coin], feerate=10)
    high_txid = bitcoind.rpc("sendrawtransaction", _hex(high))
    assert bitcoind.rpc("getrawmempool") == [high_txid]
    assert_raises_rpc_error(
        -5, "Transaction not in mempool", bitcoind.rpc, "getmempoolentry", low_txid
    )
    block = bitcoind.mine(1)[0]
    assert high_txid in bitcoind.rpc("getblock", block)["tx"]
    assert_raises_rpc_error(
        -5, "No such mempool or blockchain transaction", bitcoind.rpc, "getrawtransaction", low_txid
    )


def test_rbf_evicts_descendants(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    coin = alice.utxos()[0]
    parent = alice.build([(bob.address, 400_000)], inputs=[coin], feerate=2)
    bitcoind.rpc("sendrawtransaction", _hex(parent))
    child = bob.build([(bob.address, 390_000)], inputs=[output_utxo(parent, 0)], feerate=2)
    child_txid = bitcoind.rpc("sendrawtransaction", _hex(child))
    # replacement must pay for the evicted child too
    replacement = alice.build([(alice.address, 100_000)], inputs=[coin], feerate=20)
    new_txid = bitcoind.rpc("sendrawtransaction", _hex(replacement))
    assert set(bitcoind.rpc("getrawmempool")) == {new_txid}
    assert child_txid not in bitcoind.rpc("getrawmempool")


def test_mempool_chain_cpfp(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    coin = alice.utxos()[0]
    parent = alice.build([(bob.address, 700_000)], inputs=[coin], feerate=1)
    parent_txid = bitcoind.rpc("sendrawtransaction", _hex(parent))
    # bob spends the unconfirmed output, paying a high fee for both (CPFP)
    child = bob.build([(bob.address, 600_000)], inputs=[output_utxo(parent, 0)], feerate=50)
    child_txid = bitcoind.rpc("sendrawtransaction", _hex(child))
    grandchild = bob.build([(bob.address, 500_000)], inputs=[output_utxo(child, 0)], feerate=5)
    grandchild_txid = bitcoind.rpc("sendrawtransaction", _hex(grandchild))
    entry = bitcoind.rpc("getmempoolentry", child_txid)
    assert entry["depends"] == [parent_txid] and entry["spentby"] == [grandchild_txid]
    assert entry["ancestorcount"] == 2 and entry["descendantcount"] == 2
    verbose = bitcoind.rpc("getrawmempool", True)
    assert set(verbose) == {parent_txid, child_txid, grandchild_txid}
    block = bitcoind.mine(1)[0]
    txs = bitcoind.rpc("getblock", block)["tx"]
    assert txs[1:] == [parent_txid, child_txid, grandchild_txid]
    assert bitcoind.rpc("getrawmempool") == []
    assert bitcoind.rpc("gettxout", grandchild_txid, 0)["value"] == Decimal("0.00500000")
    assert bitcoind.rpc("gettxout", parent_txid, 0) is None  # spent by the child


def test_policy_rejections(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    coin = alice.utxos()[0]
    # dust output (P2WPKH dust threshold is 294 sat)
    dust = alice.build([(bob.address, 293)], inputs=[coin])
    assert_raises_rpc_error(-26, "dust", bitcoind.rpc, "sendrawtransaction", _hex(dust))
    ok = bitcoind.rpc("testmempoolaccept", [_hex(alice.build([(bob.address, 294)], inputs=[coin]))])
    assert ok[0]["allowed"] is True
    # a non-standard output script
    odd = alice.build([(bytes.fromhex("51ac52"), 10_000)], inputs=[coin])
    assert_raises_rpc_error(-26, "scriptpubkey", bitcoind.rpc, "sendrawtransaction", _hex(odd))
    # fee below the minimum relay fee (1 sat/vB)
    cheap = alice.build([(bob.address, 10_000)], inputs=[coin], fee=50)
    assert_raises_rpc_error(
        -26, "min relay fee not met", bitcoind.rpc, "sendrawtransaction", _hex(cheap)
    )
    # fee above maxfeerate (default 0.10 BTC/kvB), and with an explicit maxfeerate
    pricey = alice.build([(bob.address, 10_000)], inputs=[coin], fee=5_000_000)
    assert_raises_rpc_error(
        -25,
        "Fee exceeds maximum configured by user",
        bitcoind.rpc,
        "sendrawtransaction",
        _hex(pricey),
    )
    res = bitcoind.rpc("testmempoolaccept", [_hex(pricey)])[0]
    assert res["reject-reason"] == "max-fee-exceeded"
    txid = bitcoind.rpc("sendrawtransaction", _hex(pricey), 0)  # 0 = no limit
    assert txid in bitcoind.rpc("getrawmempool")
    # spending an immature coinbase
    bitcoind.mine(1, alice.address)
    young = [u for u in alice.utxos(spendable_only=False) if u.confirmations == 1][0]
    immature = alice.build([(bob.address, 10_000)], inputs=[young])
    assert_raises_rpc_error(
        -26,
        "bad-txns-premature-spend-of-coinbase",
        bitcoind.rpc,
        "sendrawtransaction",
        _hex(immature),
    )
    # OP_RETURN output of 0 value is standard (one per tx)
    op_return = TransactionOutput(0, Script(bytes.fromhex("6a0568656c6c6f")))
    coin2 = [u for u in alice.utxos() if u.txid != coin.txid][0]
    tx = alice.build([(bob.address, 10_000)], inputs=[coin2])
    tx.vout.append(op_return)
    alice.sign_input(tx, 0, coin2.value)
    res = bitcoind.rpc("testmempoolaccept", [_hex(tx)])[0]
    assert res["allowed"] is True, res
    # undecodable
    assert_raises_rpc_error(-22, "TX decode failed", bitcoind.rpc, "sendrawtransaction", "00ff")


def test_testmempoolaccept_package(
    bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet
) -> None:
    coin = alice.utxos()[0]
    parent = alice.build([(bob.address, 800_000)], inputs=[coin], feerate=2)
    child = bob.build([(bob.address, 700_000)], inputs=[output_utxo(parent, 0)], feerate=2)
    res = bitcoind.rpc("testmempoolaccept", [_hex(parent), _hex(child)])
    assert [r["allowed"] for r in res] == [True, True]
    assert res[1]["txid"] == child.txid().hex() and res[1]["vsize"] > 0
    assert bitcoind.rpc("getrawmempool") == []
    # the child alone is missing its input
    alone = bitcoind.rpc("testmempoolaccept", [_hex(child)])[0]
    assert alone["allowed"] is False and alone["reject-reason"] == "missing-inputs"
    # a trial replacement leaves the real mempool alone
    txid = bitcoind.rpc("sendrawtransaction", _hex(parent))
    bumped = alice.build([(bob.address, 800_000)], inputs=[coin], feerate=20)
    assert bitcoind.rpc("testmempoolaccept", [_hex(bumped)])[0]["allowed"] is True
    assert bitcoind.rpc("getrawmempool") == [txid]
    assert bitcoind.rpc("getmempoolentry", txid)["spentby"] == []


def test_mempool_chain_limit(bitcoind: BitcoinRegtest, alice: DevWallet) -> None:
    prev = alice.build([(alice.address, 40 * 100_000_000)], feerate=2)
    chain = [bitcoind.rpc("sendrawtransaction", _hex(prev))]
    for _ in range(24):
        utxo = output_utxo(prev, 0)
        prev = alice.build([(alice.address, utxo.value - 500)], inputs=[utxo], fee=500)
        chain.append(bitcoind.rpc("sendrawtransaction", _hex(prev)))
    assert bitcoind.rpc("getmempoolentry", chain[-1])["ancestorcount"] == 25
    assert bitcoind.rpc("getmempoolancestors", chain[-1]) == sorted(chain[:-1])
    assert bitcoind.rpc("getmempooldescendants", chain[0]) == sorted(chain[1:])
    utxo = output_utxo(prev, 0)
    one_more = alice.build([(alice.address, utxo.value - 500)], inputs=[utxo], fee=500)
    assert_raises_rpc_error(
        -26, "too-long-mempool-chain", bitcoind.rpc, "sendrawtransaction", _hex(one_more)
    )
    bitcoind.mine(1)
    assert bitcoind.rpc("getrawmempool") == []
    assert bitcoind.rpc("sendrawtransaction", _hex(one_more)) == one_more.txid().hex()
