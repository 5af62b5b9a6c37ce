"""bitcoind's JSON-RPC error codes (src/rpc/protocol.h) and the error type
both the server and the client harness use."""

from __future__ import annotations

from localchain.process import RPCError as _RPCError

RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_INVALID_PARAMS = -32602
RPC_INTERNAL_ERROR = -32603
RPC_PARSE_ERROR = -32700
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_DATABASE_ERROR = -20
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_UTXO_SET = -27
RPC_IN_WARMUP = -28
RPC_CLIENT_P2P_DISABLED = -9

RPC_TRANSACTION_ERROR = RPC_VERIFY_ERROR
RPC_TRANSACTION_REJECTED = RPC_VERIFY_REJECTED


# A JSON-RPC error as bitcoind reports it: ``code`` and ``message`` (the
# class every local chain raises).
RPCError = _RPCError
