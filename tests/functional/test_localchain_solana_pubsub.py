"""Local Solana chain, PubSub (websocket on its own port), through solana-py's
``SolanaWsClient`` -- on the chain whose slots move only when told.

Proves: slotSubscribe reports each new slot; signatureSubscribe fires once, when
the transaction reaches the subscription's commitment (at once if it already
has) and carries its error; logsSubscribe with ``mentions`` reports the
transactions touching an address, with their logs; accountSubscribe reports the
account as seen at its commitment only when that changes (a confirmed-only
change is not announced to a finalized subscriber); unsubscribing works and an
unknown subscription id is refused."""

from __future__ import annotations

import asyncio
from typing import Any

from localchain.solana import SolanaLocal
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.websocket_api import SolanaWsClient
from solders.keypair import Keypair
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    SignatureNotification,
    SlotNotification,
)
from solders.system_program import TransferParams, transfer

from tests.functional.solana_fixtures import *  # noqa: F403 - the fixtures
from tests.functional.solana_fixtures import LAMPORTS_PER_SOL, SEND_NOW, airdrop, build_tx

SOL = LAMPORTS_PER_SOL


async def _drain(ws: SolanaWsClient, quiet: float = 0.3) -> list[Any]:
    """Every notification until none has come for ``quiet`` seconds."""
    out: list[Any] = []
    while True:
        try:
            out.append(await asyncio.wait_for(ws.recv(), quiet))
        except TimeoutError:
            return out


def test_subscriptions_follow_commitment(solana_manual_chain: SolanaLocal) -> None:
    chain = solana_manual_chain

    async def scenario() -> None:
        async with AsyncClient(chain.url) as client, SolanaWsClient(chain.ws_url) as ws:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), SOL)
            chain.finalize()
            slot_sub = await ws.slot_subscribe()
            account_sub = await ws.account_subscribe(
                pubkey=bob.pubkey(), commitment=Finalized, encoding="base64"
            )
            logs_sub = await ws.logs_subscribe(
                filter_=RpcTransactionLogsFilterMentions(bob.pubkey()), commitment=Confirmed
            )
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
            processed = await ws.signature_subscribe(signature=sig, commitment=Processed)
            finalized = await ws.signature_subscribe(signature=sig, commitment=Finalized)
            first = await _drain(ws)  # processed: only the processed signature subscription
            assert [type(n) for n in first] == [SignatureNotification]
            assert (
                first[0].subscription == processed.subscription_id
                and first[0].result.value.err is None
            )

            chain.warp_slots(1)  # confirmed: logs; a slot; bob unchanged at finalized
            second = await _drain(ws)
            slots = [n for n in second if isinstance(n, SlotNotification)]
            logs = [n for n in second if isinstance(n, LogsNotification)]
            assert len(slots) == 1 and slots[0].subscription == slot_sub.subscription_id
            assert len(logs) == 1 and logs[0].subscription == logs_sub.subscription_id
            assert logs[0].result.value.signature == sig
            assert "Program 11111111111111111111111111111111 success" in logs[0].result.value.logs
            assert not [
                n for n in second if isinstance(n, AccountNotification | SignatureNotification)
            ]

            chain.warp_slots(1)  # finalized: the signature and bob's account
            third = await _drain(ws)
            sigs = [n for n in third if isinstance(n, SignatureNotification)]
            accounts = [n for n in third if isinstance(n, AccountNotification)]
            assert [n.subscription for n in sigs] == [finalized.subscription_id]
            assert len(accounts) == 1 and accounts[0].subscription == account_sub.subscription_id
            assert accounts[0].result.value.lamports == SOL // 2

            # a subscription to a finalized transaction fires at once
            late = await ws.signature_subscribe(signature=sig, commitment=Finalized)
            (note,) = await _drain(ws)
            assert (
                isinstance(note, SignatureNotification)
                and note.subscription == late.subscription_id
            )

            await ws.unsubscribe(slot_sub)
            chain.warp_slots(3)
            assert not [n for n in await _drain(ws) if isinstance(n, SlotNotification)]

    asyncio.run(scenario())


def test_unknown_subscription_is_refused(solana_manual_chain: SolanaLocal) -> None:
    import json

    from websockets.asyncio.client import connect

    async def scenario() -> None:
        async with connect(solana_manual_chain.ws_url) as ws:
            await ws.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "slotUnsubscribe", "params": [999]}
                )
            )
            reply = json.loads(await ws.recv())
            assert reply == {
                "jsonrpc": "2.0",
                "error": {"code": -32602, "message": "Invalid subscription id."},
                "id": 1,
            }
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 2, "method": "voteSubscribe", "params": []})
            )
            assert json.loads(await ws.recv())["error"]["code"] == -32601

    asyncio.run(scenario())
