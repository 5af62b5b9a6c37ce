"""Regtest consensus parameters and block assembly.

Transactions, scripts and addresses are embit's; what embit lacks (block
header, merkle root, witness commitment, proof of work grinding) is written
here with hashlib. Whether a block is valid is decided by libbitcoinkernel,
never by this module."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from embit import compact
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

COIN = 100_000_000
REGTEST_BITS = 0x207FFFFF
HALVING_INTERVAL = 150  # regtest
COINBASE_MATURITY = 100
MAX_BLOCK_WEIGHT = 4_000_000
WITNESS_SCALE_FACTOR = 4
BLOCK_VERSION = 0x20000000
WITNESS_COMMITMENT_HEADER = bytes.fromhex("6a24aa21a9ed")
NULL_TXID = b"\x00" * 32
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
REGTEST_GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def bits_to_target(bits: int) -> int:
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


REGTEST_TARGET = bits_to_target(REGTEST_BITS)
# work of one block: 2**256 / (target + 1), as Core's GetBlockProof
BLOCK_WORK = (1 << 256) // (REGTEST_TARGET + 1)
# difficulty of 0x207fffff relative to the difficulty-1 target (0x1d00ffff)
REGTEST_DIFFICULTY = bits_to_target(0x1D00FFFF) / REGTEST_TARGET


def block_subsidy(height: int) -> int:
    halvings = height // HALVING_INTERVAL
    if halvings >= 64:
        return 0
    return (50 * COIN) >> halvings


def script_num(n: int) -> bytes:
    """Minimal little-endian sign-magnitude encoding (CScriptNum)."""
    if n == 0:
        return b""
    neg = n < 0
    absval = -n if neg else n
    out = bytearray()
    while absval:
        out.append(absval & 0xFF)
        absval >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0x00)
    elif neg:
        out[-1] |= 0x80
    return bytes(out)


def push_int(n: int) -> bytes:
    """``CScript() << n``: OP_0, OP_1..OP_16, OP_1NEGATE or a minimal push."""
    if n == 0:
        return b"\x00"
    if n == -1 or 1 <= n <= 16:
        return bytes([n + 0x50])
    data = script_num(n)
    return bytes([len(data)]) + data


def tx_bytes(tx: Transaction) -> bytes:
    return bytes(tx.serialize())


def tx_stripped_bytes(tx: Transaction) -> bytes:
    """Serialization without witness (what the txid commits to)."""
    out = io.BytesIO()
    out.write(tx.version.to_bytes(4, "little"))
    out.write(compact.to_bytes(len(tx.vin)))
    for inp in tx.vin:
        out.write(inp.serialize())
    out.write(compact.to_bytes(len(tx.vout)))
    for o in tx.vout:
        out.write(o.serialize())
    out.write(tx.locktime.to_bytes(4, "little"))
    return out.getvalue()


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin merkle root over internal-byte-order hashes."""
    if not hashes:
        return NULL_TXID
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True)
class Header:
    version: int
    prev_hash: bytes  # internal byte order
    merkle_root: bytes  # internal byte order
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        return (
            struct.pack("<i", self.version)
            + self.prev_hash
            + self.merkle_root
            + struct.pack("<III", self.time, self.bits, self.nonce)
        )

    @classmethod
    def parse(cls, raw: bytes) -> Header:
        version = struct.unpack_from("<i", raw, 0)[0]
        time, bits, nonce = struct.unpack_from("<III", raw, 68)
        return cls(version, raw[4:36], raw[36:68], time, bits, nonce)

    def hash(self) -> bytes:
        return sha256d(self.serialize())


def grind(header: Header) -> Header:
    """Find a nonce meeting the header's target (about two tries on regtest)."""
    target = bits_to_target(header.bits)
    prefix = header.serialize()[:76]
    nonce = header.nonce
    while True:
        h = sha256d(prefix + struct.pack("<I", nonce))
        if int.from_bytes(h, "little") <= target:
            return Header(
                header.version,
                header.prev_hash,
                header.merkle_root,
                header.time,
                header.bits,
                nonce,
            )
        nonce = (nonce + 1) & 0xFFFFFFFF


