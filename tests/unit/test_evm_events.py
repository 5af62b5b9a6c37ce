"""The fast Escrow log decoder (node/chains/evm/events.py).

Proves that the hand-written event specs are the compiled contract's events
(names, field order, types, indexed flags, topic0), that for
hypothesis-generated values every decoder returns exactly what eth_abi
decodes from the same log, and that malformed logs (wrong word count, dirty
address padding, out-of-range small ints) are refused instead of misread.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from node.chains.evm.artifacts import load
from node.chains.evm.events import (
    DECODERS,
    ESCROW_EVENTS,
    TOPIC_BY_NAME,
    LogDecodeError,
    decode_log,
    decode_logs,
    decode_logs_for_store,
)


def abi_events() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in load("Escrow").abi if e["type"] == "event"}


def test_specs_match_the_compiled_contract() -> None:
    compiled = abi_events()
    assert set(compiled) == {name for name, _ in ESCROW_EVENTS}
    for name, fields in ESCROW_EVENTS:
        abi = compiled[name]
        assert [(i["name"], i["type"], i["indexed"]) for i in abi["inputs"]] == list(fields)
        assert TOPIC_BY_NAME[name] == "0x" + event_abi_to_log_topic(abi).hex()


def value_strategy(typ: str) -> st.SearchStrategy[Any]:
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if typ == "bytes32":
        return st.binary(min_size=32, max_size=32)
    bits = int(typ[4:])
    return st.integers(min_value=0, max_value=2**bits - 1)


@st.composite
def event_log(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    name, fields = draw(st.sampled_from(ESCROW_EVENTS))
    values = {f: draw(value_strategy(t)) for f, t, _ in fields}
    topics = [TOPIC_BY_NAME[name]] + [
        "0x" + abi_encode([t], [values[f]]).hex() for f, t, ix in fields if ix
    ]
    plain = [(f, t) for f, t, ix in fields if not ix]
    data = "0x" + abi_encode([t for _, t in plain], [values[f] for f, _ in plain]).hex()
    log = {
        "address": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        "topics": topics,
        "data": data,
        "blockNumber": hex(draw(st.integers(0, 2**40))),
        "blockHash": "0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "transactionHash": "0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "logIndex": hex(draw(st.integers(0, 5000))),
        "removed": False,
    }
    return name, values, log


def eth_abi_reference(name: str, log: dict[str, Any]) -> dict[str, Any]:
    """What eth_abi decodes from the log, normalised like the node's output."""
    fields = dict(ESCROW_EVENTS)[name]
    out: dict[str, Any] = {}
    idx = iter(log["topics"][1:])
    plain = [(f, t) for f, t, ix in fields if not ix]
    data_vals = abi_decode([t for _, t in plain], bytes.fromhex(log["data"][2:]))
    by_field = dict(zip([f for f, _ in plain], data_vals, strict=True))
    for f, t, ix in fields:
        v = abi_decode([t], bytes.fromhex(next(idx)[2:]))[0] if ix else by_field[f]
        if t == "address":
            v = to_checksum_address(v)
        elif t == "bytes32":
            v = "0x" + v.hex()
        out[f] = v
    return out


@settings(max_examples=400, deadline=None)
@given(event_log())
def test_decoder_equals_eth_abi(case: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    name, _values, log = case
    d = decode_log(log)
    assert d is not None
    assert d.name == name
    assert d.args == eth_abi_reference(name, log)
    assert d.block_number == int(log["blockNumber"], 16)
    assert d.log_index == int(log["logIndex"], 16)
    assert d.tx_hash == log["transactionHash"] and d.block_hash == log["blockHash"]
    assert d.escrow_id == (d.args["id"] if "id" in d.args else None)
    # JSON form: uint256 as decimal strings, everything else unchanged
    fields = dict(ESCROW_EVENTS)[name]
    js = d.json_args()
    for f, t, _ in fields:
        assert js[f] == (str(d.args[f]) if t == "uint256" else d.args[f])
    assert decode_logs([log, log]) == [d, d]
    (row,) = decode_logs_for_store([log])  # the watcher's path, straight to rows
    assert (row.name, row.args, row.block_number, row.log_index, row.tx_hash) == (
        name, js, d.block_number, d.log_index, d.tx_hash)
    assert row.escrow_key == (d.escrow_id or "")


def _released_log(amount: int = 5, fee: int = 1) -> dict[str, Any]:
    return {
        "topics": [TOPIC_BY_NAME["Released"], "0x" + "11" * 32, "0x" + "00" * 12 + "22" * 20],
        "data": "0x" + abi_encode(["uint256", "uint256"], [amount, fee]).hex(),
        "blockNumber": "0x1", "blockHash": "0x" + "aa" * 32,
        "transactionHash": "0x" + "bb" * 32, "logIndex": "0x0",
    }


def test_malformed_logs_are_refused() -> None:
    good = _released_log()
    assert decode_log(good) is not None
    short = {**good, "data": good["data"][:-64]}
    with pytest.raises(LogDecodeError):
        decode_log(short)
    dirty = {**good, "topics": [good["topics"][0], good["topics"][1], "0x" + "01" * 32]}
    with pytest.raises(LogDecodeError):
        decode_log(dirty)
    missing_topic = {**good, "topics": good["topics"][:2]}
    with pytest.raises(LogDecodeError):
        decode_log(missing_topic)
    # a uint16 field holding a value above 2**16
    fee_changed = {
        **good,
        "topics": [TOPIC_BY_NAME["FeeChanged"]],
        "data": "0x" + abi_encode(["uint256", "address"], [2**16, "0x" + "22" * 20]).hex(),
    }
    with pytest.raises(LogDecodeError):
        decode_log(fee_changed)


def test_foreign_logs_are_skipped() -> None:
    foreign = {**_released_log(), "topics": ["0x" + "ab" * 32]}
    assert decode_log(foreign) is None
    assert decode_log({**_released_log(), "topics": []}) is None
    assert decode_logs([foreign, _released_log()])[0].name == "Released"
    assert len(DECODERS) == len(ESCROW_EVENTS)
