"""Local Solana chain, SPL tokens, through solana-py's AsyncClient.

Proves: a mint made with create_account + initialize_mint, associated token
accounts, mint_to and transfer_checked work on the local chain;
getTokenAccountBalance, getTokenSupply and jsonParsed getAccountInfo (what
wallets read) describe token accounts and mints as agave does;
getTokenAccountsByOwner finds an owner's accounts by mint and by program (SPL
Token vs Token-2022); getTransaction's meta carries pre/post token balances; the
wrapped-SOL native mint exists (9 decimals) and SOL can be wrapped; a Token-2022
ATA parses as ``spl-token-2022`` with its immutableOwner extension."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from localchain.solana import SolanaLocal
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.models import MemcmpOpts, TokenAccountOpts
from solders.account_decoder import ParsedAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction_status import UiTransaction
from spl.token.constants import MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, WRAPPED_SOL_MINT
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to,
    sync_native,
    transfer_checked,
)
from spl.token.models import (
    InitializeMint2Params,
    MintToParams,
    SyncNativeParams,
    TransferCheckedParams,
)

from tests.functional.solana_fixtures import *  # noqa: F403 - the fixtures
from tests.functional.solana_fixtures import (
    LAMPORTS_PER_SOL,
    airdrop,
    create_mint,
    send,
    wait_for_status,
)

DECIMALS = 6


def _parsed(value: Any) -> dict[str, Any]:
    """The ``parsed`` object of a jsonParsed account (solders ParsedAccount)."""
    data = value.data
    assert not isinstance(data, bytes), f"not parsed: {value}"
    return dict(data.parsed)


def test_mint_ata_mint_to_transfer_checked_and_balances(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            payer, alice, bob = Keypair(), Keypair(), Keypair()
            await airdrop(client, payer.pubkey(), 2 * LAMPORTS_PER_SOL)
            mint = await create_mint(client, payer, DECIMALS)
            alice_ata = get_associated_token_address(alice.pubkey(), mint)
            bob_ata = get_associated_token_address(bob.pubkey(), mint)
            await send(
                client,
                [
                    create_associated_token_account(payer.pubkey(), alice.pubkey(), mint),
                    create_associated_token_account(payer.pubkey(), bob.pubkey(), mint),
                    mint_to(
                        MintToParams(
                            program_id=TOKEN_PROGRAM_ID,
                            mint=mint,
                            dest=alice_ata,
                            mint_authority=payer.pubkey(),
                            amount=1_500_000,
                        )
                    ),
                ],
                payer,
            )
            sig = await send(
                client,
                [
                    transfer_checked(
                        TransferCheckedParams(
                            program_id=TOKEN_PROGRAM_ID,
                            source=alice_ata,
                            mint=mint,
                            dest=bob_ata,
                            owner=alice.pubkey(),
                            amount=250_000,
                            decimals=DECIMALS,
                        )
                    )
                ],
                payer,
                [alice],
            )
            await wait_for_status(client, sig, "confirmed")

            bal = (await client.get_token_account_balance(alice_ata, Confirmed)).value
            assert (bal.amount, bal.decimals, bal.ui_amount_string, bal.ui_amount) == (
                "1250000",
                6,
                "1.25",
                1.25,
            )
            bal = (await client.get_token_account_balance(bob_ata, Confirmed)).value
            assert (bal.amount, bal.ui_amount_string) == ("250000", "0.25")
            supply = (await client.get_token_supply(mint, Confirmed)).value
            assert (supply.amount, supply.ui_amount_string) == ("1500000", "1.5")

            acct = (await client.get_account_info_json_parsed(alice_ata, Confirmed)).value
            assert acct is not None and acct.owner == TOKEN_PROGRAM_ID
            assert isinstance(acct.data, ParsedAccount)
            assert acct.data.program == "spl-token" and acct.data.space == 165
            parsed = _parsed(acct)
            assert parsed["type"] == "account"
            assert parsed["info"] == {
                "isNative": False,
                "mint": str(mint),
                "owner": str(alice.pubkey()),
                "state": "initialized",
                "tokenAmount": {
                    "amount": "1250000",
                    "decimals": 6,
                    "uiAmount": 1.25,
                    "uiAmountString": "1.25",
                },
            }
            mint_info = _parsed((await client.get_account_info_json_parsed(mint, Confirmed)).value)
            assert mint_info == {
                "type": "mint",
                "info": {
                    "decimals": 6,
                    "freezeAuthority": None,
                    "isInitialized": True,
                    "mintAuthority": str(payer.pubkey()),
                    "supply": "1500000",
                },
            }
            raw = (await client.get_account_info(alice_ata, Confirmed)).value
            assert raw is not None and len(raw.data) == 165 and bytes(raw.data)[:32] == bytes(mint)

            by_mint = (
                await client.get_token_accounts_by_owner(
                    alice.pubkey(), TokenAccountOpts(mint=mint), Confirmed
                )
            ).value
            assert [a.pubkey for a in by_mint] == [alice_ata]
            assert bytes(by_mint[0].account.data) == bytes(raw.data)
            by_program = (
                await client.get_token_accounts_by_owner_json_parsed(
                    bob.pubkey(), TokenAccountOpts(program_id=TOKEN_PROGRAM_ID), Confirmed
                )
            ).value
            assert [a.pubkey for a in by_program] == [bob_ata]
            assert _parsed(by_program[0].account)["info"]["tokenAmount"]["amount"] == "250000"
            other_mint = (
                await client.get_token_accounts_by_owner(
                    alice.pubkey(), TokenAccountOpts(mint=WRAPPED_SOL_MINT), Confirmed
                )
            ).value
            assert other_mint == []

            got = (await client.get_transaction(sig, commitment=Confirmed)).value
            assert got is not None and got.transaction.meta is not None
            meta = got.transaction.meta
            ui_tx = got.transaction.transaction
            assert isinstance(ui_tx, UiTransaction)
            keys = ui_tx.message.account_keys

            def balances(items: Any) -> dict[str, tuple[str, str, str]]:
                out = {}
                for b in items:
                    assert b.mint == mint and b.program_id == TOKEN_PROGRAM_ID
                    out[str(keys[b.account_index])] = (
                        str(b.owner),
                        b.ui_token_amount.amount,
                        b.ui_token_amount.ui_amount_string,
                    )
                return out

            assert balances(meta.pre_token_balances) == {
                str(alice_ata): (str(alice.pubkey()), "1500000", "1.5"),
                str(bob_ata): (str(bob.pubkey()), "0", "0"),
            }
            assert balances(meta.post_token_balances) == {
                str(alice_ata): (str(alice.pubkey()), "1250000", "1.25"),
                str(bob_ata): (str(bob.pubkey()), "250000", "0.25"),
            }

    asyncio.run(scenario())


def test_native_mint_exists_and_sol_can_be_wrapped(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            native = _parsed(
                (await client.get_account_info_json_parsed(WRAPPED_SOL_MINT, Processed)).value
            )
            assert native["type"] == "mint"
            assert native["info"]["decimals"] == 9 and native["info"]["isInitialized"] is True

            owner = Keypair()
            await airdrop(client, owner.pubkey(), 3 * LAMPORTS_PER_SOL)
            wsol = get_associated_token_address(owner.pubkey(), WRAPPED_SOL_MINT)
            sig = await send(
                client,
                [
                    create_associated_token_account(
                        owner.pubkey(), owner.pubkey(), WRAPPED_SOL_MINT
                    ),
                    transfer(
                        TransferParams(
                            from_pubkey=owner.pubkey(), to_pubkey=wsol, lamports=LAMPORTS_PER_SOL
                        )
                    ),
                    sync_native(SyncNativeParams(program_id=TOKEN_PROGRAM_ID, account=wsol)),
                ],
                owner,
            )
            await wait_for_status(client, sig, "confirmed")
            bal = (await client.get_token_account_balance(wsol, Confirmed)).value
            assert (bal.amount, bal.decimals, bal.ui_amount_string) == ("1000000000", 9, "1")
            info = _parsed((await client.get_account_info_json_parsed(wsol, Confirmed)).value)[
                "info"
            ]
            assert info["isNative"] is True
            assert info["rentExemptReserve"]["amount"] == "2039280"

    asyncio.run(scenario())


def test_token_2022_accounts_are_told_apart(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            payer, owner, mint = Keypair(), Keypair(), Keypair()
            await airdrop(client, payer.pubkey(), 2 * LAMPORTS_PER_SOL)
            rent = (await client.get_minimum_balance_for_rent_exemption(MINT_LEN)).value
            ata = get_associated_token_address(owner.pubkey(), mint.pubkey(), TOKEN_2022_PROGRAM_ID)
            sig = await send(
                client,
                [
                    create_account(
                        CreateAccountParams(
                            from_pubkey=payer.pubkey(),
                            to_pubkey=mint.pubkey(),
                            lamports=rent,
                            space=MINT_LEN,
                            owner=TOKEN_2022_PROGRAM_ID,
                        )
                    ),
                    initialize_mint2(
                        InitializeMint2Params(
                            decimals=2,
                            program_id=TOKEN_2022_PROGRAM_ID,
                            mint=mint.pubkey(),
                            mint_authority=payer.pubkey(),
                        )
                    ),
                    create_associated_token_account(
                        payer.pubkey(), owner.pubkey(), mint.pubkey(), TOKEN_2022_PROGRAM_ID
                    ),
                    mint_to(
                        MintToParams(
                            program_id=TOKEN_2022_PROGRAM_ID,
                            mint=mint.pubkey(),
                            dest=ata,
                            mint_authority=payer.pubkey(),
                            amount=12_345,
                        )
                    ),
                ],
                payer,
                [mint],
            )
            await wait_for_status(client, sig, "confirmed")
            acct = (await client.get_account_info_json_parsed(ata, Confirmed)).value
            assert acct is not None and isinstance(acct.data, ParsedAccount)
            assert acct.data.program == "spl-token-2022"
            info = _parsed(acct)["info"]
            assert info["extensions"] == [{"extension": "immutableOwner"}]
            assert info["tokenAmount"]["uiAmountString"] == "123.45"
            v2022 = (
                await client.get_token_accounts_by_owner(
                    owner.pubkey(), TokenAccountOpts(program_id=TOKEN_2022_PROGRAM_ID), Confirmed
                )
            ).value
            assert [a.pubkey for a in v2022] == [ata]
            v1 = (
                await client.get_token_accounts_by_owner(
                    owner.pubkey(), TokenAccountOpts(program_id=TOKEN_PROGRAM_ID), Confirmed
                )
            ).value
            assert v1 == []
            raw = (await client.get_account_info(ata, Confirmed)).value
            assert raw is not None
            assert base64.b64encode(bytes(raw.data)).decode()  # base64 of >165 bytes round-trips
            assert len(raw.data) > 165 and raw.owner == TOKEN_2022_PROGRAM_ID

    asyncio.run(scenario())


def test_token_rpc_errors(solana_chain: SolanaLocal) -> None:
    from localchain.solana import RPCError

    cases: list[tuple[str, list[Any], str]] = [
        (
            "getTokenAccountBalance",
            [str(Keypair().pubkey())],
            "Invalid param: could not find account",
        ),
        ("getTokenAccountBalance", [str(WRAPPED_SOL_MINT)], "Invalid param: not a Token account"),
        (
            "getTokenAccountsByOwner",
            [str(Keypair().pubkey()), {"programId": str(Pubkey.default())}],
            "Invalid param: unrecognized Token program id",
        ),
        (
            "getTokenAccountsByOwner",
            [str(Keypair().pubkey()), {"mint": str(Keypair().pubkey())}],
            "Invalid param: could not find mint",
        ),
    ]
    for method, params, message in cases:
        try:
            solana_chain.rpc(method, *params)
        except RPCError as exc:
            assert (exc.code, exc.message) == (-32602, message)
        else:
            raise AssertionError(f"{method}{params} did not fail")


def test_get_program_accounts_with_filters(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            payer, owner = Keypair(), Keypair()
            await airdrop(client, payer.pubkey(), LAMPORTS_PER_SOL)
            mint = await create_mint(client, payer, 0)
            ata = get_associated_token_address(owner.pubkey(), mint)
            await send(
                client,
                [create_associated_token_account(payer.pubkey(), owner.pubkey(), mint)],
                payer,
            )
            found = (
                await client.get_program_accounts(
                    TOKEN_PROGRAM_ID,
                    Processed,
                    encoding="base64",
                    filters=[165, MemcmpOpts(offset=32, bytes=str(owner.pubkey()))],
                )
            ).value
            assert [a.pubkey for a in found] == [ata]
            mints = (
                await client.get_program_accounts(
                    TOKEN_PROGRAM_ID,
                    Processed,
                    encoding="base64",
                    filters=[MINT_LEN, MemcmpOpts(offset=4, bytes=str(payer.pubkey()))],
                )
            ).value
            assert [a.pubkey for a in mints] == [mint]

    asyncio.run(scenario())
