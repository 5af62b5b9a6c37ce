"""Relative (BIP68/BIP112 CSV) and absolute (nLockTime) timelocks on the local
regtest node.

Proves that a spend of a ``<n> OP_CSV`` P2WSH output is refused with
"non-BIP68-final" until the output has n confirmations and accepted (and
mined) after; that a too-small nSequence fails the script check itself once
BIP68 no longer stops it; that a time-based lock (512-second units, measured
on median time past) opens exactly when the chain's median time has moved
512 seconds past the funding block's parent; and that a transaction whose
nLockTime is not yet reached is refused as "non-final" and accepted one block
later.
"""

from __future__ import annotations

from embit.transaction import Transaction, TransactionInput, TransactionOutput
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.consensus import push_int
from localchain.bitcoin.devwallet import DevWallet
from localchain.bitcoin.scripts import address_to_spk

from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import assert_raises_rpc_error


def _csv_script(wallet: DevWallet, blocks: int) -> bytes:
    pub = wallet.pubkey.sec()
    return push_int(blocks) + b"\xb2\x75" + bytes([len(pub)]) + pub + b"\xac"


def _spend(
    wallet: DevWallet, txid: str, vout: int, value: int, script: bytes, to: str, sequence: int
) -> str:
    from embit.script import Script

    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes.fromhex(txid), vout, sequence=sequence)],
        vout=[TransactionOutput(value - 1_000, Script(address_to_spk(to)))],
    )
    wallet.sign_input(tx, 0, value, witness_script=script)
    return bytes(tx.serialize()).hex()


def test_csv_locked_spend(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    script = _csv_script(bob, 3)
    lock_addr = bob.p2wsh_address(script)
    fund_txid = alice.send(lock_addr, 1_000_000)
    bitcoind.mine(1)
    vout = next(
        v["n"]
        for v in bitcoind.rpc("getrawtransaction", fund_txid, True)["vout"]
        if v["scriptPubKey"].get("address") == lock_addr
    )
    spend = _spend(bob, fund_txid, vout, 1_000_000, script, bob.address, sequence=3)
    # 1 and 2 confirmations: too young
    for _ in range(2):
        assert_raises_rpc_error(-26, "non-BIP68-final", bitcoind.rpc, "sendrawtransaction", spend)
        res = bitcoind.rpc("testmempoolaccept", [spend])[0]
        assert res == {**res, "allowed": False, "reject-reason": "non-BIP68-final"}
        bitcoind.mine(1)
    # a spend claiming only 1 block of age passes BIP68 but fails OP_CSV in the script
    short = _spend(bob, fund_txid, vout, 1_000_000, script, bob.address, sequence=1)
    assert_raises_rpc_error(
        -26, "mandatory-script-verify-flag-failed", bitcoind.rpc, "sendrawtransaction", short
    )
    # 3 confirmations: the next block may include it
    txid = bitcoind.rpc("sendrawtransaction", spend)
    block = bitcoind.mine(1)[0]
    assert txid in bitcoind.rpc("getblock", block)["tx"]


def test_absolute_locktime(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    height = bitcoind.height()
    coin = alice.utxos()[0]
    locked = alice.build(
        [(bob.address, 10_000)], inputs=[coin], locktime=height + 1, sequence=0xFFFFFFFE
    )
    raw = bytes(locked.serialize()).hex()
    assert_raises_rpc_error(-26, "non-final", bitcoind.rpc, "sendrawtransaction", raw)
    bitcoind.mine(1)
    # nLockTime == tip height: final for the next block (Core's IsFinalTx)
    txid = bitcoind.rpc("sendrawtransaction", raw)
    assert bitcoind.rpc("getrawmempool") == [txid]
    # with every sequence final the lock time is ignored
    coin2 = [u for u in alice.utxos() if u.txid != coin.txid][0]
    ignored = alice.build(
        [(bob.address, 10_000)], inputs=[coin2], locktime=height + 50, sequence=0xFFFFFFFF
    )
    assert bitcoind.rpc("testmempoolaccept", [bytes(ignored.serialize()).hex()])[0]["allowed"]


def test_csv_time_based_lock(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    seq = (1 << 22) | 1  # one unit of 512 seconds
    script = _csv_script(bob, seq)
    lock_addr = bob.p2wsh_address(script)
    fund_txid = alice.send(lock_addr, 1_000_000)
    funding_block = bitcoind.mine(1)[0]
    parent = bitcoind.rpc("getblockheader", funding_block)["previousblockhash"]
    base_mtp = bitcoind.rpc("getblockheader", parent)["mediantime"]
    vout = next(
        v["n"]
        for v in bitcoind.rpc("getrawtransaction", fund_txid, True)["vout"]
        if v["scriptPubKey"].get("address") == lock_addr
    )
    spend = _spend(bob, fund_txid, vout, 1_000_000, script, bob.address, sequence=seq)
    assert_raises_rpc_error(-26, "non-BIP68-final", bitcoind.rpc, "sendrawtransaction", spend)
    # blocks mined in a burst are a second apart: ~500 blocks move the median 500 s
    bitcoind.mine(480)
    while True:
        mtp = bitcoind.rpc("getblockheader", bitcoind.tip())["mediantime"]
        allowed = bitcoind.rpc("testmempoolaccept", [spend])[0]["allowed"]
        # Core: locked while MTP(tip) <= base_mtp + 512 - 1
        assert allowed == (mtp - base_mtp >= 512), (mtp - base_mtp, allowed)
        if allowed:
            break
        bitcoind.mine(1)
    txid = bitcoind.rpc("sendrawtransaction", spend)
    assert txid in bitcoind.rpc("getblock", bitcoind.mine(1)[0])["tx"]
