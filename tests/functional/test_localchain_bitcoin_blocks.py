"""Block production and consensus on the local regtest node.

Proves that generatetoaddress makes blocks libbitcoinkernel accepts (heights,
BIP34 coinbase, subsidy and its halving at 150, 8-decimal BTC amounts in
getblock verbosity 0/1/2 and getblockheader), and that blocks breaking
consensus (coinbase paying too much, a bad merkle root, a bad proof of work,
a child of an unknown block) are refused by the kernel: submitblock returns
Core's reason and the tip does not move.
"""

from __future__ import annotations

import json
from decimal import Decimal

from embit.transaction import Transaction
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin import consensus as C
from localchain.bitcoin.scripts import address_to_spk

from tests.functional.bitcoin_fixtures import *  # noqa: F403


def _template(node: BitcoinRegtest) -> tuple[bytes, int, int]:
    tip = node.rpc("getblockheader", node.tip())
    return bytes.fromhex(tip["hash"])[::-1], tip["height"] + 1, tip["time"] + 1


def test_mining_and_getblock_shapes(bitcoind: BitcoinRegtest) -> None:
    info = bitcoind.rpc("getblockchaininfo")
    assert info["chain"] == "regtest" and info["blocks"] == 0
    assert info["bestblockhash"] == C.REGTEST_GENESIS_HASH

    addr = "bcrt1q0j92p70heuk0g9zhyylcpz0ftw8ed5ksm6ypwm"
    hashes = bitcoind.mine(151, addr)
    assert len(hashes) == 151 and len(set(hashes)) == 151
    assert bitcoind.rpc("getblockcount") == 151
    assert bitcoind.rpc("getbestblockhash") == hashes[-1]
    assert bitcoind.rpc("getblockhash", 7) == hashes[6]

    # subsidy halves at height 150 on regtest
    b149 = bitcoind.rpc("getblock", hashes[148], 2)
    b150 = bitcoind.rpc("getblock", hashes[149], 2)
    assert b149["tx"][0]["vout"][0]["value"] == Decimal("50.00000000")
    assert b150["tx"][0]["vout"][0]["value"] == Decimal("25.00000000")

    # verbosity 2: Core's fields, scriptPubKey with address/type/hex/desc
    blk = bitcoind.rpc("getblock", hashes[9], 2)
    for key in (
        "hash",
        "confirmations",
        "height",
        "version",
        "versionHex",
        "merkleroot",
        "time",
        "mediantime",
        "nonce",
        "bits",
        "difficulty",
        "chainwork",
        "nTx",
        "previousblockhash",
        "nextblockhash",
        "strippedsize",
        "size",
        "weight",
        "tx",
    ):
        assert key in blk, key
    assert blk["height"] == 10 and blk["confirmations"] == 142 and blk["bits"] == "207fffff"
    cb = blk["tx"][0]
    assert cb["vin"][0]["coinbase"].startswith("5a")  # BIP34: OP_10
    assert cb["vin"][0]["txinwitness"] == ["00" * 32]
    out0 = cb["vout"][0]
    assert out0["scriptPubKey"]["address"] == addr
    assert out0["scriptPubKey"]["type"] == "witness_v0_keyhash"
    assert out0["scriptPubKey"]["hex"] == address_to_spk(addr).hex()
    assert out0["scriptPubKey"]["desc"].startswith(f"addr({addr})#")
    # the witness commitment output
    assert cb["vout"][1]["scriptPubKey"]["type"] == "nulldata"
    assert cb["vout"][1]["scriptPubKey"]["hex"].startswith("6a24aa21a9ed")
    assert "prevout" not in json.dumps(blk, default=str)

    # amounts are JSON numbers with 8 decimals on the wire
    raw = bitcoind.post({"method": "getblock", "params": [hashes[9], 2], "id": 1}).text
    assert '"value":50.00000000' in raw

    # verbosity 1 lists txids, 0 is the serialized block
    v1 = bitcoind.rpc("getblock", hashes[9], 1)
    assert v1["tx"] == [cb["txid"]] and v1["merkleroot"] == cb["txid"]
    v0 = bitcoind.rpc("getblock", hashes[9], 0)
    assert C.sha256d(bytes.fromhex(v0)[:80])[::-1].hex() == hashes[9]
    assert bitcoind.rpc("getblock", hashes[9], False) == v0

    hdr = bitcoind.rpc("getblockheader", hashes[9])
    assert hdr["hash"] == hashes[9] and hdr["nextblockhash"] == hashes[10]
    assert bitcoind.rpc("getblockheader", hashes[9], False) == v0[:160]
    # block times strictly increase
    times = [bitcoind.rpc("getblockheader", h)["time"] for h in hashes[:20]]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))


