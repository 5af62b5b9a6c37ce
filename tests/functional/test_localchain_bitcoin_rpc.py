"""The local regtest node's JSON-RPC surface behaves as bitcoind's.

Proves: HTTP basic auth (wrong or missing credentials get 401 with a
WWW-Authenticate header; the .cookie file works and is removed on stop);
JSON-RPC 1.0 errors with bitcoind's HTTP status (404 method not found, 500
parse error and other errors), JSON-RPC 2.0 replies with HTTP 200, batch
requests, named parameters, GET refused with 405; bitcoind's error codes and
messages for bad hashes, heights, types and unknown blocks/transactions;
estimatesmartfee with and without data; decoderawtransaction,
scantxoutset, getnetworkinfo, uptime and stop; and that concurrent clients
(threads reading while another mines) all get consistent answers.
"""

from __future__ import annotations

import base64
import json
import threading
from decimal import Decimal

import httpx
import pytest
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin import consensus as C
from localchain.bitcoin.devwallet import DevWallet

from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import assert_raises_rpc_error, start_bitcoind


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth(bitcoind: BitcoinRegtest) -> None:
    call = {"method": "getblockcount", "params": [], "id": 1}
    bad = bitcoind.post(call, auth=_basic("escrowd", "wrong"))
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == 'Basic realm="jsonrpc"'
    assert bad.content == b""
    none = httpx.post(bitcoind.url, json=call)
    assert none.status_code == 401
    ok = bitcoind.post(call)
    assert ok.status_code == 200 and ok.json() == {"result": 0, "error": None, "id": 1}


def test_cookie_auth(tmp_path_factory: pytest.TempPathFactory) -> None:
    node = start_bitcoind(tmp_path_factory, rpc_user=None, rpc_password=None)
    try:
        user, password = node.cookie_path.read_text(encoding="utf-8").split(":")
        assert user == "__cookie__" and len(password) == 64
        assert node.rpc("getblockcount") == 0
        assert (
            node.post(
                {"method": "getblockcount", "id": 1}, auth=_basic("__cookie__", "0" * 64)
            ).status_code
            == 401
        )
    finally:
        node.stop()
    assert not node.cookie_path.exists()


def test_protocol_errors_and_batches(bitcoind: BitcoinRegtest) -> None:
    missing = bitcoind.post({"method": "nosuchmethod", "params": [], "id": 7})
    assert missing.status_code == 404
    assert missing.json() == {
        "result": None,
        "error": {"code": -32601, "message": "Method not found"},
        "id": 7,
    }
    parse = bitcoind.post(b"{not json")
    assert parse.status_code == 500 and parse.json()["error"]["code"] == -32700
    rpc_err = bitcoind.post({"method": "getblockhash", "params": [99], "id": 2})
    assert rpc_err.status_code == 500
    assert rpc_err.json()["error"] == {"code": -8, "message": "Block height out of range"}
    assert (
        httpx.get(bitcoind.url, headers={"Authorization": bitcoind.auth_header()}).status_code
        == 405
    )

    # JSON-RPC 2.0: HTTP 200 for errors too
    v2 = bitcoind.post({"jsonrpc": "2.0", "method": "nosuchmethod", "id": "a"})
    assert v2.status_code == 200
    assert v2.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": "a",
    }

    batch = bitcoind.post(
        [
            {"method": "getblockcount", "params": [], "id": 1},
            {"method": "getbestblockhash", "params": [], "id": 2},
            {"method": "getblockhash", "params": [5], "id": 3},
            {"method": "nosuchmethod", "id": 4},
        ]
    )
    assert batch.status_code == 200
    replies = {r["id"]: r for r in batch.json()}
    assert replies[1]["result"] == 0
    assert replies[2]["result"] == C.REGTEST_GENESIS_HASH
    assert replies[3]["error"]["code"] == -8
    assert replies[4]["error"]["code"] == -32601

    # named parameters
    named = bitcoind.post({"method": "getblockhash", "params": {"height": 0}, "id": 5})
    assert named.json()["result"] == C.REGTEST_GENESIS_HASH
    unknown = bitcoind.post({"method": "getblockhash", "params": {"depth": 0}, "id": 6})
    assert unknown.json()["error"]["code"] == -8


