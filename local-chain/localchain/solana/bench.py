"""Measure the local Solana chain: ``python -m localchain.solana.bench [-n 3000]``.

Starts a chain (default settings: 400 ms slots, finality 32), then reports
sendTransaction throughput (SOL transfers and SPL transfer_checked, with
preflight and with skipPreflight; sequential over one HTTP connection, and
concurrent through solana-py's AsyncClient) and per-method RPC latency."""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction
from spl.token.constants import MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to,
    transfer_checked,
)
from spl.token.models import InitializeMint2Params, MintToParams, TransferCheckedParams

from localchain.solana.harness import LAMPORTS_PER_SOL, SolanaLocal


def _server_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    """Drives the server over one keep-alive connection (stdlib http.client:
    the lightest client, so the figures are mostly the server's)."""

    def __init__(self, chain: SolanaLocal) -> None:
        self.chain = chain
        self.http = http.client.HTTPConnection(chain.host, chain.port, timeout=60)
        self._id = 0

    def post(self, body: bytes) -> Any:
        self.http.request("POST", "/", body, {"Content-Type": "application/json"})
        return orjson.loads(self.http.getresponse().read())

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        reply = self.post(orjson.dumps(body))
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def cpu(self) -> float | None:
        assert self.chain.proc is not None
        return _server_cpu_seconds(self.chain.proc.pid)

    def blockhash(self) -> Hash:
        value = self.call("getLatestBlockhash", {"commitment": "processed"})["value"]
        return Hash.from_string(value["blockhash"])

    def send(self, ixs: list[Instruction], payer: Keypair, signers: list[Keypair]) -> str:
        tx = self.sign(ixs, payer, signers, self.blockhash())
        return str(
            self.call(
                "sendTransaction", tx, {"encoding": "base64", "preflightCommitment": "processed"}
            )
        )

    @staticmethod
    def sign(
        ixs: list[Instruction], payer: Keypair, signers: list[Keypair], blockhash: Hash
    ) -> str:
        msg = Message.new_with_blockhash(ixs, payer.pubkey(), blockhash)
        return base64.b64encode(bytes(VersionedTransaction(msg, [payer, *signers]))).decode()

    def throughput(self, label: str, txs: list[str], skip_preflight: bool) -> None:
        cfg = {
            "encoding": "base64",
            "skipPreflight": skip_preflight,
            "preflightCommitment": "processed",
        }
        bodies = [
            orjson.dumps(
                {"jsonrpc": "2.0", "id": i, "method": "sendTransaction", "params": [tx, cfg]}
            )
            for i, tx in enumerate(txs)
        ]
        cpu0 = self.cpu()
        start = time.perf_counter()
        for body in bodies:
            reply = self.post(body)
            if "error" in reply:
                raise RuntimeError(reply["error"])
        elapsed = time.perf_counter() - start
        cpu1 = self.cpu()
        server = ""
        if cpu0 is not None and cpu1 is not None:
            server = f", server CPU {(cpu1 - cpu0) / len(txs) * 1e6:.0f} us/tx"
        print(f"{label:<58} {len(txs) / elapsed:6.0f} tx/s ({len(txs)} in {elapsed:.2f}s{server})")

    def latency(self, label: str, fn: Callable[[], Any], n: int = 500) -> None:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        p50 = statistics.median(samples)
        p99 = samples[int(0.99 * (len(samples) - 1))]
        print(f"{label:<58} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")


def _transfers(payer: Keypair, n: int, blockhash: Hash, rent: int) -> list[str]:
    return [
        Bench.sign(
            [
                transfer(
                    TransferParams(
                        from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=rent + i
                    )
                )
            ],
            payer,
            [],
            blockhash,
        )
        for i in range(n)
    ]


