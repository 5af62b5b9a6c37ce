"""A bitcoind JSON-RPC client over httpx: basic auth or the cookie file,
batches, and bitcoind's error codes as a ChainError subtree.

It speaks only what bitcoind speaks, so it runs unchanged against a real
bitcoind (mainnet, signet, testnet, regtest) or the local regtest node."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson

from node.errors import BroadcastError, ChainError

# bitcoind's RPC error codes the node reacts to (src/rpc/protocol.h)
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_METHOD_NOT_FOUND = -32601


class BtcRpcError(ChainError):
    """bitcoind answered with an error object: ``rpc_code`` and ``message``."""

    code = "btc_rpc_error"

    def __init__(self, rpc_code: int, message: str, *, method: str = "") -> None:
        super().__init__(f"{method}: {message} ({rpc_code})", rpc_code=rpc_code, method=method)
        self.rpc_code = rpc_code
        self.rpc_message = message


class BtcBroadcastError(BroadcastError):
    """sendrawtransaction refused the transaction (policy or consensus)."""

    code = "btc_broadcast_refused"


def btc_to_sat(value: Any) -> int:
    """An amount as bitcoind writes it (a JSON number with 8 decimals) in sat."""
    return int((Decimal(str(value)) * 100_000_000).to_integral_value())


class BitcoinRpc:
    """``rpc("getblock", h, 2)``; ``batch([("getblockhash", [1]), ...])``."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie_file: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self._user = user
        self._password = password
        self._cookie_file = cookie_file
        self._client = httpx.Client(timeout=timeout)
        self._id = 0

    def _auth(self) -> tuple[str, str] | None:
        if self._user is not None and self._password is not None:
            return self._user, self._password
        if self._cookie_file is not None:
            # re-read on every call: bitcoind writes a new cookie at each start
            user, _, password = self._cookie_file.read_text(encoding="utf-8").strip().partition(":")
            return user, password
        return None

    def _post(self, payload: Any) -> Any:
        auth = self._auth()
        try:
            resp = self._client.post(
                self.url,
                content=orjson.dumps(payload),
                headers={"Content-Type": "application/json"},
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise ChainError(f"bitcoind at {self.url} unreachable: {exc}",
                             code="btc_unreachable") from exc
        if resp.status_code == 401:
            raise ChainError("bitcoind refused the RPC credentials", code="btc_auth")
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise ChainError(f"bitcoind answered HTTP {resp.status_code} without JSON",
                             code="btc_bad_reply") from None

    def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        reply = self._post({"jsonrpc": "1.0", "id": self._id, "method": method,
                            "params": list(params)})
        if not isinstance(reply, dict):
            raise ChainError(f"{method}: unexpected reply", code="btc_bad_reply")
        err = reply.get("error")
        if err:
            raise BtcRpcError(int(err.get("code", 0)), str(err.get("message", "")), method=method)
        return reply.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP round trip; results in call order. Any
        error raises (the first one)."""
        if not calls:
            return []
        base = self._id + 1
        self._id += len(calls)
        payload = [{"jsonrpc": "1.0", "id": base + i, "method": m, "params": p}
                   for i, (m, p) in enumerate(calls)]
        replies = self._post(payload)
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise ChainError("batch: unexpected reply", code="btc_bad_reply")
        by_id = {r.get("id"): r for r in replies}
        out = []
        for i, (method, _p) in enumerate(calls):
            r = by_id.get(base + i)
            if r is None:
                raise ChainError("batch: missing reply", code="btc_bad_reply")
            err = r.get("error")
            if err:
                raise BtcRpcError(int(err.get("code", 0)), str(err.get("message", "")),
                                  method=method)
            out.append(r.get("result"))
        return out

    def batch_lenient(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Like batch, but an error reply gives None for that call."""
        if not calls:
            return []
        base = self._id + 1
        self._id += len(calls)
        payload = [{"jsonrpc": "1.0", "id": base + i, "method": m, "params": p}
                   for i, (m, p) in enumerate(calls)]
        replies = self._post(payload)
        if not isinstance(replies, list):
            raise ChainError("batch: unexpected reply", code="btc_bad_reply")
        by_id = {r.get("id"): r for r in replies}
        return [
            None if (r := by_id.get(base + i)) is None or r.get("error") else r.get("result")
            for i in range(len(calls))
        ]

    def close(self) -> None:
        self._client.close()