def make_coinbase(
    height: int, value: int, script_pubkey: bytes, witness_commitment: bytes | None
) -> Transaction:
    """Coinbase as Core's miner makes it: scriptSig ``<height> OP_0``, a zero
    witness reserved value, and the witness commitment output."""
    script_sig = push_int(height) + b"\x00"
    inp = TransactionInput(
        NULL_TXID,
        0xFFFFFFFF,
        Script(script_sig),
        0xFFFFFFFF,
        Witness([b"\x00" * 32]) if witness_commitment is not None else None,
    )
    outs = [TransactionOutput(value, Script(script_pubkey))]
    if witness_commitment is not None:
        outs.append(TransactionOutput(0, Script(WITNESS_COMMITMENT_HEADER + witness_commitment)))
    return Transaction(version=2, vin=[inp], vout=outs, locktime=0)


def wtxid_raw(tx: Transaction) -> bytes:
    return sha256d(tx_bytes(tx))


def txid_raw(tx: Transaction) -> bytes:
    return sha256d(tx_stripped_bytes(tx))


def witness_commitment(txs: Sequence[Transaction], nonce: bytes = b"\x00" * 32) -> bytes:
    """sha256d(witness merkle root || reserved value); the coinbase's wtxid is 0."""
    leaves = [NULL_TXID] + [wtxid_raw(tx) for tx in txs]
    return sha256d(merkle_root(leaves) + nonce)


def assemble_block(
    *,
    prev_hash: bytes,
    height: int,
    time: int,
    payout_script: bytes,
    txs: Sequence[Transaction],
    fees: int,
    bits: int = REGTEST_BITS,
    version: int = BLOCK_VERSION,
    coinbase_value: int | None = None,
) -> bytes:
    """A complete serialized block paying subsidy+fees to ``payout_script``.

    ``coinbase_value`` overrides the amount (tests use it to build invalid
    blocks)."""
    value = block_subsidy(height) + fees if coinbase_value is None else coinbase_value
    coinbase = make_coinbase(height, value, payout_script, witness_commitment(txs))
    all_txs = [coinbase, *txs]
    root = merkle_root([txid_raw(tx) for tx in all_txs])
    header = grind(Header(version, prev_hash, root, time, bits, 0))
    return serialize_block(header, all_txs)


def serialize_block(header: Header, txs: Sequence[Transaction]) -> bytes:
    out = io.BytesIO()
    out.write(header.serialize())
    out.write(compact.to_bytes(len(txs)))
    for tx in txs:
        out.write(tx_bytes(tx))
    return out.getvalue()


def parse_block(raw: bytes) -> tuple[Header, list[Transaction]]:
    stream = io.BytesIO(raw)
    header = Header.parse(stream.read(80))
    n = compact.read_from(stream)
    txs = [Transaction.read_from(stream) for _ in range(n)]
    if stream.read(1):
        raise ValueError("extra bytes after block")
    return header, txs


@dataclass(frozen=True)
class ParsedTx:
    """A transaction with its serializations and ids computed once."""

    tx: Transaction
    raw: bytes
    stripped: bytes
    txid: str  # display hex
    wtxid: str  # display hex

    @property
    def weight(self) -> int:
        return len(self.stripped) * (WITNESS_SCALE_FACTOR - 1) + len(self.raw)

    @property
    def vsize(self) -> int:
        return (self.weight + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    @classmethod
    def of(cls, tx: Transaction, raw: bytes | None = None) -> ParsedTx:
        raw = tx_bytes(tx) if raw is None else raw
        # no segwit marker: the serialization is already the stripped one
        stripped = raw if raw[4] != 0 else tx_stripped_bytes(tx)
        return cls(tx, raw, stripped, sha256d(stripped)[::-1].hex(), sha256d(raw)[::-1].hex())


def parse_block_txs(raw: bytes) -> tuple[Header, list[ParsedTx]]:
    """Like ``parse_block``, keeping each transaction's bytes (sliced, not
    re-serialized)."""
    stream = io.BytesIO(raw)
    header = Header.parse(stream.read(80))
    n = compact.read_from(stream)
    out: list[ParsedTx] = []
    for _ in range(n):
        start = stream.tell()
        tx = Transaction.read_from(stream)
        out.append(ParsedTx.of(tx, raw[start : stream.tell()]))
    if stream.read(1):
        raise ValueError("extra bytes after block")
    return header, out


def tx_weight(tx: Transaction) -> int:
    stripped = len(tx_stripped_bytes(tx))
    total = len(tx_bytes(tx))
    return stripped * (WITNESS_SCALE_FACTOR - 1) + total


def tx_vsize(tx: Transaction) -> int:
    return (tx_weight(tx) + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR


def compact_target_hex(target: int) -> str:
    return f"{target:064x}"
