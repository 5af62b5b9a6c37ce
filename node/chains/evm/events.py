"""Fast decoding of the Escrow contract's logs.

The events (contracts/README.md, "Events") have only static types, so every
field is one 32-byte word, in topics (indexed) or in data (the rest, in
declaration order). A decoder is precompiled per topic0: it slices the hex
words straight out of the JSON-RPC log and converts them (addresses
checksummed through a cache, amounts to Python ints, bytes32 to 0x-hex). No
ABI machinery runs per log; that is where the ~10x over web3.py's
``process_log`` comes from. ``tests/unit/test_evm_events.py`` checks the
decoders against eth_abi and the specs against the compiled ABI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from node.chains.base import EscrowEvent
from node.errors import ChainError


class LogDecodeError(ChainError):
    """A log that claims to be an Escrow event but does not have its shape."""

    code = "log_decode_error"


# (name, type, indexed) in declaration order. Types: address, bytes32, uintN.
EventSpec = tuple[str, tuple[tuple[str, str, bool], ...]]

ESCROW_EVENTS: tuple[EventSpec, ...] = (
    ("Opened", (
        ("id", "bytes32", True), ("seller", "address", True), ("buyer", "address", True),
        ("arbitrator", "address", False), ("token", "address", False),
        ("amount", "uint256", False), ("fee_bps", "uint16", False),
        ("payment_deadline", "uint64", False), ("deadline", "uint64", False),
        ("ref", "bytes32", False),
    )),
    ("MarkedPaid", (("id", "bytes32", True), ("buyer", "address", True))),
    ("Released", (
        ("id", "bytes32", True), ("buyer", "address", True),
        ("amount", "uint256", False), ("fee", "uint256", False),
    )),
    ("Refunded", (
        ("id", "bytes32", True), ("seller", "address", True),
        ("amount", "uint256", False), ("reason", "uint8", False),
    )),
    ("Disputed", (("id", "bytes32", True), ("by", "address", True))),
    ("Resolved", (
        ("id", "bytes32", True), ("arbitrator", "address", True),
        ("buyer_bps", "uint16", False), ("buyer_amount", "uint256", False),
        ("seller_amount", "uint256", False), ("fee", "uint256", False),
    )),
    ("PayoutDeferred", (
        ("id", "bytes32", True), ("to", "address", True),
        ("token", "address", False), ("amount", "uint256", False),
    )),
    ("Claimed", (
        ("to", "address", True), ("token", "address", True), ("amount", "uint256", False),
    )),
    ("FeeChanged", (("fee_bps", "uint16", False), ("recipient", "address", False))),
    ("OwnershipTransferStarted", (
        ("previous_owner", "address", True), ("new_owner", "address", True),
    )),
    ("OwnershipTransferred", (
        ("previous_owner", "address", True), ("new_owner", "address", True),
    )),
)

# Events the watcher stores (ownership handovers are not escrow facts).
STORED_EVENTS = frozenset(
    {"Opened", "MarkedPaid", "Released", "Refunded", "Disputed", "Resolved", "PayoutDeferred",
     "Claimed", "FeeChanged"}
)


def event_signature(spec: EventSpec) -> str:
    name, fields = spec
    return f"{name}({','.join(t for _, t, _ in fields)})"


def event_topic(spec: EventSpec) -> str:
    return "0x" + keccak(event_signature(spec).encode()).hex()


# --- checksummed addresses, cached ----------------------------------------

_CHECKSUM_CACHE: dict[str, str] = {}
_CHECKSUM_CACHE_MAX = 200_000


def checksum_address(hex40: str) -> str:
    """EIP-55 form of a 40-hex-digit address (any case, no 0x)."""
    cached = _CHECKSUM_CACHE.get(hex40)
    if cached is not None:
        return cached
    low = hex40.lower()
    digest = keccak(low.encode()).hex()
    out = "0x" + "".join(
        c.upper() if c > "9" and digest[i] >= "8" else c for i, c in enumerate(low)
    )
    if len(_CHECKSUM_CACHE) >= _CHECKSUM_CACHE_MAX:
        _CHECKSUM_CACHE.clear()
    _CHECKSUM_CACHE[hex40] = out
    return out


# --- decoders -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """One decoded Escrow log. ``args`` holds Python values: ints for every
    uint (amounts included), checksummed addresses, 0x-hex bytes32."""

    name: str
    escrow_id: str | None  # 0x-hex bytes32, None for contract-wide events
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    removed: bool = False

    def json_args(self) -> dict[str, Any]:
        """``args`` with uint256 values as decimal strings (JSON clients lose
        precision above 2**53); small ints stay ints."""
        big = UINT256_FIELDS[self.name]
        if not big:
            return dict(self.args)
        return {k: (str(v) if k in big else v) for k, v in self.args.items()}


UINT256_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(f for f, t, _ in fields if t == "uint256") for name, fields in ESCROW_EVENTS
}

_ZERO24 = "0" * 24


def _word_converter(typ: str, where: str, json_safe: bool) -> Callable[[str], Any]:
    """A function from one 64-hex-digit word to its Python value (uint256 as
    a decimal string when ``json_safe``)."""
    if typ == "address":
        cache = _CHECKSUM_CACHE

        def conv_address(w: str) -> str:
            if w[:24] != _ZERO24:
                raise LogDecodeError(f"{where}: address word has dirty high bytes")
            a = w[24:]
            return cache.get(a) or checksum_address(a)

        return conv_address
    if typ == "bytes32":
        return lambda w: "0x" + w.lower()
    if typ.startswith("uint"):
        bits = int(typ[4:])
        if bits == 256:
            return (lambda w: str(int(w, 16))) if json_safe else (lambda w: int(w, 16))
        limit = 1 << bits

        def conv_uint(w: str) -> int:
            v = int(w, 16)
            if v >= limit:
                raise LogDecodeError(f"{where}: value out of range for {typ}")
            return v

        return conv_uint
    raise ValueError(f"unsupported event field type {typ}")


RawLog = Mapping[str, Any]
Decoder = Callable[[RawLog], DecodedLog]
StoreDecoder = Callable[[RawLog], EscrowEvent]


def _compile_args(
    spec: EventSpec, json_safe: bool
) -> Callable[[Sequence[str], str], dict[str, Any]]:
    """The args decoder of one event: (topics, data) -> args."""
    name, fields = spec
    conv = [(f, _word_converter(t, f"{name}.{f}", json_safe), ix) for f, t, ix in fields]
    indexed = [(f, c) for f, c, ix in conv if ix]
    plain = [(f, c) for f, c, ix in conv if not ix]
    n_topics = 1 + len(indexed)
    data_len = 2 + 64 * len(plain)
    # topic slots and data offsets resolved once
    topic_plan = tuple((i + 1, f, c) for i, (f, c) in enumerate(indexed))
    data_plan = tuple((2 + 64 * i, 2 + 64 * (i + 1), f, c) for i, (f, c) in enumerate(plain))

    def decode_args(topics: Sequence[str], data: str) -> dict[str, Any]:
        if len(topics) != n_topics or len(data) != data_len:
            raise LogDecodeError(
                f"{name}: expected {n_topics} topics and {len(plain)} data words, got "
                f"{len(topics)} topics and {(len(data) - 2) / 64:g} words"
            )
        args: dict[str, Any] = {}
        for slot, f, c in topic_plan:
            t = topics[slot]
            if len(t) != 66:
                raise LogDecodeError(f"{name}.{f}: topic is not 32 bytes")
            args[f] = c(t[2:])
        for a, b, f, c in data_plan:
            args[f] = c(data[a:b])
        return args

    return decode_args


def _compile(spec: EventSpec) -> Decoder:
    name, fields = spec
    decode_args = _compile_args(spec, json_safe=False)
    has_id = bool(fields) and fields[0][0] == "id"

    def decode(log: RawLog) -> DecodedLog:
        args = decode_args(log["topics"], log["data"])
        return DecodedLog(
            name=name,
            escrow_id=args["id"] if has_id else None,
            args=args,
            block_number=int(log["blockNumber"], 16),
            block_hash=log["blockHash"],
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
            removed=bool(log.get("removed", False)),
        )

    return decode


def _compile_store(spec: EventSpec) -> StoreDecoder:
    """Straight to the mirror's row: JSON-safe args, no intermediate object."""
    name, fields = spec
    decode_args = _compile_args(spec, json_safe=True)
    has_id = bool(fields) and fields[0][0] == "id"

    def decode(log: RawLog) -> EscrowEvent:
        args = decode_args(log["topics"], log["data"])
        return EscrowEvent(
            int(log["blockNumber"], 16), log["blockHash"], log["transactionHash"],
            int(log["logIndex"], 16), name, args["id"] if has_id else "", args,
        )

    return decode


