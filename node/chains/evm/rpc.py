"""A small, fast Ethereum JSON-RPC client: httpx (keep-alive, transport
retries on connection failures), orjson, and JSON-RPC batches.

web3.py's provider stack costs more than the node on the other end for the
calls the watcher makes by the thousand; this client sends the bytes and
parses the reply, nothing else. Results are returned as the node sends them
(hex strings), callers convert.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from node.errors import ChainError

# Read-only methods are retried on a transport failure (a restarted node, a
# dropped keep-alive connection); others are sent once per call.
IDEMPOTENT_PREFIXES = ("eth_get", "eth_blockNumber", "eth_chainId", "eth_call", "eth_estimateGas",
                       "eth_feeHistory", "eth_gasPrice", "eth_maxPriorityFeePerGas", "net_")


class RpcError(ChainError):
    """The node answered with a JSON-RPC error."""

    code = "rpc_error"

    def __init__(self, rpc_code: int, message: str, data: Any = None, method: str = "") -> None:
        super().__init__(f"{method}: {rpc_code}: {message}", rpc_code=rpc_code, data=data)
        self.rpc_code = rpc_code
        self.rpc_message = message
        self.data = data
        self.method = method


class RpcTransportError(ChainError):
    """The node could not be reached or answered something that is not JSON-RPC."""

    code = "rpc_unreachable"


class JsonRpcClient:
    """Synchronous JSON-RPC over HTTP. Thread-safe (httpx.Client is)."""

    def __init__(
        self, url: str, *, timeout: float = 30.0, retries: int = 3, backoff_s: float = 0.2
    ) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._retries = retries
        self._backoff_s = backoff_s
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(retries=retries),
            timeout=timeout,
            headers={"content-type": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> JsonRpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: Any, idempotent: bool) -> Any:
        body = orjson.dumps(payload)
        attempts = self._retries + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                reply = self._client.post(self.url, content=body)
                if reply.status_code >= 500 and attempt + 1 < attempts:
                    raise httpx.HTTPStatusError("server error", request=reply.request,
                                                response=reply)
                return orjson.loads(reply.content)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if attempt + 1 >= attempts:
                    raise RpcTransportError(f"{self.url}: {exc!r}") from exc
                time.sleep(self._backoff_s * (2**attempt))
            except orjson.JSONDecodeError as exc:
                raise RpcTransportError(f"{self.url}: reply is not JSON: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, *params: Any) -> Any:
        """One call; raises RpcError on a JSON-RPC error."""
        reply = self._post(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)},
            method.startswith(IDEMPOTENT_PREFIXES),
        )
        if not isinstance(reply, dict):
            raise RpcTransportError(f"{method}: unexpected reply {reply!r:.200}")
        if "error" in reply:
            err = reply["error"]
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"), method)
        return reply.get("result")

    def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, raise_errors: bool = True
    ) -> list[Any]:
        """Several calls in one HTTP request; results in the order of ``calls``.

        With ``raise_errors=False`` a failed call's slot holds its RpcError
        instead of raising."""
        if not calls:
            return []
        first = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        idempotent = all(m.startswith(IDEMPOTENT_PREFIXES) for m, _ in calls)
        replies = self._post(payload, idempotent)
        if not isinstance(replies, list):
            # Some servers answer a batch they refuse with one error object.
            if isinstance(replies, dict) and "error" in replies:
                err = replies["error"]
                raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"),
                               "batch")
            raise RpcTransportError(f"batch: unexpected reply {replies!r:.200}")
        by_id = {r.get("id"): r for r in replies}
        out: list[Any] = []
        for i, (method, _) in enumerate(calls):
            r = by_id.get(first + i)
            if r is None:
                raise RpcTransportError(f"batch: no reply for {method}")
            if "error" in r:
                err = r["error"]
                exc = RpcError(err.get("code", 0), err.get("message", ""), err.get("data"), method)
                if raise_errors:
                    raise exc
                out.append(exc)
            else:
                out.append(r.get("result"))
        return out
