"""Full 2-of-3 escrow flows, each finalized transaction checked by libbitcoinkernel.

Proves: release, refund and split PSBTs signed by any two of three independently
made keys finalize into transactions whose inputs pass Bitcoin Core's consensus
script checks with every flag; one signature does not finalize and a
hand-assembled one-signature witness fails consensus; the seller's refund key
alone spends after the CSV delay (nSequence = N, version 2) and, with a smaller
nSequence, the spend fails exactly because of CHECKSEQUENCEVERIFY; the fee
estimate is an upper bound of the real vsize, tight to one vbyte per input.
"""

from __future__ import annotations

import hashlib
import itertools

import pbk
import pytest
from embit.psbt import PSBT
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from wallets.bitcoin import (
    REGTEST,
    Escrow,
    FinalizeError,
    FundingOutput,
    PayoutKind,
    Ruling,
    SoftwareSigner,
    build_payout_psbt,
    check_payout_psbt,
    combine_psbts,
    finalize_payout,
    finalize_psbt,
)
from wallets.bitcoin.amounts import replacement_fee
from wallets.bitcoin.consensus import ALL_SCRIPT_FLAGS, ConsensusError, verify_transaction

NET = REGTEST
CSV = 144
ACCOUNT = "m/84h/1h/0h"
MAX_FEE = 50_000


def _signer(label: str) -> SoftwareSigner:
    return SoftwareSigner.from_seed(hashlib.sha256(label.encode()).digest(), network=NET)


def _address(label: str) -> str:
    return str(Script(b"\x00\x14" + hashlib.sha256(label.encode()).digest()[:20]).address(
        NET.embit_params))


@pytest.fixture
def parties() -> dict[str, SoftwareSigner]:
    return {r: _signer(f"flows-{r}") for r in ("buyer", "seller", "arbitrator")}


@pytest.fixture
def escrow(parties: dict[str, SoftwareSigner]) -> Escrow:
    return Escrow.create(
        buyer_key=parties["buyer"].key_expression(ACCOUNT, (0, 3)),
        seller_key=parties["seller"].key_expression(ACCOUNT, (0, 8)),
        arbitrator_key=parties["arbitrator"].key_expression(ACCOUNT, (0, 1)),
        seller_refund_key=parties["seller"].key_expression(ACCOUNT, (1, 8)),
        csv_blocks=CSV,
        network=NET,
    )


def _fund(escrow: Escrow, *amounts: int, label: str = "funding") -> list[FundingOutput]:
    prev = hashlib.sha256(label.encode()).digest()
    tx = Transaction(
        version=2,
        vin=[TransactionInput(prev, 0)],
        vout=[TransactionOutput(a, Script(escrow.script.script_pubkey)) for a in amounts],
    )
    raw = tx.serialize()
    return [
        FundingOutput(tx.txid().hex(), i, a, escrow.script.script_pubkey, raw)
        for i, a in enumerate(amounts)
    ]


def _spent(funding: list[FundingOutput]) -> list[tuple[bytes, int]]:
    return [(f.script_pubkey, f.amount_sat) for f in funding]


def _assert_spends_funding(raw: bytes, funding: list[FundingOutput]) -> None:
    """The outpoints, as Core's code reads them, are the funding tx's (byte order!)."""
    spent = [(str(i.out_point.txid), i.out_point.index) for i in pbk.Transaction(raw).inputs]
    assert spent == [
        (str(pbk.Transaction(f.raw_tx).txid), f.vout) for f in funding if f.raw_tx is not None
    ]


def _outputs(raw: bytes) -> list[tuple[bytes, int]]:
    tx = Transaction.parse(raw)
    return [(o.script_pubkey.data, o.value) for o in tx.vout]


