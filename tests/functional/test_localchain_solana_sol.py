"""Local Solana chain, SOL and the RPC surface, through solana-py's AsyncClient.

Proves: requestAirdrop credits at once; a SOL transfer moves exactly the amount
and charges 5,000 lamports per signature; getTransaction returns it in json and
base64 (the same bytes that were sent); sendTransaction takes base58 (its
default) and base64, and a resend of the same transaction is not a second one; a
transaction that fails in preflight is refused with -32002 and the program's
logs and costs nothing, while with skipPreflight it lands with its error and pays
its fee; a bad signature is refused with -32003 (and never lands with
skipPreflight); JSON-RPC errors carry Solana's codes in HTTP 200 replies;
getFeeForMessage matches the fee charged, priority fee included."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from localchain.solana import RPCError, SolanaLocal
from localchain.solana.b58 import b58decode, b58encode
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

from tests.functional.solana_fixtures import *  # noqa: F403 - the fixtures
from tests.functional.solana_fixtures import (
    LAMPORTS_PER_SOL,
    SEND_NOW,
    airdrop,
    build_tx,
    send,
    wait_for_status,
)

SOL = LAMPORTS_PER_SOL


def _transfer(src: Pubkey, dst: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=src, to_pubkey=dst, lamports=lamports))


def _unsigned_debit(src: Pubkey, dst: Pubkey, lamports: int) -> Instruction:
    """A transfer out of ``src`` that does not mark ``src`` as a signer."""
    ix = _transfer(src, dst, lamports)
    return Instruction(
        ix.program_id, ix.data, [AccountMeta(src, False, True), AccountMeta(dst, False, True)]
    )


def test_airdrop_transfer_and_balances(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), 2 * SOL)
            assert (await client.get_balance(alice.pubkey(), Processed)).value == 2 * SOL

            tx = await build_tx(client, [_transfer(alice.pubkey(), bob.pubkey(), SOL // 2)], alice)
            sig = (await client.send_transaction(tx, opts=SEND_NOW)).value
            assert sig == tx.signatures[0]
            await wait_for_status(client, sig, "confirmed")
            assert (await client.get_balance(bob.pubkey(), Confirmed)).value == SOL // 2
            assert (
                await client.get_balance(alice.pubkey(), Confirmed)
            ).value == 2 * SOL - SOL // 2 - 5000

            got = (
                await client.get_transaction(
                    sig, commitment=Confirmed, max_supported_transaction_version=0
                )
            ).value
            assert got is not None
            meta = got.transaction.meta
            assert meta is not None and meta.err is None and meta.fee == 5000
            assert meta.pre_balances[:2] == [2 * SOL, 0]
            assert meta.post_balances[:2] == [2 * SOL - SOL // 2 - 5000, SOL // 2]
            assert meta.log_messages == [
                "Program 11111111111111111111111111111111 invoke [1]",
                "Program 11111111111111111111111111111111 success",
            ]
            assert got.block_time is not None

            raw = (await client.get_transaction(sig, "base64", Confirmed)).value
            assert raw is not None and bytes(raw.transaction.transaction) == bytes(tx)

            # the default commitment is finalized: nothing there until it is
            await wait_for_status(client, sig, "finalized")
            assert (await client.get_balance(bob.pubkey())).value == SOL // 2
            assert (await client.get_transaction(sig, commitment=Finalized)).value is not None

    asyncio.run(scenario())


def test_send_base58_default_and_a_resend_is_the_same_transaction(
    solana_chain: SolanaLocal,
) -> None:
    async def scenario() -> tuple[Keypair, Keypair, VersionedTransaction]:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            tx = await build_tx(client, [_transfer(alice.pubkey(), bob.pubkey(), SOL // 4)], alice)
            return alice, bob, tx

    alice, bob, tx = asyncio.run(scenario())
    b58 = b58encode(bytes(tx))
    # the codec agrees with solders' own base58 (signatures, keys)
    assert b58encode(bytes(tx.signatures[0])) == str(tx.signatures[0])
    assert b58decode(str(bob.pubkey())) == bytes(bob.pubkey())
    sig = solana_chain.rpc(
        "sendTransaction", b58, {"preflightCommitment": "processed"}
    )  # base58: default
    assert sig == str(tx.signatures[0])
    # preflight at processed sees the first one: refused as a duplicate
    with pytest.raises(RPCError) as exc:
        solana_chain.rpc("sendTransaction", b58, {"preflightCommitment": "processed"})
    assert exc.value.code == -32002
    assert (
        exc.value.message
        == "Transaction simulation failed: This transaction has already been processed"
    )
    # with skipPreflight the duplicate is dropped by the bank, the signature echoed
    b64 = base64.b64encode(bytes(tx)).decode()
    assert (
        solana_chain.rpc("sendTransaction", b64, {"encoding": "base64", "skipPreflight": True})
        == sig
    )
    assert (
        solana_chain.rpc("getBalance", str(bob.pubkey()), {"commitment": "processed"})["value"]
        == SOL // 4
    )
    solana_chain.warp_slots(1)
    sigs = solana_chain.rpc(
        "getSignaturesForAddress", str(bob.pubkey()), {"commitment": "confirmed"}
    )
    assert [s["signature"] for s in sigs] == [sig]


def test_failed_transaction_refused_in_preflight_lands_with_skip_preflight(
    solana_chain: SolanaLocal,
) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            await airdrop(client, bob.pubkey(), SOL)
            steal = [_unsigned_debit(bob.pubkey(), alice.pubkey(), SOL // 2)]

            with pytest.raises(RPCException) as exc:
                await send(client, steal, alice)
            err = exc.value.args[0]
            assert isinstance(err, SendTransactionPreflightFailureMessage)
            assert err.message == (
                "Transaction simulation failed: Error processing Instruction 0: "
                "missing required signature for instruction"
            )
            logs = err.data.logs
            assert logs is not None and any("must sign" in line for line in logs)
            assert (await client.get_balance(alice.pubkey(), Processed)).value == SOL  # no fee

            tx = await build_tx(client, steal, alice)
            sig = (
                await client.send_transaction(
                    tx, opts=TxOpts(skip_confirmation=True, skip_preflight=True)
                )
            ).value
            await wait_for_status(client, sig, "confirmed")
            status = (await client.get_signature_statuses([sig])).value[0]
            assert status is not None and status.err is not None
            assert (
                await client.get_balance(alice.pubkey(), Confirmed)
            ).value == SOL - 5000  # fee paid
            assert (await client.get_balance(bob.pubkey(), Confirmed)).value == SOL  # nothing moved
            got = (await client.get_transaction(sig, commitment=Confirmed)).value
            assert got is not None and got.transaction.meta is not None
            assert got.transaction.meta.fee == 5000
            assert got.transaction.meta.err == status.err

    asyncio.run(scenario())


def test_bad_signature_is_refused_and_never_lands(solana_chain: SolanaLocal) -> None:
    async def scenario() -> VersionedTransaction:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
            msg = Message.new_with_blockhash(
                [_transfer(alice.pubkey(), bob.pubkey(), SOL // 2)], alice.pubkey(), blockhash
            )
            forged = VersionedTransaction.populate(msg, [Keypair().sign_message(bytes(msg))])
            with pytest.raises(RPCException):
                await client.send_transaction(forged, opts=SEND_NOW)
            return forged

    forged = asyncio.run(scenario())
    b64 = base64.b64encode(bytes(forged)).decode()
    with pytest.raises(RPCError) as exc:
        solana_chain.rpc(
            "sendTransaction", b64, {"encoding": "base64", "preflightCommitment": "processed"}
        )
    assert (exc.value.code, exc.value.message) == (
        -32003,
        "Transaction signature verification failure",
    )
    sig = solana_chain.rpc("sendTransaction", b64, {"encoding": "base64", "skipPreflight": True})
    solana_chain.warp_slots(1)
    status = solana_chain.rpc("getSignatureStatuses", [sig], {"searchTransactionHistory": True})
    assert status["value"] == [None]


def test_json_rpc_errors_have_solana_codes(solana_chain: SolanaLocal) -> None:
    def post(body: bytes) -> httpx.Response:
        return httpx.post(
            solana_chain.url, content=body, headers={"content-type": "application/json"}
        )

    reply = post(b'{"jsonrpc":"2.0","id":7,"method":"getNothing","params":[]}')
    assert reply.status_code == 200
    assert reply.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": 7,
    }
    reply = post(b'{"jsonrpc":"2.0","id":8,"method":"getBalance","params":["not-a-key"]}')
    assert reply.status_code == 200 and reply.json()["error"]["code"] == -32602
    reply = post(b'{"jsonrpc":"2.0","id":9,"method":"getBalance"')
    assert reply.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }
    reply = post(
        b'[{"jsonrpc":"2.0","id":1,"method":"getHealth"},{"jsonrpc":"2.0","id":2,"method":"getSlot"}]'
    )
    batch = reply.json()
    assert [r["id"] for r in batch] == [1, 2] and batch[0]["result"] == "ok"
    assert isinstance(batch[1]["result"], int)
    assert httpx.get(f"{solana_chain.url}/health").text == "ok"
    with pytest.raises(RPCError) as exc:
        solana_chain.rpc("getTransaction", "1" * 64, {"commitment": "processed"})
    assert exc.value.code == -32602
    assert exc.value.message == "Method does not support commitment below `confirmed`"
    with pytest.raises(RPCError) as exc:
        solana_chain.rpc("getBalance", str(Pubkey.default()), {"minContextSlot": 10**9})
    assert exc.value.code == -32016


def test_cluster_info_and_fees(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            assert (
                str((await client.get_genesis_hash()).value)
                == solana_chain.rpc("escrowd_info")["genesisHash"]
            )
            version = (await client.get_version()).value
            assert version.solana_core
            epoch = (await client.get_epoch_info(Processed)).value
            slot = (await client.get_slot(Processed)).value
            assert epoch.absolute_slot <= slot and epoch.epoch == slot // 432_000
            assert (await client.get_block_height(Finalized)).value <= slot
            assert (await client.get_minimum_balance_for_rent_exemption(0)).value == 890_880
            assert (await client.get_minimum_balance_for_rent_exemption(165)).value == 2_039_280
            assert await client.is_connected()

            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            ixs = [
                set_compute_unit_limit(10_000),
                set_compute_unit_price(2_000_000),  # micro-lamports per CU: 20,000 lamports
                _transfer(alice.pubkey(), bob.pubkey(), SOL // 10),
            ]
            tx = await build_tx(client, ixs, alice)
            # solana-py types it MessageV0; a legacy message is sent the same way
            fee = await client.get_fee_for_message(tx.message, Processed)  # type: ignore[arg-type]
            quoted = fee.value
            assert quoted == 5000 + 20_000
            sig = (await client.send_transaction(tx, opts=SEND_NOW)).value
            await wait_for_status(client, sig, "confirmed")
            got = (await client.get_transaction(sig, commitment=Confirmed)).value
            assert got is not None and got.transaction.meta is not None
            assert got.transaction.meta.fee == quoted
            assert (
                await client.get_balance(alice.pubkey(), Confirmed)
            ).value == SOL - SOL // 10 - quoted

    asyncio.run(scenario())


def test_simulate_transaction_and_multiple_accounts(solana_chain: SolanaLocal) -> None:
    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            ok = await build_tx(client, [_transfer(alice.pubkey(), bob.pubkey(), SOL // 2)], alice)
            sim = (
                await client.simulate_transaction(
                    ok, sig_verify=True, commitment=Processed, accounts_addresses=[bob.pubkey()]
                )
            ).value
            assert sim.err is None and sim.units_consumed == 150
            assert sim.logs == [
                "Program 11111111111111111111111111111111 invoke [1]",
                "Program 11111111111111111111111111111111 success",
            ]
            assert sim.accounts is not None and sim.accounts[0] is not None
            assert sim.accounts[0].lamports == SOL // 2  # the state after, not committed
            assert (await client.get_balance(bob.pubkey(), Processed)).value == 0

            bad = await build_tx(client, [_unsigned_debit(bob.pubkey(), alice.pubkey(), 1)], alice)
            sim = (await client.simulate_transaction(bad, commitment=Processed)).value
            assert sim.err is not None and any("must sign" in line for line in sim.logs or [])

            # an old blockhash can be replaced for simulation (no signature check then)
            solana_chain.warp_slots(200)
            sim = (
                await client.simulate_transaction(
                    ok, replace_recent_blockhash=True, commitment=Processed
                )
            ).value
            assert sim.err is None and sim.replacement_blockhash is not None
            sim = (await client.simulate_transaction(ok, commitment=Processed)).value
            assert sim.err == TransactionErrorFieldless.BlockhashNotFound

            both = (
                await client.get_multiple_accounts([alice.pubkey(), bob.pubkey()], Processed)
            ).value
            assert both[0] is not None and both[0].lamports == SOL and both[1] is None

    asyncio.run(scenario())


def test_client_defaults_finalized_everywhere_just_work(solana_chain: SolanaLocal) -> None:
    """What a node does with solana-py's defaults: finalized blockhash, preflight
    at finalized, and solana-py's own confirm loop up to finalized."""

    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            await wait_for_status(client, (await airdrop(client, bob.pubkey(), SOL)), "finalized")
            latest = (await client.get_latest_blockhash()).value  # finalized
            msg = Message.new_with_blockhash(
                [_transfer(alice.pubkey(), bob.pubkey(), SOL // 2)],
                alice.pubkey(),
                latest.blockhash,
            )
            tx = VersionedTransaction(msg, [alice])
            opts = TxOpts(
                skip_confirmation=False, last_valid_block_height=latest.last_valid_block_height
            )
            sig = (await client.send_transaction(tx, opts=opts)).value
            status = (await client.get_signature_statuses([sig])).value[0]
            assert status is not None and status.confirmations is None  # finalized
            assert (await client.get_balance(bob.pubkey())).value == SOL + SOL // 2

    asyncio.run(scenario())
