"""Reorgs on the local regtest node: the UTXO set, transaction index and
mempool follow block disconnects and connects as in Core.

Proves that invalidateblock on the block holding a transaction puts it back
in the mempool (and the next blocks confirm it again), that a conflicting
transaction mined on the new branch drops it for good, that reconsiderblock
and a second invalidateblock bring back a stored side branch when it has the
most work, that a longer branch submitted with submitblock makes the kernel
reorg by itself, and that getchaintips reports every branch.
"""

from __future__ import annotations

from embit.transaction import Transaction
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin import consensus as C
from localchain.bitcoin.devwallet import DevWallet

from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import assert_raises_rpc_error


def test_invalidate_returns_tx_to_mempool(
    bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet
) -> None:
    txid = alice.send(bob.address, 2_000_000)
    block = bitcoind.mine(1)[0]
    assert bitcoind.rpc("getrawtransaction", txid, True)["blockhash"] == block
    assert bob.balance() == 2_000_000

    bitcoind.rpc("invalidateblock", block)
    assert bitcoind.tip() != block
    assert bitcoind.rpc("getrawmempool") == [txid]
    assert "blockhash" not in bitcoind.rpc("getrawtransaction", txid, True)
    assert bob.balance() == 0  # scantxoutset sees confirmed coins only
    assert bitcoind.rpc("gettxout", txid, 0)["confirmations"] == 0
    tips = bitcoind.rpc("getchaintips")
    assert {"height": 102, "hash": block, "branchlen": 1, "status": "invalid"} in tips

    # resubmitting the invalidated block does not bring it back
    raw = bitcoind.rpc("getblock", block, 0)
    assert bitcoind.rpc("submitblock", raw) == "duplicate-invalid"
    assert bitcoind.tip() != block

    new_branch = bitcoind.mine(2)
    assert txid in bitcoind.rpc("getblock", new_branch[0])["tx"]
    tx = bitcoind.rpc("getrawtransaction", txid, True)
    assert tx["blockhash"] == new_branch[0] and tx["confirmations"] == 2
    stale = bitcoind.rpc("getrawtransaction", txid, True, block)
    assert stale["in_active_chain"] is False and stale["confirmations"] == 0
    assert bitcoind.rpc("getblock", block)["confirmations"] == -1
    assert bob.balance() == 2_000_000


def test_conflict_on_new_branch_drops_tx(
    bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet
) -> None:
    coin = alice.utxos()[0]
    pay_bob = alice.build([(bob.address, 3_000_000)], inputs=[coin])
    txid = bitcoind.rpc("sendrawtransaction", bytes(pay_bob.serialize()).hex())
    block = bitcoind.mine(1)[0]
    # the seller double-spends on a competing branch
    back_to_alice = alice.build([(alice.address, 3_000_000)], inputs=[coin])
    bitcoind.rpc("invalidateblock", block)
    assert bitcoind.rpc("getrawmempool") == [txid]
    mined = bitcoind.rpc("generateblock", alice.address, [bytes(back_to_alice.serialize()).hex()])
    assert bitcoind.rpc("getrawmempool") == []
    bitcoind.mine(1)
    assert_raises_rpc_error(
        -5, "No such mempool or blockchain transaction", bitcoind.rpc, "getrawtransaction", txid
    )
    assert bob.balance() == 0
    assert back_to_alice.txid().hex() in bitcoind.rpc("getblock", mined["hash"])["tx"]


def test_reconsider_and_side_branch(bitcoind: BitcoinRegtest, alice: DevWallet) -> None:
    base = bitcoind.height()
    a1 = bitcoind.mine(1)[0]
    new = bitcoind.reorg(1)  # invalidates a1, mines b1, b2
    assert len(new) == 2 and bitcoind.height() == base + 2
    bitcoind.rpc("reconsiderblock", a1)
    # a1's branch has less work: still on b2, a1 is now a valid fork
    assert bitcoind.tip() == new[-1]
    tips = {t["hash"]: t for t in bitcoind.rpc("getchaintips")}
    assert tips[a1]["status"] == "valid-fork" and tips[new[-1]]["status"] == "active"
    # extend a1's branch by submitting two blocks on it: the kernel reorgs to it
    prev = a1
    hashes = []
    for i in range(2):
        hdr = bitcoind.rpc("getblockheader", prev)
        raw = C.assemble_block(
            prev_hash=bytes.fromhex(prev)[::-1],
            height=hdr["height"] + 1,
            time=hdr["time"] + 100 + i,
            payout_script=alice.script_pubkey,
            txs=[],
            fees=0,
        )
        assert bitcoind.rpc("submitblock", raw.hex()) is None
        prev = C.sha256d(raw[:80])[::-1].hex()
        hashes.append(prev)
    assert bitcoind.tip() == hashes[-1] and bitcoind.height() == base + 3
    # invalidating that branch's first block brings the b branch back
    bitcoind.rpc("invalidateblock", a1)
    assert bitcoind.tip() == new[-1]


def test_longer_branch_from_submitblock_reorgs(
    bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet
) -> None:
    fork_point = bitcoind.tip()
    fork_height = bitcoind.height()
    txid = alice.send(bob.address, 1_500_000)
    old = bitcoind.mine(1)[0]
    assert bitcoind.rpc("getrawtransaction", txid, True)["blockhash"] == old
    # two empty blocks on the fork point: more work than the branch with the tx
    prev = fork_point
    t = bitcoind.rpc("getblockheader", old)["time"]
    for i in range(2):
        raw = C.assemble_block(
            prev_hash=bytes.fromhex(prev)[::-1],
            height=fork_height + 1 + i,
            time=t + 1 + i,
            payout_script=bob.script_pubkey,
            txs=[],
            fees=0,
        )
        assert bitcoind.rpc("submitblock", raw.hex()) is None
        prev = C.sha256d(raw[:80])[::-1].hex()
    assert bitcoind.tip() == prev
    assert bitcoind.rpc("getrawmempool") == [txid]
    tips = {t["hash"]: t["status"] for t in bitcoind.rpc("getchaintips")}
    assert tips[old] == "valid-fork"
    assert isinstance(
        Transaction.parse(bytes.fromhex(bitcoind.rpc("getrawtransaction", txid))), Transaction
    )