def _two_of_three(
    escrow: Escrow, funding: list[FundingOutput], ruling: Ruling,
    first: SoftwareSigner, second: SoftwareSigner, feerate: int = 3,
) -> tuple[bytes, int, int]:
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=feerate)
    signed = [first.sign_psbt(built.psbt), second.sign_psbt(built.psbt)]
    final = finalize_payout(signed, escrow=escrow.script, funding=funding, ruling=ruling,
                            max_fee_sat=MAX_FEE)
    verify_transaction(final.raw, _spent(funding))
    _assert_spends_funding(final.raw, funding)
    assert final.vsize <= built.vsize <= final.vsize + len(funding)
    assert final.txid == built.txid  # segwit: signatures do not change the txid
    return final.raw, built.fee_sat, built.vsize


@pytest.mark.parametrize(
    ("a", "b"), list(itertools.combinations(("buyer", "seller", "arbitrator"), 2))
)
def test_release_any_two_of_three(escrow: Escrow, parties: dict[str, SoftwareSigner],
                                  a: str, b: str) -> None:
    funding = _fund(escrow, 250_000)
    ruling = Ruling.release(_address("buyer-payout"), network=NET)
    raw, fee, vsize = _two_of_three(escrow, funding, ruling, parties[a], parties[b])
    assert _outputs(raw) == [(ruling.buyer_script, 250_000 - fee)]
    assert fee == 3 * vsize


def test_refund_seller_and_arbitrator(escrow: Escrow, parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 80_000)
    ruling = Ruling.refund(_address("seller-payout"), network=NET)
    raw, fee, _ = _two_of_three(escrow, funding, ruling, parties["seller"],
                                parties["arbitrator"])
    assert _outputs(raw) == [(ruling.seller_script, 80_000 - fee)]


def test_split_buyer_and_arbitrator(escrow: Escrow, parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 1_000_000)
    ruling = Ruling.split(_address("b"), _address("s"), 2_500, network=NET)
    raw, fee, _ = _two_of_three(escrow, funding, ruling, parties["arbitrator"],
                                parties["buyer"])
    (b_spk, b_amt), (s_spk, s_amt) = _outputs(raw)
    assert (b_spk, s_spk) == (ruling.buyer_script, ruling.seller_script)
    assert b_amt + s_amt + fee == 1_000_000
    assert b_amt == 250_000 - fee * 250_000 // 1_000_000


def test_release_of_two_funding_outputs(escrow: Escrow,
                                        parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 40_000, 70_000)
    ruling = Ruling.release(_address("buyer-payout"), network=NET)
    raw, fee, _ = _two_of_three(escrow, funding, ruling, parties["buyer"], parties["seller"])
    assert _outputs(raw) == [(ruling.buyer_script, 110_000 - fee)]
    assert len(Transaction.parse(raw).vin) == 2


def test_psbt_carries_everything_a_wallet_needs(escrow: Escrow) -> None:
    funding = _fund(escrow, 100_000)
    built = build_payout_psbt(escrow.script, funding,
                              Ruling.release(_address("x"), network=NET), feerate_sat_vb=1)
    inp = PSBT.from_string(built.psbt).inputs[0]
    assert inp.witness_script.data == escrow.script.witness_script
    assert inp.witness_utxo.value == 100_000
    assert inp.non_witness_utxo.txid().hex() == funding[0].txid
    derivations = {pub.sec(): d for pub, d in inp.bip32_derivations.items()}
    assert set(derivations) == {k.pubkey for k in escrow.script.all_keys}
    buyer = derivations[escrow.buyer.pubkey]
    assert (buyer.fingerprint, buyer.derivation) == (escrow.buyer.fingerprint,
                                                     list(escrow.buyer.path))
    assert len(buyer.derivation) == 5


