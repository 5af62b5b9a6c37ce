"""Escrow addresses, keys and network values for the Solana escrow.

Proves: escrow addresses are ``create_account_with_seed`` addresses from the seller's key,
the token program and 32-character seeds derived from (cluster genesis hash, trade ref), so
they differ per trade, per cluster and per token program and the node recomputes them;
the three parties must be distinct keys (I1); on LiteSVM nobody but the seller can create
the multisig account at its address (the runtime demands the base key's signature), so
the account cannot be taken before the seller's funding transaction lands; the software
signer is deterministic from a seed, satisfies the ``Signer`` protocol and does not show
its secret; network values are immutable.
"""

from __future__ import annotations

import dataclasses

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountWithSeedParams, create_account_with_seed
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from wallets.solana.errors import InvalidEscrowParamsError, SigningError
from wallets.solana.escrow import (
    MULTISIG_LEN,
    EscrowParties,
    derive_escrow_accounts,
    escrow_seeds,
)
from wallets.solana.network import DEVNET, MAINNET_BETA, local_network
from wallets.solana.signer import Signer, SoftwareSigner
from wallets.solana.testing import EscrowWorld, Ledger, LedgerTransactionError

PARTIES = EscrowParties(Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey())
MINT = Keypair().pubkey()


def derive(network=MAINNET_BETA, ref="trade-1", program=TOKEN_PROGRAM_ID):
    return derive_escrow_accounts(
        network=network,
        trade_ref=ref,
        parties=PARTIES,
        mint=MINT,
        decimals=6,
        token_program=program,
    )


def test_addresses_are_seeded_from_seller_cluster_and_trade_ref():
    e = derive()
    assert len(e.multisig_seed) == len(e.escrow_seed) == 32
    assert e.multisig == Pubkey.create_with_seed(PARTIES.seller, e.multisig_seed, TOKEN_PROGRAM_ID)
    assert e.escrow_token_account == Pubkey.create_with_seed(
        PARTIES.seller, e.escrow_seed, TOKEN_PROGRAM_ID
    )
    assert derive() == e
    others = [derive(ref="trade-2"), derive(network=DEVNET), derive(program=TOKEN_2022_PROGRAM_ID)]
    addresses = {e.multisig, e.escrow_token_account}
    for other in others:
        addresses |= {other.multisig, other.escrow_token_account}
    assert len(addresses) == 2 * (1 + len(others))
    assert escrow_seeds(MAINNET_BETA, "trade-1") == (e.multisig_seed, e.escrow_seed)


@pytest.mark.parametrize("which", ["buyer", "arbitrator"])
def test_parties_must_be_distinct(which):
    kw = {"buyer": PARTIES.buyer, "seller": PARTIES.seller, "arbitrator": PARTIES.arbitrator}
    kw[which] = PARTIES.seller
    with pytest.raises(InvalidEscrowParamsError) as info:
        EscrowParties(**kw)
    assert info.value.code == "duplicate_party_key"


def test_bad_derivation_inputs_are_refused():
    with pytest.raises(InvalidEscrowParamsError) as info:
        derive(ref="")
    assert info.value.code == "empty_trade_ref"
    with pytest.raises(InvalidEscrowParamsError) as info:
        derive(program=SYSTEM_PROGRAM_ID)
    assert info.value.code == "unknown_token_program"


def test_nobody_but_the_seller_can_create_the_multisig_account():
    ledger = Ledger.new()
    w = EscrowWorld.new(ledger)
    attacker = ledger.wallet()
    honest = create_account_with_seed(
        CreateAccountWithSeedParams(
            from_pubkey=attacker.pubkey(),
            to_pubkey=w.escrow.multisig,
            base=w.seller.pubkey(),
            seed=w.escrow.multisig_seed,
            lamports=ledger.rent().multisig,
            space=MULTISIG_LEN,
            owner=TOKEN_PROGRAM_ID,
        )
    )
    # The seller (base) must sign; the attacker strips that flag to try without it.
    metas = [
        AccountMeta(m.pubkey, m.is_signer and m.pubkey == attacker.pubkey(), m.is_writable)
        for m in honest.accounts
    ]
    forged = Instruction(honest.program_id, honest.data, metas)
    with pytest.raises(LedgerTransactionError) as info:
        ledger.send_ixs([forged], attacker)
    assert "MissingRequiredSignature" in str(info.value.err)
    assert ledger.account_data(w.escrow.multisig) is None
    w.fund(1000)  # the seller's funding still lands
    assert ledger.token_balance(w.escrow.escrow_token_account) == 1000


def test_software_signer():
    seed = bytes(range(32))
    a, b = SoftwareSigner.from_seed(seed), SoftwareSigner.from_seed(seed)
    assert isinstance(a, Signer)
    assert a.pubkey() == b.pubkey() == Keypair.from_seed(seed).pubkey()
    sig = a.sign_message(b"message")
    assert sig.verify(a.pubkey(), b"message") and not sig.verify(a.pubkey(), b"other")
    assert repr(a) == f"SoftwareSigner({a.pubkey()})"
    assert seed.hex() not in repr(a) and not hasattr(a, "keypair")
    with pytest.raises(SigningError) as info:
        SoftwareSigner.from_seed(b"short")
    assert info.value.code == "bad_key_material"


def test_network_values_are_immutable_and_explicit():
    local = local_network(Hash.hash(b"genesis"))
    assert local.name == "localnet" and local != MAINNET_BETA
    assert str(MAINNET_BETA.genesis_hash) == "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"
    with pytest.raises(dataclasses.FrozenInstanceError):
        MAINNET_BETA.name = "x"  # type: ignore[misc]
