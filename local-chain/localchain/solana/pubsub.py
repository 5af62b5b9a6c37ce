"""Solana's PubSub (websocket) API over ``Chain``: slotSubscribe,
signatureSubscribe, accountSubscribe and logsSubscribe (with their
unsubscribes), served on the RPC port + 1 as agave does.

Notifications are computed after every RPC request and every slot tick (same
event loop, so the chain is never read mid-change): a signature notification
fires once when its transaction reaches the subscription's commitment, an
account notification whenever the account as seen at that commitment changes,
a logs notification for each transaction (``all`` or ``{"mentions": [key]}``)
reaching that commitment, a slot notification for each new slot."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from localchain.solana.accounts import encode_account
from localchain.solana.chain import COMMITMENTS, SYSTEM_PROGRAM_ID, Chain
from localchain.solana.errors import RpcError, invalid_params, method_not_found

log = logging.getLogger("localchain.solana.pubsub")

MAX_SLOT_NOTIFICATIONS_PER_TICK = 64


@dataclass
class _Sub:
    id: int
    kind: str  # slot | signature | account | logs
    conn: _Conn
    commitment: str = "finalized"
    signature: Signature | None = None
    pubkey: Pubkey | None = None
    mentions: Pubkey | None = None
    encoding: str = "base64"
    last: Any = None


@dataclass
class _Conn:
    ws: ServerConnection
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    subs: set[int] = field(default_factory=set)


class PubSub:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.subs: dict[int, _Sub] = {}
        self._next_id = 0
        self._tx_cursor = {c: len(chain.txs) for c in COMMITMENTS}
        self._slot_cursor = chain.slot

    # ------------------------------------------------------------ connection

    async def handler(self, ws: ServerConnection) -> None:
        conn = _Conn(ws)
        writer = asyncio.create_task(self._pump(conn))
        try:
            async for message in ws:
                raw = message.encode() if isinstance(message, str) else message
                conn.queue.put_nowait(self._handle(conn, raw))
                self.notify()
        except ConnectionClosed:
            pass
        finally:
            for sub_id in conn.subs:
                self.subs.pop(sub_id, None)
            writer.cancel()

    @staticmethod
    async def _pump(conn: _Conn) -> None:
        try:
            while True:
                await conn.ws.send((await conn.queue.get()).decode())
        except ConnectionClosed:
            pass

    def _handle(self, conn: _Conn, raw: bytes) -> bytes:
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return orjson.dumps(
                {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
            )
        req_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcError(-32600, "Invalid request")
            params = request.get("params") or []
            result = self._call(conn, request["method"], params)
        except RpcError as exc:
            return orjson.dumps({"jsonrpc": "2.0", "error": exc.to_obj(), "id": req_id})
        return orjson.dumps({"jsonrpc": "2.0", "result": result, "id": req_id})

    def _call(self, conn: _Conn, method: str, params: list[Any]) -> Any:
        with self.chain.lock():
            if method.endswith("Unsubscribe"):
                sub_id = params[0] if params else None
                sub = self.subs.get(sub_id) if isinstance(sub_id, int) else None
                if sub is None or sub.conn is not conn or sub.kind != method[: -len("Unsubscribe")]:
                    raise invalid_params("Invalid subscription id.")
                del self.subs[sub.id]
                conn.subs.discard(sub.id)
                return True
            if not method.endswith("Subscribe"):
                raise method_not_found()
            kind = method[: -len("Subscribe")]
            cfg_index = {"slot": 0, "signature": 1, "account": 1, "logs": 1}.get(kind)
            if cfg_index is None:
                raise method_not_found()
            cfg = (
                params[cfg_index]
                if len(params) > cfg_index and isinstance(params[cfg_index], dict)
                else {}
            )
            commitment = cfg.get("commitment") or "finalized"
            if commitment not in COMMITMENTS:
                raise invalid_params(f"Invalid params: unknown variant `{commitment}`.")
            self._next_id += 1
            sub = _Sub(self._next_id, kind, conn, commitment=commitment)
            try:
                if kind == "signature":
                    sub.signature = Signature.from_string(params[0])
                elif kind == "account":
                    sub.pubkey = Pubkey.from_string(params[0])
                    sub.encoding = cfg.get("encoding") or "binary"
                    sub.last = self._render_account(sub)
                elif kind == "logs":
                    flt = params[0] if params else "all"
                    if isinstance(flt, dict) and flt.get("mentions"):
                        sub.mentions = Pubkey.from_string(flt["mentions"][0])
                    elif flt not in ("all", "allWithVotes"):
                        raise invalid_params("Invalid params: unknown logs filter.")
            except (ValueError, TypeError, IndexError):
                raise invalid_params("Invalid param: Invalid") from None
            self.subs[sub.id] = sub
            conn.subs.add(sub.id)
            if kind == "signature":
                self._signature_now(sub)
            return sub.id

    # --------------------------------------------------------- notifications

    def _send(self, sub: _Sub, method: str, result: Any) -> None:
        sub.conn.queue.put_nowait(
            orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": method,
                    "params": {"result": result, "subscription": sub.id},
                }
            )
        )

    def _ctx(self, slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"slot": slot}, "value": value}

    def _render_account(self, sub: _Sub) -> Any:
        assert sub.pubkey is not None
        acct = self.chain.get_account(sub.pubkey, sub.commitment)
        if acct is None:  # a missing (closed) account notifies as an empty one
            acct = Account(0, b"", SYSTEM_PROGRAM_ID, False, 0)
        return encode_account(acct, sub.encoding, None, self.chain.mint_decimals)

    def _signature_now(self, sub: _Sub) -> None:
        """A subscription to an already-landed transaction fires at once."""
        assert sub.signature is not None
        rec = self.chain.by_sig.get(sub.signature)
        if rec is not None and rec.slot <= self.chain.slot_for(sub.commitment):
            self._send(sub, "signatureNotification", self._ctx(rec.slot, {"err": rec.err}))
            del self.subs[sub.id]
            sub.conn.subs.discard(sub.id)

    def notify(self) -> None:
        """Send what changed since the last call."""
        chain = self.chain
        with chain.lock():
            if not self.subs:
                self._tx_cursor = dict.fromkeys(COMMITMENTS, len(chain.txs))
                self._slot_cursor = chain.slot
                return
            subs = list(self.subs.values())
            if chain.slot != self._slot_cursor:
                first = max(self._slot_cursor + 1, chain.slot - MAX_SLOT_NOTIFICATIONS_PER_TICK + 1)
                root = chain.slot_for("finalized")
                for slot in range(first, chain.slot + 1):
                    for sub in subs:
                        if sub.kind == "slot":
                            self._send(
                                sub,
                                "slotNotification",
                                {"parent": max(slot - 1, 0), "root": root, "slot": slot},
                            )
                self._slot_cursor = chain.slot
            for commitment in COMMITMENTS:
                top = chain.slot_for(commitment)
                cursor = self._tx_cursor[commitment]
                while cursor < len(chain.txs) and chain.txs[cursor].slot <= top:
                    rec = chain.txs[cursor]
                    cursor += 1
                    for sub in subs:
                        if sub.commitment != commitment or sub.id not in self.subs:
                            continue
                        if sub.kind == "signature" and sub.signature == rec.signature:
                            self._send(
                                sub, "signatureNotification", self._ctx(rec.slot, {"err": rec.err})
                            )
                            del self.subs[sub.id]
                            sub.conn.subs.discard(sub.id)
                        elif sub.kind == "logs" and (
                            sub.mentions is None or sub.mentions in rec.account_keys
                        ):
                            value = {
                                "signature": str(rec.signature),
                                "err": rec.err,
                                "logs": rec.meta["logMessages"],
                            }
                            self._send(sub, "logsNotification", self._ctx(rec.slot, value))
                self._tx_cursor[commitment] = cursor
            for sub in subs:
                if sub.kind == "account" and sub.id in self.subs:
                    rendered = self._render_account(sub)
                    if rendered != sub.last:
                        sub.last = rendered
                        self._send(
                            sub,
                            "accountNotification",
                            self._ctx(chain.slot_for(sub.commitment), rendered),
                        )