DECODERS: dict[str, Decoder] = {event_topic(spec): _compile(spec) for spec in ESCROW_EVENTS}
STORE_DECODERS: dict[str, StoreDecoder] = {
    event_topic(spec): _compile_store(spec) for spec in ESCROW_EVENTS
}
TOPIC_BY_NAME: dict[str, str] = {spec[0]: event_topic(spec) for spec in ESCROW_EVENTS}
STORED_TOPICS: list[str] = [TOPIC_BY_NAME[n] for n, _ in ESCROW_EVENTS if n in STORED_EVENTS]


def decode_logs_for_store(logs: Sequence[RawLog]) -> list[EscrowEvent]:
    """Decode many logs straight to EscrowEvent rows (JSON-safe args: uint256
    as decimal strings), skipping foreign and removed logs."""
    decoders = STORE_DECODERS
    out: list[EscrowEvent] = []
    append = out.append
    for log in logs:
        topics = log["topics"]
        if topics and not log.get("removed"):
            d = decoders.get(topics[0]) or decoders.get(topics[0].lower())
            if d is not None:
                append(d(log))
    return out


def decode_log(log: RawLog) -> DecodedLog | None:
    """Decode one JSON-RPC log of the Escrow contract; None if its topic0 is
    not an Escrow event (another contract's log, an anonymous event)."""
    topics = log["topics"]
    if not topics:
        return None
    decoder = DECODERS.get(topics[0].lower())
    return decoder(log) if decoder is not None else None


def decode_logs(logs: Sequence[RawLog]) -> list[DecodedLog]:
    """Decode many logs, skipping those that are not Escrow events."""
    decoders = DECODERS
    out: list[DecodedLog] = []
    append = out.append
    for log in logs:
        topics = log["topics"]
        if topics:
            d = decoders.get(topics[0])
            if d is None:
                d = decoders.get(topics[0].lower())
            if d is not None:
                append(d(log))
    return out