def run(n: int) -> None:
    with SolanaLocal() as chain:
        b = Bench(chain)
        print(
            f"local Solana at {chain.url}: slot {chain.slot_ms} ms, "
            f"finality {chain.finality_slots} slots"
        )
        payer = Keypair()
        b.call("requestAirdrop", str(payer.pubkey()), 1_000_000 * LAMPORTS_PER_SOL)
        rent = int(b.call("getMinimumBalanceForRentExemption", 0))

        b.throughput(
            "SOL transfer, preflight (sequential, 1 connection)",
            _transfers(payer, n, b.blockhash(), rent),
            False,
        )
        b.throughput(
            "SOL transfer, skipPreflight (sequential, 1 connection)",
            _transfers(payer, n, b.blockhash(), rent),
            True,
        )

        # SPL: a mint, a source ATA holding plenty, n destination owners with ATAs
        mint = Keypair()
        mint_rent = int(b.call("getMinimumBalanceForRentExemption", MINT_LEN))
        b.send(
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=payer.pubkey(),
                        to_pubkey=mint.pubkey(),
                        lamports=mint_rent,
                        space=MINT_LEN,
                        owner=TOKEN_PROGRAM_ID,
                    )
                ),
                initialize_mint2(
                    InitializeMint2Params(
                        decimals=6,
                        program_id=TOKEN_PROGRAM_ID,
                        mint=mint.pubkey(),
                        mint_authority=payer.pubkey(),
                    )
                ),
                create_associated_token_account(payer.pubkey(), payer.pubkey(), mint.pubkey()),
            ],
            payer,
            [mint],
        )
        source = get_associated_token_address(payer.pubkey(), mint.pubkey())
        b.send(
            [
                mint_to(
                    MintToParams(
                        program_id=TOKEN_PROGRAM_ID,
                        mint=mint.pubkey(),
                        dest=source,
                        mint_authority=payer.pubkey(),
                        amount=10**15,
                    )
                )
            ],
            payer,
            [],
        )
        dests: list[Pubkey] = []
        for _ in range(0, min(n, 1000), 8):
            owners = [Keypair().pubkey() for _ in range(8)]
            b.send(
                [create_associated_token_account(payer.pubkey(), o, mint.pubkey()) for o in owners],
                payer,
                [],
            )
            dests += [get_associated_token_address(o, mint.pubkey()) for o in owners]
        blockhash = b.blockhash()
        spl = [
            Bench.sign(
                [
                    transfer_checked(
                        TransferCheckedParams(
                            program_id=TOKEN_PROGRAM_ID,
                            source=source,
                            mint=mint.pubkey(),
                            dest=dests[i % len(dests)],
                            owner=payer.pubkey(),
                            amount=1 + i,
                            decimals=6,
                        )
                    )
                ],
                payer,
                [],
                blockhash,
            )
            for i in range(n)
        ]
        b.throughput("SPL transfer_checked, preflight (sequential, 1 connection)", spl, False)

        # concurrent, through the node's client
        txs = _transfers(payer, n, b.blockhash(), rent)

        async def concurrent() -> float:
            async with AsyncClient(chain.url, timeout=60) as client:
                sem = asyncio.Semaphore(16)
                opts = TxOpts(skip_confirmation=True, preflight_commitment=Processed)

                async def one(tx: str) -> None:
                    async with sem:
                        await client.send_raw_transaction(base64.b64decode(tx), opts=opts)

                t0 = time.perf_counter()
                await asyncio.gather(*(one(tx) for tx in txs))
                return time.perf_counter() - t0

        elapsed = asyncio.run(concurrent())
        print(
            f"{'SOL transfer, preflight (AsyncClient, 16 in flight)':<58} "
            f"{n / elapsed:8.0f} tx/s  ({n} in {elapsed:.2f}s)"
        )

        sig = b.send(
            [
                transfer(
                    TransferParams(
                        from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=rent
                    )
                )
            ],
            payer,
            [],
        )
        chain.finalize()
        key = str(payer.pubkey())
        b.latency("getHealth", lambda: b.call("getHealth"))
        b.latency("getLatestBlockhash (finalized)", lambda: b.call("getLatestBlockhash"))
        b.latency("getBalance (finalized)", lambda: b.call("getBalance", key))
        b.latency(
            "getAccountInfo jsonParsed (token account)",
            lambda: b.call("getAccountInfo", str(source), {"encoding": "jsonParsed"}),
        )
        b.latency("getTokenAccountBalance", lambda: b.call("getTokenAccountBalance", str(source)))
        b.latency("getSignatureStatuses (1 sig)", lambda: b.call("getSignatureStatuses", [sig]))
        b.latency(
            "getTransaction (json)",
            lambda: b.call("getTransaction", sig, {"maxSupportedTransactionVersion": 0}),
        )
        b.latency(
            "getSignaturesForAddress (limit 10, busy address)",
            lambda: b.call("getSignaturesForAddress", key, {"limit": 10}),
        )
        b.latency("getSlot", lambda: b.call("getSlot"))
        print(f"transactions stored: {b.call('escrowd_info')['transactions']}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localchain.solana.bench")
    parser.add_argument("-n", type=int, default=3000, help="transactions per throughput run")
    run(parser.parse_args().n)


if __name__ == "__main__":
    main()
