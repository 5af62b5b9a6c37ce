"""Local Solana chain, commitment levels and blockhash lifetime, on a chain
whose slots move only when told (``escrowd_warpSlots``; finality after 2 slots).

Proves: a transaction is processed in its slot, confirmed one slot later and
finalized ``finality_slots`` later, and every read honours the commitment asked
for -- getSignatureStatuses' confirmationStatus and confirmations, getTransaction
and getSignaturesForAddress (nothing below confirmed, finalized only once
finalized), getBalance / getAccountInfo / getTokenAccountBalance (the state as
of that slot), getSlot, getBlock; a blockhash is usable for 150 slots (144 in
preflight, as agave leaves room for forwarding), then refused with Solana's
"Blockhash not found" (-32002); with skipPreflight an expired transaction is
answered with its signature but never lands; a blockhash newer than the
preflight commitment's bank is not found there either; statuses older than the
status cache need searchTransactionHistory."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from localchain.solana import RPCError, SolanaLocal
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.rpc.responses import IsBlockhashValidResp
from solders.system_program import (
    AdvanceNonceAccountParams,
    TransferParams,
    advance_nonce_account,
    create_nonce_account,
    transfer,
)
from solders.transaction import VersionedTransaction

from tests.functional.solana_fixtures import *  # noqa: F403 - the fixtures
from tests.functional.solana_fixtures import LAMPORTS_PER_SOL, SEND_NOW, airdrop, build_tx

SOL = LAMPORTS_PER_SOL


def test_processed_confirmed_finalized(solana_manual_chain: SolanaLocal) -> None:
    chain = solana_manual_chain
    assert chain.finality_slots == 2

    async def scenario() -> None:
        async with AsyncClient(chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            chain.finalize()  # the airdrop is history: only the transfer below moves
            tx = await build_tx(
                client,
                [
                    transfer(
                        TransferParams(
                            from_pubkey=alice.pubkey(), to_pubkey=bob.pubkey(), lamports=SOL // 2
                        )
                    )
                ],
                alice,
            )
            sig = (await client.send_transaction(tx, opts=SEND_NOW)).value
            slot = chain.slot()

            async def status() -> tuple[str, int | None]:
                st = (await client.get_signature_statuses([sig])).value[0]
                assert st is not None and st.slot == slot and st.err is None
                return str(st.confirmation_status).rsplit(".", 1)[-1].lower(), st.confirmations

            async def listed(commitment: Commitment) -> bool:
                found = (
                    await client.get_signatures_for_address(bob.pubkey(), commitment=commitment)
                ).value
                return [f.signature for f in found] == [sig]

            async def balance(commitment: Commitment) -> int:
                return (await client.get_balance(bob.pubkey(), commitment)).value

            # processed
            assert await status() == ("processed", 0)
            assert (
                await balance(Processed),
                await balance(Confirmed),
                await balance(Finalized),
            ) == (SOL // 2, 0, 0)
            assert (await client.get_account_info(bob.pubkey(), Confirmed)).value is None
            # an account that existed: each commitment sees its own balance
            spent = SOL - SOL // 2 - 5000
            assert (await client.get_balance(alice.pubkey(), Processed)).value == spent
            assert (await client.get_balance(alice.pubkey(), Finalized)).value == SOL
            assert (await client.get_transaction(sig, commitment=Confirmed)).value is None
            assert not await listed(Confirmed)

            chain.warp_slots(1)  # confirmed
            assert await status() == ("confirmed", 1)
            assert (
                await balance(Processed),
                await balance(Confirmed),
                await balance(Finalized),
            ) == (SOL // 2, SOL // 2, 0)
            assert (await client.get_transaction(sig, commitment=Confirmed)).value is not None
            assert (await client.get_transaction(sig, commitment=Finalized)).value is None
            assert await listed(Confirmed) and not await listed(Finalized)
            assert chain.rpc(
                "getBlock", slot, {"commitment": "confirmed", "transactionDetails": "signatures"}
            )["signatures"] == [str(sig)]
            with pytest.raises(RPCError) as exc:
                chain.rpc("getBlock", slot, {"commitment": "finalized"})
            assert (exc.value.code, exc.value.message) == (
                -32004,
                f"Block not available for slot {slot}",
            )

            chain.warp_slots(1)  # finalized
            assert await status() == ("finalized", None)
            assert await balance(Finalized) == SOL // 2
            assert (await client.get_balance(alice.pubkey(), Finalized)).value == spent
            assert (
                await client.get_account_info(bob.pubkey())
            ).value is not None  # default: finalized
            assert (await client.get_transaction(sig)).value is not None
            assert await listed(Finalized)
            assert (await client.get_slot(Processed)).value == slot + 2
            assert (await client.get_slot(Confirmed)).value == slot + 1
            assert (await client.get_slot(Finalized)).value == slot
            block = chain.rpc("getBlock", slot)
            assert block["parentSlot"] == slot - 1 and block["blockHeight"] == slot
            assert block["transactions"][0]["transaction"]["signatures"] == [str(sig)]
            assert block["previousBlockhash"] == chain.rpc("getBlock", slot - 1)["blockhash"]

    asyncio.run(scenario())


def test_blockhash_lives_150_slots(solana_manual_chain: SolanaLocal) -> None:
    chain = solana_manual_chain

    async def scenario() -> None:
        async with AsyncClient(chain.url) as client:
            alice = Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            latest = (await client.get_latest_blockhash(Processed)).value
            height = (await client.get_block_height(Processed)).value
            assert latest.last_valid_block_height == height + 150

            def signed(lamports: int) -> VersionedTransaction:
                ix = transfer(
                    TransferParams(
                        from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=lamports
                    )
                )
                return VersionedTransaction(
                    Message.new_with_blockhash([ix], alice.pubkey(), latest.blockhash), [alice]
                )

            txs = [signed(SOL // 10 + i) for i in range(4)]
            chain.warp_slots(144)
            assert (await client.send_transaction(txs[0], opts=SEND_NOW)).value == txs[
                0
            ].signatures[0]

            chain.warp_slots(1)  # age 145: refused in preflight, still good for the bank
            with pytest.raises(RPCException) as exc:
                await client.send_transaction(txs[1], opts=SEND_NOW)
            assert exc.value.args[0].message == "Transaction simulation failed: Blockhash not found"
            landed = (await client.send_transaction(txs[1], opts=TxOpts(skip_preflight=True))).value
            assert (await client.get_signature_statuses([landed])).value[0] is not None

            def valid() -> bool:  # solana-py has no is_blockhash_valid
                reply = httpx.post(
                    chain.url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "isBlockhashValid",
                        "params": [str(latest.blockhash), {"commitment": "processed"}],
                    },
                )
                parsed = IsBlockhashValidResp.from_json(reply.text)
                assert isinstance(parsed, IsBlockhashValidResp), parsed
                return bool(parsed.value)

            chain.warp_slots(5)  # age 150: the last slot it is valid in
            assert valid() is True
            assert (
                await client.get_block_height(Processed)
            ).value == latest.last_valid_block_height

            chain.warp_slots(1)  # age 151: expired everywhere
            assert valid() is False
            b64 = base64.b64encode(bytes(txs[2])).decode()
            with pytest.raises(RPCError) as rpc_exc:
                chain.rpc(
                    "sendTransaction",
                    b64,
                    {"encoding": "base64", "preflightCommitment": "processed"},
                )
            assert rpc_exc.value.code == -32002
            assert rpc_exc.value.message == "Transaction simulation failed: Blockhash not found"
            assert rpc_exc.value.data["err"] == "BlockhashNotFound"
            assert rpc_exc.value.data["logs"] == []
            dropped = (
                await client.send_transaction(txs[3], opts=TxOpts(skip_preflight=True))
            ).value
            assert dropped == txs[3].signatures[0]
            chain.warp_slots(1)
            assert (
                await client.get_signature_statuses([dropped], search_transaction_history=True)
            ).value == [None]
            fee = await client.get_fee_for_message(txs[2].message, Processed)  # type: ignore[arg-type]
            assert fee.value is None

    asyncio.run(scenario())


def test_preflight_commitment_is_the_bank_that_judges_the_blockhash(
    solana_manual_chain: SolanaLocal,
) -> None:
    chain = solana_manual_chain

    async def scenario() -> None:
        async with AsyncClient(chain.url) as client:  # default commitment: finalized
            alice = Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            ix = transfer(
                TransferParams(
                    from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL // 4
                )
            )
            fresh = await build_tx(client, [ix], alice, commitment=Processed)
            with pytest.raises(
                RPCException
            ) as exc:  # preflight at finalized: too new for that bank
                await client.send_transaction(fresh, opts=TxOpts(preflight_commitment=Finalized))
            assert exc.value.args[0].message == "Transaction simulation failed: Blockhash not found"
            old = await build_tx(client, [ix], alice, commitment=Finalized)
            sig = (
                await client.send_transaction(old, opts=TxOpts(preflight_commitment=Finalized))
            ).value
            assert sig == old.signatures[0]

    asyncio.run(scenario())


def test_status_cache_vs_transaction_history(solana_manual_chain: SolanaLocal) -> None:
    chain = solana_manual_chain
    alice = Keypair()
    sig = chain.airdrop(str(alice.pubkey()), SOL)
    chain.warp_slots(301)
    assert chain.rpc("getSignatureStatuses", [sig])["value"] == [None]
    found = chain.rpc("getSignatureStatuses", [sig], {"searchTransactionHistory": True})["value"][0]
    assert found["confirmationStatus"] == "finalized" and found["confirmations"] is None
    assert chain.rpc("getTransaction", sig)["meta"]["err"] is None  # history is kept


def test_durable_nonce_outlives_the_blockhash_window(solana_manual_chain: SolanaLocal) -> None:
    """Signatures collected over minutes (a 2-of-3 payout) need a durable nonce:
    the transaction stays valid until the nonce advances, and only once."""
    chain = solana_manual_chain

    async def scenario() -> None:
        async with AsyncClient(chain.url) as client:
            alice, nonce = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            rent = (await client.get_minimum_balance_for_rent_exemption(80)).value
            create = await build_tx(
                client,
                create_nonce_account(alice.pubkey(), nonce.pubkey(), alice.pubkey(), rent),
                alice,
                [nonce],
            )
            await client.send_transaction(create, opts=SEND_NOW)
            chain.warp_slots(1)  # a nonce advances at most once per slot
            data = (await client.get_account_info(nonce.pubkey(), Processed)).value
            assert data is not None and len(data.data) == 80
            durable = Hash.from_bytes(bytes(data.data)[40:72])

            advance = advance_nonce_account(
                AdvanceNonceAccountParams(
                    nonce_pubkey=nonce.pubkey(), authorized_pubkey=alice.pubkey()
                )
            )
            pay = transfer(
                TransferParams(
                    from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL // 4
                )
            )
            tx = VersionedTransaction(
                Message.new_with_blockhash([advance, pay], alice.pubkey(), durable), [alice]
            )
            chain.warp_slots(200)  # far beyond any blockhash's 150 slots
            sig = (await client.send_transaction(tx, opts=SEND_NOW)).value
            status = (await client.get_signature_statuses([sig])).value[0]
            assert status is not None and status.err is None
            after = (await client.get_account_info(nonce.pubkey(), Processed)).value
            assert after is not None and bytes(after.data)[40:72] != bytes(durable)
            # the nonce moved on: the same durable transaction cannot run twice
            again = VersionedTransaction(
                Message.new_with_blockhash([advance, pay], alice.pubkey(), durable), [alice]
            )
            chain.warp_slots(1)
            with pytest.raises(RPCException) as exc:
                await client.send_transaction(again, opts=SEND_NOW)
            assert exc.value.args[0].message == "Transaction simulation failed: Blockhash not found"

    asyncio.run(scenario())