@pytest.mark.parametrize("who", ["buyer", "seller", "arbitrator"])
def test_one_signature_does_not_finalize(escrow: Escrow, parties: dict[str, SoftwareSigner],
                                         who: str) -> None:
    funding = _fund(escrow, 100_000)
    ruling = Ruling.release(_address("buyer-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=2)
    signed = parties[who].sign_psbt(built.psbt)
    check_payout_psbt(signed, escrow=escrow.script, funding=funding, ruling=ruling,
                      max_fee_sat=MAX_FEE)  # a valid partial signature ...
    with pytest.raises(FinalizeError) as err:  # ... but not enough
        finalize_psbt(signed)
    assert err.value.fields["reason"] == "incomplete"


def test_one_signature_transaction_fails_consensus(
    escrow: Escrow, parties: dict[str, SoftwareSigner]
) -> None:
    funding = _fund(escrow, 100_000)
    ruling = Ruling.release(_address("buyer-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=2)
    psbt = PSBT.from_string(parties["buyer"].sign_psbt(built.psbt))
    (sig,) = psbt.inputs[0].partial_sigs.values()
    tx = psbt.tx
    # the multisig branch with one signature and an empty one
    tx.vin[0].witness = Witness([b"", sig, b"", escrow.script.witness_script])
    with pytest.raises(ConsensusError):
        verify_transaction(tx.serialize(), _spent(funding))
    # the same signature twice does not count as two
    tx.vin[0].witness = Witness([b"", sig, sig, escrow.script.witness_script])
    with pytest.raises(ConsensusError):
        verify_transaction(tx.serialize(), _spent(funding))


def test_combine_then_finalize_matches(escrow: Escrow, parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 100_000)
    ruling = Ruling.refund(_address("seller-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=2)
    combined = combine_psbts([parties["seller"].sign_psbt(built.psbt),
                              parties["arbitrator"].sign_psbt(built.psbt)])
    verify_transaction(finalize_psbt(combined).raw, _spent(funding))


def test_timelock_refund_by_seller_alone(escrow: Escrow,
                                         parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 60_000)
    ruling = Ruling.timelock_refund(_address("seller-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=2)
    signed = parties["seller"].sign_psbt(built.psbt)
    final = finalize_payout([signed], escrow=escrow.script, funding=funding, ruling=ruling,
                            max_fee_sat=MAX_FEE)
    tx = Transaction.parse(final.raw)
    assert tx.version == 2
    assert tx.vin[0].sequence == CSV
    assert len(tx.vin[0].witness.items) == 5  # sig, three empty (multi dissatisfied), script
    assert final.vsize <= built.vsize <= final.vsize + 1
    assert _outputs(final.raw) == [(ruling.seller_script, 60_000 - built.fee_sat)]
    verify_transaction(final.raw, _spent(funding))
    _assert_spends_funding(final.raw, funding)


def test_refund_key_alone_cannot_use_multisig_path(escrow: Escrow,
                                                   parties: dict[str, SoftwareSigner]) -> None:
    """A refund PSBT (nSequence without relative lock) signed only by the seller."""
    funding = _fund(escrow, 60_000)
    ruling = Ruling.refund(_address("seller-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=2)
    with pytest.raises(FinalizeError):
        finalize_psbt(parties["seller"].sign_psbt(built.psbt))


def test_csv_is_enforced_by_checksequenceverify(escrow: Escrow,
                                                parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 60_000)
    ruling = Ruling.timelock_refund(_address("seller-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=2)
    early = PSBT.from_string(built.psbt)
    early.inputs[0].sequence = CSV - 1
    signed = PSBT.from_string(parties["seller"].sign_psbt(early.to_string()))
    with pytest.raises(FinalizeError):  # the finalizer will not satisfy older(N)
        finalize_psbt(signed.to_string())
    refund_sig = signed.inputs[0].partial_sigs[
        next(p for p in signed.inputs[0].partial_sigs if p.sec() == escrow.seller_refund.pubkey)
    ]
    tx = signed.tx
    tx.vin[0].witness = Witness([refund_sig, b"", b"", b"", escrow.script.witness_script])
    without_csv = pbk.ScriptVerificationFlags(
        ALL_SCRIPT_FLAGS & ~pbk.ScriptVerificationFlags.CHECKSEQUENCEVERIFY
    )
    verify_transaction(tx.serialize(), _spent(funding), flags=without_csv)  # sig is fine
    with pytest.raises(ConsensusError):  # only CSV makes it fail
        verify_transaction(tx.serialize(), _spent(funding))


def test_rbf_replacement_pays_more_and_verifies(escrow: Escrow,
                                               parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 400_000)
    ruling = Ruling.release(_address("buyer-payout"), network=NET)
    first = build_payout_psbt(escrow.script, funding, ruling, feerate_sat_vb=1)
    assert PSBT.from_string(first.psbt).inputs[0].sequence == 0xFFFFFFFD  # signals RBF
    fee = replacement_fee(first.fee_sat, first.vsize, 1)
    assert fee == first.fee_sat + first.vsize  # BIP-125: old fee + incremental relay
    bump = build_payout_psbt(escrow.script, funding, ruling, fee_sat=fee)
    assert bump.txid != first.txid and bump.fee_sat == fee
    signed = [parties["buyer"].sign_psbt(bump.psbt), parties["seller"].sign_psbt(bump.psbt)]
    final = finalize_payout(signed, escrow=escrow.script, funding=funding, ruling=ruling,
                            max_fee_sat=MAX_FEE)
    verify_transaction(final.raw, _spent(funding))
    assert _outputs(final.raw) == [(ruling.buyer_script, 400_000 - fee)]


def test_checked_psbt_says_when_complete(escrow: Escrow,
                                         parties: dict[str, SoftwareSigner]) -> None:
    funding = _fund(escrow, 100_000)
    release = Ruling.release(_address("buyer-payout"), network=NET)
    built = build_payout_psbt(escrow.script, funding, release, feerate_sat_vb=1)

    def complete(psbt: str, ruling: Ruling = release) -> bool:
        return check_payout_psbt(psbt, escrow=escrow.script, funding=funding, ruling=ruling,
                                 max_fee_sat=MAX_FEE).complete

    one = parties["seller"].sign_psbt(built.psbt)  # seller key + its refund key: still one
    assert not complete(built.psbt) and not complete(one)
    assert complete(combine_psbts([one, parties["arbitrator"].sign_psbt(built.psbt)]))
    timelock = Ruling.timelock_refund(_address("seller-payout"), network=NET)
    tl = build_payout_psbt(escrow.script, funding, timelock, feerate_sat_vb=1)
    assert not complete(tl.psbt, timelock)
    assert complete(parties["seller"].sign_psbt(tl.psbt), timelock)


def test_exactly_one_fee_input() -> None:
    escrow = Escrow.create(buyer_key=_signer("x1").key_expression(ACCOUNT),
                           seller_key=_signer("x2").key_expression(ACCOUNT),
                           arbitrator_key=_signer("x3").key_expression(ACCOUNT),
                           seller_refund_key=_signer("x4").key_expression(ACCOUNT),
                           csv_blocks=5, network=NET)
    ruling = Ruling.release(_address("b"), network=NET)
    for kwargs in ({}, {"feerate_sat_vb": 1, "fee_sat": 500}):
        with pytest.raises(ValueError):
            build_payout_psbt(escrow.script, _fund(escrow, 10_000), ruling, **kwargs)


def test_ruling_shape_is_validated() -> None:
    spk = b"\x00\x14" + b"\x01" * 20
    with pytest.raises(ValueError):
        Ruling(PayoutKind.RELEASE, seller_script=spk)
    with pytest.raises(ValueError):
        Ruling(PayoutKind.SPLIT, buyer_script=spk, seller_script=spk, buyer_bps=5_000)
    with pytest.raises(ValueError):
        Ruling(PayoutKind.SPLIT, buyer_script=spk, seller_script=spk[:-1] + b"\x02",
               buyer_bps=10_000)
