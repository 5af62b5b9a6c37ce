"""A synchronous face on solana-py's ``AsyncClient`` (solana 0.41 has no sync
client). Each ``SolClient`` owns a private event loop running in a daemon
thread; calls from any thread (API handlers, the watcher) are scheduled on it
with ``run_coroutine_threadsafe`` and waited for, so one ``AsyncClient`` (one
HTTP connection pool) serves the whole node. RPC failures become
``node.errors.ChainError``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from node.errors import ChainError

T = TypeVar("T")
MULTIPLE_ACCOUNTS_MAX = 100


class BlockhashExpiredError(ChainError):
    """The transaction's blockhash is too old (or unknown): rebuild and re-sign."""

    code = "blockhash_expired"
    http_status = 409


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account as ``getMultipleAccounts`` returned it (None: no account)."""

    lamports: int
    owner: Pubkey
    data: bytes


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    signature: str
    slot: int
    failed: bool
    confirmation: str | None


class SolClient:
    """Sync wrapper: ``SolClient(url).call(lambda c: c.get_slot())``."""

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        self.url = url
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sol-rpc-loop", daemon=True
        )
        self._thread.start()
        self._client: AsyncClient = self._run(self._make_client())

    async def _make_client(self) -> AsyncClient:
        return AsyncClient(self.url, timeout=self.timeout)

    def _run(self, coro: Awaitable[T]) -> T:
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coro,  # type: ignore[arg-type]
            self._loop,
        )
        return fut.result(timeout=self.timeout + 5)

    def call(self, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``fn(async_client)`` on the private loop and return its result."""

        async def go() -> T:
            return await fn(self._client)

        try:
            return self._run(go())
        except (SolanaRpcException, RPCException, OSError, TimeoutError) as exc:
            raise ChainError(f"Solana RPC {self.url} failed: {exc}") from exc

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.close())
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # -- the calls the node makes --------------------------------------------

    def genesis_hash(self) -> Hash:
        return self.call(lambda c: c.get_genesis_hash()).value

    def slot(self, commitment: Commitment) -> int:
        return int(self.call(lambda c: c.get_slot(commitment)).value)

    def block_height(self, commitment: Commitment) -> int:
        return int(self.call(lambda c: c.get_block_height(commitment)).value)

    def latest_blockhash(self, commitment: Commitment) -> tuple[Hash, int]:
        v = self.call(lambda c: c.get_latest_blockhash(commitment)).value
        return v.blockhash, int(v.last_valid_block_height)

    def account(self, key: Pubkey, commitment: Commitment) -> AccountState | None:
        v = self.call(lambda c: c.get_account_info(key, commitment)).value
        return None if v is None else AccountState(int(v.lamports), v.owner, bytes(v.data))

    def accounts(
        self, keys: Sequence[Pubkey], commitment: Commitment
    ) -> tuple[int, list[AccountState | None]]:
        """(context slot, accounts) for ``keys``, ``MULTIPLE_ACCOUNTS_MAX`` per call;
        the slot is the lowest context slot of the batches."""
        out: list[AccountState | None] = []
        slot: int | None = None
        for i in range(0, len(keys), MULTIPLE_ACCOUNTS_MAX):
            part = list(keys[i : i + MULTIPLE_ACCOUNTS_MAX])
            resp = self.call(lambda c, p=part: c.get_multiple_accounts(p, commitment))  # type: ignore[misc]
            ctx = int(resp.context.slot)
            slot = ctx if slot is None else min(slot, ctx)
            for v in resp.value:
                out.append(
                    None if v is None else AccountState(int(v.lamports), v.owner, bytes(v.data))
                )
        return (slot if slot is not None else self.slot(commitment)), out

    def rent_exemption(self, size: int) -> int:
        return int(self.call(lambda c: c.get_minimum_balance_for_rent_exemption(size)).value)

    def signatures_for(
        self, key: Pubkey, commitment: Commitment, limit: int = 50
    ) -> list[SignatureInfo]:
        """Newest first, as the RPC returns them."""
        resp = self.call(
            lambda c: c.get_signatures_for_address(key, limit=limit, commitment=commitment)
        )
        return [
            SignatureInfo(
                signature=str(s.signature),
                slot=int(s.slot),
                failed=s.err is not None,
                confirmation=None
                if s.confirmation_status is None
                else str(s.confirmation_status).rsplit(".", 1)[-1].lower(),
            )
            for s in resp.value
        ]

    def transaction(self, signature: str, commitment: Commitment) -> Any:
        """``getTransaction`` (json encoding) or None."""
        sig = Signature.from_string(signature)
        resp = self.call(
            lambda c: c.get_transaction(
                sig, "json", commitment=commitment, max_supported_transaction_version=0
            )
        )
        return resp.value

    def send(self, raw: bytes, *, preflight_commitment: Commitment) -> str:
        """Broadcast; an expired/unknown blockhash raises ``BlockhashExpiredError``."""
        opts = TxOpts(skip_confirmation=True, preflight_commitment=preflight_commitment)
        try:
            return str(self.call(lambda c: c.send_raw_transaction(raw, opts=opts)).value)
        except ChainError as exc:
            text = str(exc.__cause__ or exc)
            if "BlockhashNotFound" in text or "Blockhash not found" in text:
                raise BlockhashExpiredError(
                    "the transaction's blockhash expired: rebuild it and sign again"
                ) from exc
            raise

    def statuses(self, signatures: Sequence[str]) -> list[Any]:
        sigs = [Signature.from_string(s) for s in signatures]
        return list(
            self.call(lambda c: c.get_signature_statuses(sigs, search_transaction_history=True))
            .value
        )
