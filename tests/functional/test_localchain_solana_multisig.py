"""Local Solana chain, the escrow shape: a 2-of-3 SPL Token multisig owning a
token account, through solana-py's AsyncClient.

Proves: the seller's one funding transaction (create_account +
initialize_multisig2 for the multisig, create_account + initialize_account3 for
the escrow account it owns, transfer_checked of the amount) lands; the multisig
reads back as jsonParsed ``multisig`` 2-of-3; a payout signed by one party is
refused in preflight with Solana's -32002 and MissingRequiredSignature (logs
included), and with skipPreflight it lands as a failed transaction that moves
nothing; a payout signed by two parties (signatures collected one by one through
bytes) pays the buyer exactly; getSignaturesForAddress on the escrow account
lists funding, failed attempt and payout newest first, and honours limit,
before and until."""

from __future__ import annotations

import asyncio

from localchain.solana import SolanaLocal
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.account_decoder import ParsedAccount
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.signature import Signature
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from spl.token.constants import ACCOUNT_LEN, MULTISIG_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_account3,
    initialize_multisig2,
    mint_to,
    transfer_checked,
)
from spl.token.models import (
    InitializeAccount3Params,
    InitializeMultisig2Params,
    MintToParams,
    TransferCheckedParams,
)

from tests.functional.solana_fixtures import *  # noqa: F403 - the fixtures
from tests.functional.solana_fixtures import (
    LAMPORTS_PER_SOL,
    SEND_NOW,
    airdrop,
    create_mint,
    send,
    wait_for_status,
)

DECIMALS = 6
AMOUNT = 40_000_000


def _payout(escrow: Pubkey, mint: Pubkey, dest: Pubkey, multisig: Pubkey, signers: list[Pubkey]):  # type: ignore[no-untyped-def]
    return transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=escrow,
            mint=mint,
            dest=dest,
            owner=multisig,
            amount=AMOUNT,
            decimals=DECIMALS,
            signers=signers,
        )
    )


