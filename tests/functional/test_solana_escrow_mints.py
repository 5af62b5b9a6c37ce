"""Which mints can be escrowed, judged from real mint accounts created on LiteSVM.

Proves: ``inspect_mint`` accepts SPL Token mints and Token-2022 mints without extensions
or with only descriptive ones (MetadataPointer), reporting decimals and the freeze
authority; it refuses Token-2022 mints with a transfer fee (even 0 bps), a transfer hook
or a permanent delegate with those specific codes, accounts not owned by a token program,
malformed and uninitialized data; ``escrow_for_mint_account`` raises
``UnsupportedMintError`` for a fee mint. A whole escrow (funding, release) works on
Token-2022 with the accepted mint, paying exactly.
"""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from wallets.solana.errors import UnsupportedMintError
from wallets.solana.escrow import EscrowParties, escrow_for_mint_account
from wallets.solana.mint import MintExtension, inspect_mint, require_supported_mint
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.signer import SoftwareSigner, require_complete, sign_partially
from wallets.solana.testing import (
    EscrowWorld,
    Ledger,
    metadata_pointer_extension,
    permanent_delegate_extension,
    transfer_fee_extension,
    transfer_hook_extension,
)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger.new()


def verdict_of(ledger: Ledger, mint):
    data, owner = ledger.account_data(mint), ledger.account_owner(mint)
    assert data is not None and owner is not None
    return inspect_mint(data, owner)


def test_spl_token_mint_is_accepted_and_freeze_authority_reported(ledger):
    issuer = ledger.wallet()
    mint = ledger.create_mint(issuer, 6, freeze_authority=issuer.pubkey())
    v = verdict_of(ledger, mint)
    assert (v.accepted, v.code, v.token_program, v.decimals) == (True, None, TOKEN_PROGRAM_ID, 6)
    assert v.freeze_authority == issuer.pubkey() and v.mint_authority == issuer.pubkey()
    data, owner = ledger.account_data(mint), ledger.account_owner(mint)
    refused = inspect_mint(data, owner, refuse_freeze_authority=True)
    assert (refused.accepted, refused.code) == (False, "mint_freeze_authority")


def test_plain_token_2022_mint_is_accepted(ledger):
    v = verdict_of(ledger, ledger.create_mint(ledger.wallet(), 9, program=TOKEN_2022_PROGRAM_ID))
    assert (v.accepted, v.token_program, v.decimals, v.extensions) == (
        True,
        TOKEN_2022_PROGRAM_ID,
        9,
        (),
    )


@pytest.mark.parametrize("bps", [50, 0])
def test_transfer_fee_mint_is_refused(ledger, bps):
    issuer = ledger.wallet()
    mint = ledger.create_mint(
        issuer, 6, program=TOKEN_2022_PROGRAM_ID, extensions=[transfer_fee_extension(bps)]
    )
    v = verdict_of(ledger, mint)
    assert (v.accepted, v.code) == (False, "mint_transfer_fee")
    assert v.extensions == (MintExtension.TRANSFER_FEE_CONFIG,)
    with pytest.raises(UnsupportedMintError) as info:
        escrow_for_mint_account(
            network=ledger.network,
            trade_ref="t",
            mint=mint,
            parties=EscrowParties(Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()),
            mint_account_data=ledger.account_data(mint),
            mint_account_owner=TOKEN_2022_PROGRAM_ID,
        )
    assert info.value.code == "mint_transfer_fee"
    assert info.value.to_dict()["extensions"] == [1]


def test_transfer_hook_mint_is_refused(ledger):
    mint = ledger.create_mint(
        ledger.wallet(),
        6,
        program=TOKEN_2022_PROGRAM_ID,
        extensions=[transfer_hook_extension(Keypair().pubkey())],
    )
    assert verdict_of(ledger, mint).code == "mint_transfer_hook"


def test_permanent_delegate_mint_is_refused(ledger):
    mint = ledger.create_mint(
        ledger.wallet(),
        6,
        program=TOKEN_2022_PROGRAM_ID,
        extensions=[permanent_delegate_extension(Keypair().pubkey())],
    )
    assert verdict_of(ledger, mint).code == "mint_permanent_delegate"


def test_the_most_dangerous_extension_names_the_refusal(ledger):
    mint = ledger.create_mint(
        ledger.wallet(),
        6,
        program=TOKEN_2022_PROGRAM_ID,
        extensions=[transfer_fee_extension(10), permanent_delegate_extension(Keypair().pubkey())],
    )
    v = verdict_of(ledger, mint)
    assert v.code == "mint_permanent_delegate"
    assert set(v.extensions) == {
        MintExtension.TRANSFER_FEE_CONFIG,
        MintExtension.PERMANENT_DELEGATE,
    }


def test_accounts_that_are_not_mints_are_refused(ledger):
    issuer = ledger.wallet()
    mint = ledger.create_mint(issuer, 6)
    ata = ledger.mint_to_owner(issuer, mint, 6, issuer.pubkey(), 5)
    assert inspect_mint(ledger.account_data(ata), TOKEN_PROGRAM_ID).code == "mint_malformed"
    assert inspect_mint(ledger.account_data(mint), SYSTEM_PROGRAM_ID).code == (
        "mint_not_token_program"
    )
    assert inspect_mint(b"\x00" * 10, TOKEN_2022_PROGRAM_ID).code == "mint_malformed"
    assert inspect_mint(b"\x00" * 82, TOKEN_PROGRAM_ID).code == "mint_not_initialized"
    with pytest.raises(UnsupportedMintError) as info:
        require_supported_mint(ledger.account_data(ata), TOKEN_PROGRAM_ID)
    assert info.value.code == "mint_malformed"


def test_token_2022_escrow_with_metadata_pointer_mint_funds_and_releases(ledger):
    program = TOKEN_2022_PROGRAM_ID
    base = EscrowWorld.new(ledger, program=program)  # plain Token-2022 world for the wallets
    issuer = ledger.wallet()
    mint = ledger.create_mint(issuer, 6, program=program, extensions=[metadata_pointer_extension()])
    seller_ata = ledger.mint_to_owner(
        issuer, mint, 6, base.seller.pubkey(), 10_000, program=program
    )
    escrow = escrow_for_mint_account(
        network=ledger.network,
        trade_ref="t22-1",
        parties=base.escrow.parties,
        mint=mint,
        mint_account_data=ledger.account_data(mint),
        mint_account_owner=program,
    )
    assert escrow.token_program == program and escrow.decimals == 6
    w = EscrowWorld(ledger, base.buyer, base.seller, base.arbitrator, escrow, seller_ata)
    w.fund(7_000)
    assert ledger.account_owner(escrow.multisig) == program
    assert ledger.token_balance(escrow.escrow_token_account) == 7_000
    intent = PayoutIntent(
        escrow=escrow,
        action=PayoutAction.RELEASE,
        amount=7_000,
        signers=(w.seller.pubkey(), w.arbitrator.pubkey()),
        fee_payer=w.seller.pubkey(),
    )
    tx = build_payout_transaction(intent, recent_blockhash=ledger.blockhash())
    for key in (w.seller, w.arbitrator):
        tx = sign_partially(tx, SoftwareSigner(key))
    ledger.send(require_complete(tx))
    assert ledger.token_balance(w.ata(w.buyer)) == 7_000
    assert ledger.token_balance(seller_ata) == 3_000
