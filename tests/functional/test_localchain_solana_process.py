"""Local Solana chain, the process: ``python -m localchain.solana`` run by
``SolanaLocal``.

Proves: slots advance with wall time at the configured pace and each gets a new
blockhash; the Clock sysvar and block times follow wall time (LiteSVM would
start at 0); hundreds of transactions sent concurrently through one AsyncClient
all land and add up exactly (every call into LiteSVM is serialized); v0
transactions are served only to clients that say they support them (-32015
otherwise); the harness starts the server on a free port with a log file in its
data dir and stops it; bad command-line settings are refused."""

from __future__ import annotations

import asyncio
import base64
import struct
import subprocess
import sys
import time

import httpx
import pytest
from localchain.solana import RPCError, SolanaLocal
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tests.functional.solana_fixtures import *  # noqa: F403 - the fixtures
from tests.functional.solana_fixtures import (
    LAMPORTS_PER_SOL,
    SEND_NOW,
    airdrop,
    build_tx,
    wait_for_status,
)

CLOCK_SYSVAR = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")


def test_slots_and_clock_follow_wall_time(solana_chain: SolanaLocal) -> None:
    assert solana_chain.slot_ms == 100
    first = solana_chain.slot()
    first_hash = solana_chain.rpc("getLatestBlockhash", {"commitment": "processed"})["value"]
    time.sleep(1.0)
    second = solana_chain.slot()
    assert 6 <= second - first <= 15, (first, second)  # ~10; loose: shared CI cores
    latest = solana_chain.rpc("getLatestBlockhash", {"commitment": "processed"})["value"]
    assert latest["blockhash"] != first_hash["blockhash"]
    assert latest["lastValidBlockHeight"] > first_hash["lastValidBlockHeight"]

    clock = solana_chain.rpc(
        "getAccountInfo", str(CLOCK_SYSVAR), {"encoding": "base64", "commitment": "processed"}
    )["value"]
    data = base64.b64decode(clock["data"][0])
    slot, _epoch_start, epoch, _leader_epoch, unix_timestamp = struct.unpack("<QqQQq", data[:40])
    assert abs(slot - solana_chain.slot()) <= 2 and epoch == 0
    assert abs(unix_timestamp - time.time()) <= 2
    assert abs(solana_chain.rpc("getBlockTime", second) - time.time()) <= 2


def test_concurrent_sends_all_land_and_add_up(solana_chain: SolanaLocal) -> None:
    count = 200

    async def scenario() -> None:
        async with AsyncClient(solana_chain.url) as client:
            payer = Keypair()
            await airdrop(client, payer.pubkey(), 10 * LAMPORTS_PER_SOL)
            rent = (await client.get_minimum_balance_for_rent_exemption(0)).value
            txs = [
                await build_tx(
                    client,
                    [
                        transfer(
                            TransferParams(
                                from_pubkey=payer.pubkey(),
                                to_pubkey=Keypair().pubkey(),
                                lamports=rent + i,
                            )
                        )
                    ],
                    payer,
                )
                for i in range(count)
            ]
            sigs = await asyncio.gather(*(client.send_transaction(tx, opts=SEND_NOW) for tx in txs))
            assert [s.value for s in sigs] == [tx.signatures[0] for tx in txs]
            await wait_for_status(client, sigs[-1].value, "confirmed")
            statuses = (await client.get_signature_statuses([s.value for s in sigs])).value
            assert all(st is not None and st.err is None for st in statuses)
            spent = sum(rent + i for i in range(count)) + count * 5000
            balance = (await client.get_balance(payer.pubkey(), Confirmed)).value
            assert balance == 10 * LAMPORTS_PER_SOL - spent
            history = (
                await client.get_signatures_for_address(
                    payer.pubkey(), limit=1000, commitment=Confirmed
                )
            ).value
            assert len(history) == count + 1  # and the airdrop

    asyncio.run(scenario())


def test_v0_transactions_need_max_supported_version(solana_chain: SolanaLocal) -> None:
    async def scenario() -> str:
        async with AsyncClient(solana_chain.url) as client:
            alice, bob = Keypair(), Keypair()
            await airdrop(client, alice.pubkey(), LAMPORTS_PER_SOL)
            blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
            ix = transfer(
                TransferParams(
                    from_pubkey=alice.pubkey(),
                    to_pubkey=bob.pubkey(),
                    lamports=LAMPORTS_PER_SOL // 2,
                )
            )
            tx = VersionedTransaction(
                MessageV0.try_compile(alice.pubkey(), [ix], [], blockhash), [alice]
            )
            sig = (await client.send_transaction(tx, opts=SEND_NOW)).value
            await wait_for_status(client, sig, "confirmed")
            got = (
                await client.get_transaction(
                    sig, commitment=Confirmed, max_supported_transaction_version=0
                )
            ).value
            assert got is not None and got.transaction.version == 0
            return str(sig)

    sig = asyncio.run(scenario())
    with pytest.raises(RPCError) as exc:
        solana_chain.rpc("getTransaction", sig, {"commitment": "confirmed"})
    assert exc.value.code == -32015
    assert exc.value.message == (
        "Transaction version (0) is not supported by the requesting client. Please try the "
        "request again with the following configuration parameter: "
        '"maxSupportedTransactionVersion": 0'
    )
    got = solana_chain.rpc(
        "getTransaction", sig, {"commitment": "confirmed", "maxSupportedTransactionVersion": 0}
    )
    assert got["version"] == 0
    assert got["transaction"]["message"]["addressTableLookups"] == []


def test_harness_starts_and_stops_the_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("solana-lifecycle")
    with SolanaLocal(data_dir=data_dir, slot_ms=0, finality_slots=3) as chain:
        assert chain.url == f"http://127.0.0.1:{chain.port}"
        assert chain.rpc("getHealth") == "ok"
        assert chain.rpc("escrowd_info")["finalitySlots"] == 3
        assert chain.slot() == 1  # genesis is slot 0; slot_ms=0: nothing moves by itself
        time.sleep(0.3)
        assert chain.slot() == 1
        assert chain.warp_slots(5) == 6
        assert chain.slot("finalized") == 3
        proc = chain.proc
        assert proc is not None
    assert proc.poll() is not None
    log = (data_dir / "solana.log").read_text(encoding="utf-8")
    assert f"on http://127.0.0.1:{chain.port} ws={chain.ws_port} slot=0ms finality=3" in log
    with pytest.raises(httpx.ConnectError):
        httpx.post(chain.url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"})


def test_bad_settings_are_refused() -> None:
    for args in (["--finality-slots", "0"], ["--slot-ms", "-1"]):
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "localchain.solana", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, done
        assert "must be" in done.stderr
