"""Serve ``SolanaRpc`` over HTTP/1.1 and advance slots with wall time.

The HTTP server is a small asyncio protocol (keep-alive, Content-Length
bodies, ``Expect: 100-continue``, CORS): a JSON-RPC call costs a few tens of
microseconds of HTTP handling where uvicorn's pure-Python h11 took ~0.7 ms.
Every RPC call and every slot tick runs on the event loop's thread, one at a
time, and takes the chain's lock besides: LiteSVM is never entered twice."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from websockets.asyncio.server import serve as ws_serve

from localchain.solana.chain import DEFAULT_FINALITY_SLOTS, Chain
from localchain.solana.pubsub import PubSub
from localchain.solana.rpc import SolanaRpc

log = logging.getLogger("localchain.solana")

DEFAULT_PORT = 8899
DEFAULT_SLOT_MS = 400
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 50 * 1024 * 1024

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
}
_CORS = (
    b"Access-Control-Allow-Origin: *\r\n"
    b"Access-Control-Allow-Methods: POST, GET, OPTIONS\r\n"
    b"Access-Control-Allow-Headers: content-type, solana-client\r\n"
)


class SolanaApp:
    """Routes: POST / is JSON-RPC, GET /health answers ``ok`` (as agave does)."""

    def __init__(self, chain: Chain, *, slot_ms: int = DEFAULT_SLOT_MS) -> None:
        self.chain = chain
        self.rpc = SolanaRpc(chain)
        self.pubsub = PubSub(chain)
        self.slot_ms = slot_ms

    def respond(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for one request."""
        if method == "POST":
            reply = self.rpc.handle_body(body)
            self.pubsub.notify()
            return 200, b"application/json", reply
        if method == "GET" and path.split("?", 1)[0] == "/health":
            return 200, b"text/plain", b"ok"
        if method == "OPTIONS":
            return 204, b"text/plain", b""
        if method == "GET":
            return 404, b"text/plain", b"Not Found"
        return 405, b"text/plain", b"Method Not Allowed"

    async def tick(self) -> None:
        """Open a slot every ``slot_ms``; catch up if the loop was busy."""
        period = self.slot_ms / 1000
        due = time.monotonic() + period
        while True:
            await asyncio.sleep(max(due - time.monotonic(), 0))
            now = time.monotonic()
            slots = 1 + int((now - due) // period)
            due += slots * period
            try:
                self.chain.advance(slots)
                self.pubsub.notify()
            except Exception:
                log.exception("slot advance failed")


class _HttpProtocol(asyncio.Protocol):
    def __init__(self, app: SolanaApp) -> None:
        self.app = app
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            if not self._one_request():
                return

    def _one_request(self) -> bool:
        """Serve one complete request from the buffer; False if incomplete."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                self._send(431, b"text/plain", b"", close=True)
            return False
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, path, version = lines[0].split(" ", 2)
        except ValueError:
            self._send(400, b"text/plain", b"Bad Request", close=True)
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._send(411, b"text/plain", b"Length Required", close=True)
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._send(400, b"text/plain", b"Bad Request", close=True)
            return False
        if length > MAX_BODY_BYTES:
            self._send(413, b"text/plain", b"Payload Too Large", close=True)
            return False
        start = end + 4
        if len(self.buf) < start + length:
            if headers.get("expect", "").lower() == "100-continue" and not self._continued:
                self._continued = True
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        body = bytes(self.buf[start : start + length])
        del self.buf[: start + length]
        self._continued = False
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        try:
            status, content_type, reply = self.app.respond(method, path, body)
        except Exception:
            log.exception("request failed")
            status, content_type, reply = 400, b"text/plain", b"Bad Request"
        self._send(status, content_type, reply, close=not keep_alive)
        return keep_alive

    def _send(self, status: int, content_type: bytes, body: bytes, *, close: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n".encode()
            + b"Content-Type: "
            + content_type
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n"
            + _CORS
            + (b"Connection: close\r\n\r\n" if close else b"\r\n")
        )
        transport.write(head + body)
        if close:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self.transport = None


async def serve_async(app: SolanaApp, host: str, port: int, ws_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpProtocol(app), host, port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(app.tick()) if app.slot_ms > 0 else None
    async with server, ws_serve(app.pubsub.handler, host, ws_port):
        await stop.wait()
    if ticker is not None:
        ticker.cancel()
    log.info("stopped at slot %d", app.chain.slot)


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    slot_ms: int = DEFAULT_SLOT_MS,
    finality_slots: int = DEFAULT_FINALITY_SLOTS,
    seed: bytes | None = None,
    ws_port: int | None = None,
) -> None:
    """Run until SIGINT/SIGTERM. ``slot_ms=0`` advances slots only on
    ``escrowd_warpSlots``; PubSub listens on ``ws_port`` (default port + 1)."""
    ws_port = ws_port or port + 1
    chain = Chain(finality_slots=finality_slots, seed=seed)
    app = SolanaApp(chain, slot_ms=slot_ms)
    log.info(
        "local Solana (LiteSVM) on http://%s:%d ws=%d slot=%dms finality=%d slots "
        "genesis=%s faucet=%s",
        host,
        port,
        ws_port,
        slot_ms,
        finality_slots,
        chain.genesis_hash,
        chain.faucet.pubkey(),
    )
    asyncio.run(serve_async(app, host, port, ws_port))
