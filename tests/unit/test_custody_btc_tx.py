"""Custody Bitcoin transactions: coin selection covers amount + fee, change
goes back unless it is dust, sizes bound the real signed size, and the
keystore's P2WPKH signatures verify against the spent outputs."""

from __future__ import annotations

import pytest
from embit.ec import Signature
from embit.script import Witness, p2pkh
from embit.transaction import Transaction

from wallets.bitcoin.network import REGTEST
from wallets.custody_btc import P2WPKH_DUST, SpendableOutput, script_of, select, unsigned, vsize
from wallets.custody_keys import CustodyKeys

KEYS = CustodyKeys("abandon " * 11 + "about")
HOT = KEYS.btc_hot(REGTEST)
DEST = script_of(KEYS.btc_deposit(REGTEST, 9).address)
CHANGE = script_of(HOT.address)


def coin(n: int, amount: int) -> SpendableOutput:
    return SpendableOutput(f"{n:064x}", 0, amount, HOT.path)


def test_select_with_change() -> None:
    inputs, outputs, fee = select(
        [coin(1, 10_000), coin(2, 90_000)], 50_000, dest=DEST, change=CHANGE, feerate=2
    )
    assert [c.amount for c in inputs] == [90_000]  # largest first
    assert outputs[0] == (DEST, 50_000) and outputs[1][0] == CHANGE
    assert sum(c.amount for c in inputs) == 50_000 + outputs[1][1] + fee
    assert fee == vsize(1, [DEST, CHANGE]) * 2


def test_dust_change_goes_to_fee_and_shortfall_raises() -> None:
    fee2 = vsize(1, [DEST, CHANGE]) * 2
    inputs, outputs, fee = select(
        [coin(1, 50_000 + fee2 + P2WPKH_DUST - 1)], 50_000, dest=DEST, change=CHANGE, feerate=2
    )
    assert outputs == [(DEST, 50_000)] and fee == fee2 + P2WPKH_DUST - 1
    with pytest.raises(ValueError):
        select([coin(1, 50_000)], 50_000, dest=DEST, change=CHANGE, feerate=1)


def test_signed_size_and_signatures() -> None:
    coins = [coin(1, 70_000), coin(2, 30_000)]
    raw = KEYS.btc_sign(unsigned(coins, [(DEST, 99_000)]), coins)
    tx = Transaction.parse(raw)
    stripped = Transaction.parse(raw)
    for vin in stripped.vin:
        vin.witness = Witness([])
    base = len(stripped.serialize())
    assert base < len(raw)  # a segwit transaction
    assert -(-(3 * base + len(raw)) // 4) <= vsize(2, [DEST])
    pub = KEYS._btc_key(HOT.path).key.get_public_key()
    for i, c in enumerate(coins):
        sig_der, pk = tx.vin[i].witness.items
        assert pk == pub.sec() and sig_der[-1] == 1
        digest = tx.sighash_segwit(i, p2pkh(pub), c.amount)
        assert pub.verify(Signature.parse(sig_der[:-1]), digest)
    with pytest.raises(ValueError):
        unsigned(coins, [(DEST, 100_001)])
