"""Payouts of a Bitcoin escrow as the chain judges them (libbitcoinkernel in
the local regtest node): a 2-of-3 spend with one signature is rejected, a
timelock refund before the timelock is not final, and the same refund after
it is mined; the node's own checks (verify_transaction) agree."""

from __future__ import annotations

import pytest
from embit.psbt import PSBT
from embit.script import Witness
from localchain.bitcoin import RPCError
from sqlalchemy import select

from node.btc_trades import BtcTradeChain
from node.db.models import BtcEscrow
from tests.functional.btc_node_fixtures import *  # noqa: F403
from tests.functional.btc_node_fixtures import CSV_BLOCKS, BtcNode
from wallets.bitcoin import (
    REGTEST,
    ConsensusError,
    FinalizeError,
    PayoutKind,
    finalize_psbt,
    parse_party_key,
    verify_transaction,
)


def _funded(bn: BtcNode, amount: int = 100_000) -> tuple[int, BtcEscrow]:
    tid, addr = bn.open_trade(amount)
    bn.seller.wallet.send(addr, amount)
    bn.sync(mine=1)
    with bn.node.sessions() as s:
        btc = s.scalar(select(BtcEscrow).where(BtcEscrow.address == addr))
        assert btc is not None
        s.expunge(btc)
    return tid, btc


def test_one_signature_is_rejected_by_the_chain(btc_node: BtcNode) -> None:
    chain: BtcTradeChain = btc_node.chain
    _tid, btc = _funded(btc_node)
    ruling = chain.ruling_for(btc, PayoutKind.RELEASE)
    built = chain.build(btc, ruling)
    signed = btc_node.seller.sign(built.psbt)
    with pytest.raises(FinalizeError):
        finalize_psbt(signed)  # one signature does not finalize
    # force it: the 2-of-3 witness with the seller's signature and an empty one
    p = PSBT.from_string(signed)
    seller_pub = parse_party_key(btc.seller_key, field="seller", network=REGTEST).pubkey
    sig = next(v for k, v in p.inputs[0].partial_sigs.items() if k.sec() == seller_pub)
    tx = p.tx
    tx.vin[0].witness = Witness([b"", sig, b"", bytes.fromhex(btc.witness_script)])
    raw = tx.serialize()
    funding = chain.funding_outputs(btc)
    with pytest.raises(ConsensusError):
        verify_transaction(raw, [(f.script_pubkey, f.amount_sat) for f in funding])
    with pytest.raises(RPCError) as err:
        btc_node.regtest.rpc("sendrawtransaction", raw.hex())
    assert err.value.code == -26 and "script-verify-flag-failed" in err.value.message
    # the escrow is untouched
    assert btc_node.regtest.rpc("gettxout", funding[0].txid, funding[0].vout) is not None


def test_timelock_refund_is_final_only_after_the_timelock(btc_node: BtcNode) -> None:
    chain: BtcTradeChain = btc_node.chain
    _tid, btc = _funded(btc_node)
    built = chain.build(btc, chain.ruling_for(btc, PayoutKind.TIMELOCK_REFUND))
    final = finalize_psbt(btc_node.seller.sign(built.psbt))  # the refund key alone
    funding = chain.funding_outputs(btc)
    verify_transaction(final.raw, [(f.script_pubkey, f.amount_sat) for f in funding])
    btc_node.regtest.mine(CSV_BLOCKS - 2)
    with pytest.raises(RPCError) as err:
        btc_node.regtest.rpc("sendrawtransaction", final.raw.hex())
    assert err.value.code == -26 and "non-BIP68-final" in err.value.message
    btc_node.regtest.mine(1)
    txid = btc_node.regtest.rpc("sendrawtransaction", final.raw.hex())
    btc_node.sync(mine=1)
    esc = btc_node.escrow(_tid)
    assert esc["status"] == "refunded" and esc["payout_tx"] == txid
