"""Local Solana fixtures (registered as a pytest plugin by tests/conftest.py).

- ``solana_chain``: one local Solana chain per test session (``SolanaLocal``:
  LiteSVM behind Solana's JSON-RPC, in its own process), with slots every
  100 ms and finality after 4 slots, so waits are short.
- ``solana_manual_chain``: one whose slots advance only on
  ``escrowd_warpSlots`` (finality after 2 slots), for tests that count slots.

``chain.url`` is the JSON-RPC endpoint (``AsyncClient(chain.url)``),
``chain.ws_url`` the PubSub one (``SolanaWsClient(chain.ws_url)``).

Both fail the test session's teardown if the chain logged an error, and keep
their data directory (with ``solana.log``) when a test failed.

The helpers below are coroutines over solana-py's ``AsyncClient``, the client
the node uses; run them with ``asyncio.run`` from sync tests (pytest-asyncio is
not installed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Processed
from solana.rpc.models import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from spl.token.constants import MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import initialize_mint
from spl.token.models import InitializeMintParams

__all__ = [
    "LAMPORTS_PER_SOL",
    "SEND_NOW",
    "airdrop",
    "build_tx",
    "create_mint",
    "send",
    "solana_chain",
    "solana_manual_chain",
    "wait_for_status",
]

# Send without waiting for confirmation, preflight against the working bank.
SEND_NOW = TxOpts(skip_confirmation=True, preflight_commitment=Processed)


# Each test module imports these fixtures, which makes one fixture per module;
# the chains themselves are started once per session and shared.
_RUNNING: dict[str, SolanaLocal] = {}


def _start(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *,
    slot_ms: int,
    finality_slots: int,
) -> Iterator[SolanaLocal]:
    running = _RUNNING.get(name)
    if running is not None:
        yield running
        return
    data_dir = tmp_path_factory.mktemp(name)
    chain = SolanaLocal(data_dir=data_dir, slot_ms=slot_ms, finality_slots=finality_slots).start()
    _RUNNING[name] = chain
    try:
        yield chain
    finally:
        del _RUNNING[name]
        chain.stop()
        log = chain.log_path.read_text(encoding="utf-8")
        if request.session.testsfailed:
            print(f"\n{name} data dir kept: {data_dir} (log: {chain.log_path})")
        assert "Traceback" not in log and " ERROR " not in log, f"{name} logged errors:\n{log}"


@pytest.fixture(scope="session")
def solana_chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SolanaLocal]:
    yield from _start(request, tmp_path_factory, "solana", slot_ms=100, finality_slots=4)


@pytest.fixture(scope="session")
def solana_manual_chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SolanaLocal]:
    yield from _start(request, tmp_path_factory, "solana-manual", slot_ms=0, finality_slots=2)


async def wait_for_status(
    client: AsyncClient, signature: Signature, commitment: str, timeout: float = 10.0
) -> None:
    """Poll getSignatureStatuses until ``signature`` reaches ``commitment``."""
    rank = {"processed": 0, "confirmed": 1, "finalized": 2}
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = (await client.get_signature_statuses([signature])).value[0]
        if status is not None and status.confirmation_status is not None:
            reached = str(status.confirmation_status).rsplit(".", 1)[-1].lower()
            if rank[reached] >= rank[commitment]:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{signature} not {commitment} after {timeout}s: {status}")
        await asyncio.sleep(0.05)


async def airdrop(client: AsyncClient, to: Pubkey, lamports: int) -> Signature:
    """requestAirdrop; the airdrop is processed when this returns."""
    return (await client.request_airdrop(to, lamports)).value


async def build_tx(
    client: AsyncClient,
    instructions: Sequence[Instruction],
    payer: Keypair,
    signers: Sequence[Keypair] = (),
    commitment: Commitment = Processed,
) -> VersionedTransaction:
    """A legacy transaction on the latest blockhash, signed by payer + signers."""
    blockhash = (await client.get_latest_blockhash(commitment)).value.blockhash
    msg = Message.new_with_blockhash(list(instructions), payer.pubkey(), blockhash)
    return VersionedTransaction(msg, [payer, *signers])


async def send(
    client: AsyncClient,
    instructions: Sequence[Instruction],
    payer: Keypair,
    signers: Sequence[Keypair] = (),
    opts: TxOpts = SEND_NOW,
) -> Signature:
    tx = await build_tx(client, instructions, payer, signers)
    return (await client.send_transaction(tx, opts=opts)).value


async def create_mint(
    client: AsyncClient, payer: Keypair, decimals: int, authority: Pubkey | None = None
) -> Pubkey:
    """A new SPL Token mint (authority: payer unless given)."""
    mint = Keypair()
    rent = (await client.get_minimum_balance_for_rent_exemption(MINT_LEN)).value
    ixs = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=rent,
                space=MINT_LEN,
                owner=TOKEN_PROGRAM_ID,
            )
        ),
        initialize_mint(
            InitializeMintParams(
                decimals=decimals,
                program_id=TOKEN_PROGRAM_ID,
                mint=mint.pubkey(),
                mint_authority=authority or payer.pubkey(),
            )
        ),
    ]
    await send(client, ixs, payer, [mint])
    return mint.pubkey()
