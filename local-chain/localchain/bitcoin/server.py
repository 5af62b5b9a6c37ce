"""bitcoind's HTTP JSON-RPC front end (src/httprpc.cpp behaviour): POST only,
HTTP basic auth (rpcuser/rpcpassword or the ``.cookie`` file), JSON-RPC 1.0
replies with bitcoind's HTTP status codes, JSON-RPC 2.0 replies (HTTP 200),
and batch requests."""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from localchain.bitcoin.errors import (
    RPC_INTERNAL_ERROR,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_PARSE_ERROR,
    RPCError,
)
from localchain.bitcoin.rpc import RPC

log = logging.getLogger("localchain.bitcoin.http")

COOKIE_USER = "__cookie__"


class _Handler(BaseHTTPRequestHandler):
    server: RPCServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one reply, no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._send(405, b"JSONRPC server handles only POST requests")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self.server.authorized(self.headers.get("Authorization")):
            log.warning(
                "ThreadRPCServer incorrect password attempt from %s", self.client_address[0]
            )
            time.sleep(0.05)
            self._send(401, b"", {"WWW-Authenticate": 'Basic realm="jsonrpc"'})
            return
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            reply: dict[str, Any] | None = {
                "result": None,
                "error": {"code": RPC_PARSE_ERROR, "message": "Parse error"},
                "id": None,
            }
            self._send(500, orjson.dumps(reply) + b"\n")
            return
        if isinstance(request, list):
            replies = [
                r for r in (self.server.handle_one(item)[1] for item in request) if r is not None
            ]
            self._send(200, orjson.dumps(replies, default=_default) + b"\n")
            return
        if not isinstance(request, dict):
            reply = {
                "result": None,
                "error": {"code": RPC_PARSE_ERROR, "message": "Top-level object parse error"},
                "id": None,
            }
            self._send(500, orjson.dumps(reply) + b"\n")
            return
        status, reply = self.server.handle_one(request)
        if reply is None:  # JSON-RPC 2.0 notification
            self._send(204)
            return
        self._send(status, orjson.dumps(reply, default=_default) + b"\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return orjson.Fragment(str(obj))
    raise TypeError(type(obj).__name__)


class RPCServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        rpc: RPC,
        *,
        user: str | None,
        password: str | None,
        cookie_path: Path | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.rpc = rpc
        self.credentials: list[str] = []
        if user is not None and password is not None:
            self.credentials.append(f"{user}:{password}")
        self.cookie_path = cookie_path
        if cookie_path is not None:
            cookie = f"{COOKIE_USER}:{secrets.token_hex(32)}"
            cookie_path.write_text(cookie, encoding="utf-8")
            cookie_path.chmod(0o600)
            self.credentials.append(cookie)

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return any(hmac.compare_digest(given, c) for c in self.credentials)

    def handle_one(self, request: Any) -> tuple[int, dict[str, Any] | None]:
        """(HTTP status, reply object) for one JSON-RPC request."""
        if not isinstance(request, dict):
            return 400, _error_reply(None, RPC_INVALID_REQUEST, "Invalid Request object", v2=False)
        req_id = request.get("id")
        v2 = request.get("jsonrpc") == "2.0"
        notification = v2 and "id" not in request
        method = request.get("method")
        try:
            if not isinstance(method, str):
                raise RPCError(RPC_INVALID_REQUEST, "Method must be a string")
            params = request.get("params")
            if params is not None and not isinstance(params, list | dict):
                raise RPCError(RPC_INVALID_REQUEST, "Params must be an array or object")
            result = self.rpc.call(method, params)
        except RPCError as err:
            if notification:
                return 204, None
            status = 200 if v2 else _http_status(err.code)
            return status, _error_reply(req_id, err.code, err.message, v2=v2)
        except Exception as exc:
            log.exception("RPC %s failed", method)
            if notification:
                return 204, None
            return (200 if v2 else 500), _error_reply(req_id, RPC_INTERNAL_ERROR, str(exc), v2=v2)
        if notification:
            return 204, None
        if v2:
            return 200, {"jsonrpc": "2.0", "result": result, "id": req_id}
        return 200, {"result": result, "error": None, "id": req_id}

    def stop_soon(self) -> None:
        threading.Thread(target=self.shutdown, daemon=True).start()

    def server_close(self) -> None:
        super().server_close()
        if self.cookie_path is not None and self.cookie_path.exists():
            self.cookie_path.unlink()


def _http_status(code: int) -> int:
    if code == RPC_INVALID_REQUEST:
        return 400
    if code == RPC_METHOD_NOT_FOUND:
        return 404
    return 500


def _error_reply(req_id: Any, code: int, message: str, *, v2: bool) -> dict[str, Any]:
    err = {"code": code, "message": message}
    if v2:
        return {"jsonrpc": "2.0", "error": err, "id": req_id}
    return {"result": None, "error": err, "id": req_id}