def test_kernel_refuses_invalid_blocks(bitcoind: BitcoinRegtest) -> None:
    bitcoind.mine(3)
    tip = bitcoind.tip()
    prev, height, t = _template(bitcoind)
    spk = address_to_spk("bcrt1q0j92p70heuk0g9zhyylcpz0ftw8ed5ksm6ypwm")

    # coinbase paying more than subsidy + fees
    greedy = C.assemble_block(
        prev_hash=prev,
        height=height,
        time=t,
        payout_script=spk,
        txs=[],
        fees=0,
        coinbase_value=51 * C.COIN,
    )
    assert bitcoind.rpc("submitblock", greedy.hex()) == "bad-cb-amount"
    assert bitcoind.tip() == tip
    tips = bitcoind.rpc("getchaintips")
    bad_hash = C.sha256d(greedy[:80])[::-1].hex()
    assert {"height": height, "hash": bad_hash, "branchlen": 1, "status": "invalid"} in tips
    assert bitcoind.rpc("submitblock", greedy.hex()) == "duplicate-invalid"

    # merkle root not matching the transactions
    good = C.assemble_block(
        prev_hash=prev, height=height, time=t + 1, payout_script=spk, txs=[], fees=0
    )
    header = C.Header.parse(good[:80])
    forged = C.grind(
        C.Header(header.version, header.prev_hash, b"\x11" * 32, header.time, header.bits, 0)
    )
    bad_merkle = forged.serialize() + good[80:]
    assert bitcoind.rpc("submitblock", bad_merkle.hex()) == "bad-txnmrklroot"
    assert bitcoind.tip() == tip

    # a header that does not meet its target
    nonce = 0
    while True:
        h = C.Header(
            header.version, header.prev_hash, header.merkle_root, header.time, header.bits, nonce
        )
        if int.from_bytes(h.hash(), "little") > C.REGTEST_TARGET:
            break
        nonce += 1
    assert bitcoind.rpc("submitblock", (h.serialize() + good[80:]).hex()) == "high-hash"
    assert bitcoind.tip() == tip

    # BIP34: the coinbase must commit to the right height
    wrong_height = C.assemble_block(
        prev_hash=prev, height=height + 5, time=t + 2, payout_script=spk, txs=[], fees=0
    )
    assert bitcoind.rpc("submitblock", wrong_height.hex()) == "bad-cb-height"
    assert bitcoind.tip() == tip

    # unknown parent
    orphan = C.assemble_block(
        prev_hash=b"\x22" * 32, height=height, time=t, payout_script=spk, txs=[], fees=0
    )
    assert bitcoind.rpc("submitblock", orphan.hex()) == "prev-blk-not-found"

    # the same header with a changed witness (a mutated block) is refused, and
    # does not make the real block with that header count as invalid
    header_good, txs_good = C.parse_block(good)
    txs_good[0].vin[0].witness.items = [b"\x01" * 32]
    mutated = C.serialize_block(header_good, txs_good)
    assert C.sha256d(mutated[:80]) == C.sha256d(good[:80])
    assert bitcoind.rpc("submitblock", mutated.hex()) == "bad-witness-merkle-match"
    assert bitcoind.rpc("submitblock", bad_merkle.hex()) == "bad-txnmrklroot"  # again
    assert bitcoind.tip() == tip

    # and the well-formed block is accepted, once
    assert bitcoind.rpc("submitblock", good.hex()) is None
    assert bitcoind.tip() == C.sha256d(good[:80])[::-1].hex()
    assert bitcoind.rpc("submitblock", good.hex()) == "duplicate"


def test_block_with_invalid_transaction_refused(bitcoind: BitcoinRegtest, alice) -> None:  # type: ignore[no-untyped-def]
    """A block spending a coin twice (the second spend only in the block) is refused."""
    coin = alice.utxos()[0]
    tx1 = alice.build([(alice.address, coin.value - 1000)], inputs=[coin], fee=1000)
    tx2 = alice.build([(alice.address, coin.value - 2000)], inputs=[coin], fee=2000)
    prev, height, t = _template(bitcoind)
    raw = C.assemble_block(
        prev_hash=prev,
        height=height,
        time=t,
        payout_script=alice.script_pubkey,
        txs=[Transaction.parse(tx1.serialize()), Transaction.parse(tx2.serialize())],
        fees=3000,
    )
    tip = bitcoind.tip()
    assert bitcoind.rpc("submitblock", raw.hex()) == "bad-txns-inputs-missingorspent"
    assert bitcoind.tip() == tip
    # the coin is still unspent
    assert bitcoind.rpc("gettxout", coin.txid, coin.vout) is not None