def test_error_codes(bitcoind: BitcoinRegtest) -> None:
    r = bitcoind.rpc
    assert_raises_rpc_error(-8, "Block height out of range", r, "getblockhash", -1)
    assert_raises_rpc_error(-3, "not of expected type number", r, "getblockhash", "1")
    assert_raises_rpc_error(-5, "Block not found", r, "getblock", "00" * 32)
    assert_raises_rpc_error(-5, "Block not found", r, "getblockheader", "00" * 32)
    assert_raises_rpc_error(-8, "must be of length 64", r, "getblock", "abc")
    assert_raises_rpc_error(-8, "must be hexadecimal string", r, "getblock", "zz" * 32)
    assert_raises_rpc_error(
        -5, "No such mempool or blockchain transaction", r, "getrawtransaction", "11" * 32
    )
    assert_raises_rpc_error(-5, "Transaction not in mempool", r, "getmempoolentry", "11" * 32)
    assert_raises_rpc_error(-5, "Invalid address", r, "generatetoaddress", 1, "bc1qnotregtest")
    assert_raises_rpc_error(
        -5,
        "Invalid address",
        r,
        "generatetoaddress",
        1,
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    )  # mainnet
    assert_raises_rpc_error(-22, "TX decode failed", r, "decoderawtransaction", "0100")
    assert_raises_rpc_error(-8, "Invalid conf_target", r, "estimatesmartfee", 0)
    assert_raises_rpc_error(-1, None, r, "getblockhash")
    assert_raises_rpc_error(-32601, "Method not found", r, "getwalletinfo")
    assert r("gettxout", "11" * 32, 0) is None


def test_info_methods_and_fees(bitcoind: BitcoinRegtest, alice: DevWallet, bob: DevWallet) -> None:
    net = bitcoind.rpc("getnetworkinfo")
    assert net["version"] >= 280000 and net["relayfee"] == Decimal("0.00001000")
    assert isinstance(bitcoind.rpc("uptime"), int)
    assert bitcoind.rpc("estimatesmartfee", 6) == {
        "errors": ["Insufficient data or no feerate found"],
        "blocks": 0,
    }
    for feerate in (5, 10, 20):
        alice.send(bob.address, 100_000, feerate=feerate)
        bitcoind.mine(1)
    est = bitcoind.rpc("estimatesmartfee", 2)
    assert est["blocks"] == 2
    assert Decimal("0.00005") <= est["feerate"] <= Decimal("0.00021")
    assert bitcoind.rpc("estimatesmartfee", 6, "conservative")["feerate"] >= Decimal("0.00001")

    txid = alice.send(bob.address, 50_000)
    raw = bitcoind.rpc("getrawtransaction", txid)
    decoded = bitcoind.rpc("decoderawtransaction", raw)
    assert decoded["txid"] == txid and "hex" not in decoded
    assert decoded["vout"][0]["scriptPubKey"]["address"] == bob.address
    assert decoded["vin"][0]["txinwitness"][1] == alice.pubkey.sec().hex()

    scan = bitcoind.rpc(
        "scantxoutset", "start", [f"addr({bob.address})", f"raw({alice.script_pubkey.hex()})"]
    )
    assert scan["success"] is True
    assert sum(u["amount"] for u in scan["unspents"]) == scan["total_amount"]
    assert {u["scriptPubKey"] for u in scan["unspents"]} == {
        bob.script_pubkey.hex(),
        alice.script_pubkey.hex(),
    }
    wpkh = bitcoind.rpc("scantxoutset", "start", [f"wpkh({bob.pubkey.sec().hex()})"])
    assert wpkh["total_amount"] == Decimal("0.00300000")
    assert_raises_rpc_error(
        -5,
        "does not match computed checksum",
        bitcoind.rpc,
        "scantxoutset",
        "start",
        [f"addr({bob.address})#00000000"],
    )
    assert bitcoind.rpc("getindexinfo")["txindex"]["synced"] is True
    assert bitcoind.rpc("getzmqnotifications") == []
    assert bitcoind.rpc("getmininginfo")["pooledtx"] == 1
    info = bitcoind.rpc("getmempoolinfo")
    assert info["size"] == 1 and info["fullrbf"] is True
    va = bitcoind.rpc("validateaddress", bob.address)
    assert va["isvalid"] and va["scriptPubKey"] == bob.script_pubkey.hex()
    assert (
        json.loads(json.dumps(bitcoind.rpc("getchaintips"), default=str))[0]["status"] == "active"
    )


def test_stop(tmp_path_factory: pytest.TempPathFactory) -> None:
    node = start_bitcoind(tmp_path_factory)
    assert node.rpc("stop") == "Bitcoin Core stopping"
    assert node.proc is not None
    assert node.proc.wait(timeout=15) == 0
    node.proc = None


def test_concurrent_clients(bitcoind: BitcoinRegtest) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        client = BitcoinRegtest(port=bitcoind.port, data_dir=bitcoind.data_dir)
        try:
            while not done.is_set():
                height = client.rpc("getblockcount")
                block_hash = client.rpc("getblockhash", height)
                block = client.rpc("getblock", block_hash, 2)
                assert block["height"] == height and block["tx"][0]["vin"][0]["coinbase"]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        bitcoind.mine(5)
    done.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert bitcoind.height() == 100