def test_two_of_three_multisig_escrow(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            seller, buyer, arbitrator = Keypair(), Keypair(), Keypair()
            for who in (seller, buyer):
                await airdrop(client, who.pubkey(), LAMPORTS_PER_SOL)
            mint = await create_mint(client, seller, DECIMALS)
            seller_ata = get_associated_token_address(seller.pubkey(), mint)
            buyer_ata = get_associated_token_address(buyer.pubkey(), mint)
            await send(
                client,
                [
                    create_associated_token_account(seller.pubkey(), seller.pubkey(), mint),
                    create_associated_token_account(seller.pubkey(), buyer.pubkey(), mint),
                    mint_to(
                        MintToParams(
                            program_id=TOKEN_PROGRAM_ID,
                            mint=mint,
                            dest=seller_ata,
                            mint_authority=seller.pubkey(),
                            amount=100_000_000,
                        )
                    ),
                ],
                seller,
            )

            # funding: one transaction, signed by the seller (and the new accounts)
            multisig, escrow = Keypair(), Keypair()
            parties = [buyer.pubkey(), seller.pubkey(), arbitrator.pubkey()]
            ms_rent = (await client.get_minimum_balance_for_rent_exemption(MULTISIG_LEN)).value
            acct_rent = (await client.get_minimum_balance_for_rent_exemption(ACCOUNT_LEN)).value
            funding = await send(
                client,
                [
                    create_account(
                        CreateAccountParams(
                            from_pubkey=seller.pubkey(),
                            to_pubkey=multisig.pubkey(),
                            lamports=ms_rent,
                            space=MULTISIG_LEN,
                            owner=TOKEN_PROGRAM_ID,
                        )
                    ),
                    initialize_multisig2(
                        InitializeMultisig2Params(
                            program_id=TOKEN_PROGRAM_ID,
                            multisig=multisig.pubkey(),
                            m=2,
                            signers=parties,
                        )
                    ),
                    create_account(
                        CreateAccountParams(
                            from_pubkey=seller.pubkey(),
                            to_pubkey=escrow.pubkey(),
                            lamports=acct_rent,
                            space=ACCOUNT_LEN,
                            owner=TOKEN_PROGRAM_ID,
                        )
                    ),
                    initialize_account3(
                        InitializeAccount3Params(
                            program_id=TOKEN_PROGRAM_ID,
                            account=escrow.pubkey(),
                            mint=mint,
                            owner=multisig.pubkey(),
                        )
                    ),
                    transfer_checked(
                        TransferCheckedParams(
                            program_id=TOKEN_PROGRAM_ID,
                            source=seller_ata,
                            mint=mint,
                            dest=escrow.pubkey(),
                            owner=seller.pubkey(),
                            amount=AMOUNT,
                            decimals=DECIMALS,
                        )
                    ),
                ],
                seller,
                [multisig, escrow],
            )
            ms = (await client.get_account_info_json_parsed(multisig.pubkey(), Processed)).value
            assert ms is not None and isinstance(ms.data, ParsedAccount)
            assert ms.data.parsed == {
                "type": "multisig",
                "info": {
                    "isInitialized": True,
                    "numRequiredSigners": 2,
                    "numValidSigners": 3,
                    "signers": [str(p) for p in parties],
                },
            }
            assert (
                await client.get_token_account_balance(escrow.pubkey(), Processed)
            ).value.amount == str(AMOUNT)

            # one signature: refused in preflight, costs nothing
            one = [_payout(escrow.pubkey(), mint, buyer_ata, multisig.pubkey(), [seller.pubkey()])]
            with_fee = (await client.get_balance(seller.pubkey(), Processed)).value
            try:
                await send(client, one, seller)
            except RPCException as exc:
                err = exc.args[0]
                assert isinstance(err, SendTransactionPreflightFailureMessage)
                assert err.message == (
                    "Transaction simulation failed: Error processing Instruction 0: "
                    "missing required signature for instruction"
                )
                logs = err.data.logs or []
                assert (
                    f"Program {TOKEN_PROGRAM_ID} failed: missing required signature for instruction"
                    in logs
                )
            else:
                raise AssertionError("a payout with one of three signatures was accepted")
            assert (await client.get_balance(seller.pubkey(), Processed)).value == with_fee

            # ... and with skipPreflight it lands, failed, and moves nothing
            blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
            failed_tx = VersionedTransaction(
                Message.new_with_blockhash(one, seller.pubkey(), blockhash), [seller]
            )
            failed = (
                await client.send_transaction(
                    failed_tx, opts=TxOpts(skip_confirmation=True, skip_preflight=True)
                )
            ).value
            await wait_for_status(client, failed, "processed")
            status = (await client.get_signature_statuses([failed])).value[0]
            assert status is not None and status.err is not None
            assert (
                await client.get_token_account_balance(escrow.pubkey(), Processed)
            ).value.amount == str(AMOUNT)

            # two signatures, collected one by one through bytes: buyer pays the fee
            two = [
                _payout(
                    escrow.pubkey(),
                    mint,
                    buyer_ata,
                    multisig.pubkey(),
                    [seller.pubkey(), buyer.pubkey()],
                )
            ]
            blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
            msg = Message.new_with_blockhash(two, buyer.pubkey(), blockhash)
            signers = list(msg.account_keys[: msg.header.num_required_signatures])
            assert set(signers) == {buyer.pubkey(), seller.pubkey()}
            partial = VersionedTransaction.populate(msg, [Signature.default()] * len(signers))
            wire = bytes(partial)
            for who in (seller, buyer):  # each party signs what it receives
                tx = VersionedTransaction.from_bytes(wire)
                sigs = list(tx.signatures)
                sigs[signers.index(who.pubkey())] = who.sign_message(bytes(tx.message))
                wire = bytes(VersionedTransaction.populate(tx.message, sigs))
            payout = (await client.send_raw_transaction(wire, opts=SEND_NOW)).value
            await wait_for_status(client, payout, "confirmed")
            assert (
                await client.get_token_account_balance(buyer_ata, Confirmed)
            ).value.amount == str(AMOUNT)
            assert (
                await client.get_token_account_balance(escrow.pubkey(), Confirmed)
            ).value.amount == "0"

            history = (
                await client.get_signatures_for_address(escrow.pubkey(), commitment=Confirmed)
            ).value
            assert [h.signature for h in history] == [payout, failed, funding]
            assert [h.err is None for h in history] == [True, False, True]
            assert all(h.block_time is not None and h.slot > 0 for h in history)
            assert [h.slot for h in history] == sorted((h.slot for h in history), reverse=True)
            limited = (
                await client.get_signatures_for_address(
                    escrow.pubkey(), limit=1, commitment=Confirmed
                )
            ).value
            assert [h.signature for h in limited] == [payout]
            older = (
                await client.get_signatures_for_address(
                    escrow.pubkey(), before=payout, commitment=Confirmed
                )
            ).value
            assert [h.signature for h in older] == [failed, funding]
            newer = (
                await client.get_signatures_for_address(
                    escrow.pubkey(), until=funding, commitment=Confirmed
                )
            ).value
            assert [h.signature for h in newer] == [payout, failed]
            # the multisig itself is an account key of each of them too
            on_multisig = (
                await client.get_signatures_for_address(multisig.pubkey(), commitment=Confirmed)
            ).value
            assert [h.signature for h in on_multisig] == [payout, failed, funding]
            # the buyer's token account lists the payout that credited it
            on_buyer_ata = (
                await client.get_signatures_for_address(buyer_ata, commitment=Confirmed)
            ).value
            assert payout in [h.signature for h in on_buyer_ata]

    asyncio.run(scenario())
