"""The local node's own persistent state: every block it has seen (raw, with
status), undo data, the UTXO set and the transaction index, in one SQLite
file beside the kernel's data. Writes are grouped and committed per RPC call."""

from __future__ import annotations

import marshal
import sqlite3
from dataclasses import dataclass
from pathlib import Path

# block status
OK = 0  # accepted by the kernel (active or a valid fork)
INVALIDATED = 1  # invalidateblock (or a descendant of one)
REJECTED = 2  # refused by libbitcoinkernel


@dataclass
class BlockInfo:
    hash: str  # display hex
    height: int
    prev: str | None
    version: int
    merkle: str
    time: int
    bits: int
    nonce: int
    n_tx: int
    size: int
    stripped_size: int
    weight: int
    status: int
    seq: int


@dataclass(frozen=True)
class Coin:
    value: int
    spk: bytes
    height: int
    coinbase: bool


Outpoint = tuple[str, int]  # (txid display hex, vout)


class Store:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS blocks (
                hash TEXT PRIMARY KEY, height INTEGER, prev TEXT, version INTEGER,
                merkle TEXT, time INTEGER, bits INTEGER, nonce INTEGER, n_tx INTEGER,
                size INTEGER, stripped_size INTEGER, weight INTEGER, status INTEGER,
                seq INTEGER, raw BLOB);
            CREATE TABLE IF NOT EXISTS undo (hash TEXT PRIMARY KEY, data BLOB);
            CREATE TABLE IF NOT EXISTS utxo (
                txid TEXT, n INTEGER, value INTEGER, spk BLOB, height INTEGER,
                coinbase INTEGER, PRIMARY KEY (txid, n));
            CREATE TABLE IF NOT EXISTS txindex (txid TEXT PRIMARY KEY, blockhash TEXT);
            CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
            """
        )
        self._in_tx = False

    # transactions -----------------------------------------------------------
    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def close(self) -> None:
        self.commit()
        self.db.close()

    # meta -------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.begin()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # blocks -----------------------------------------------------------------
    def load_index(self) -> list[BlockInfo]:
        rows = self.db.execute(
            "SELECT hash, height, prev, version, merkle, time, bits, nonce, n_tx, size,"
            " stripped_size, weight, status, seq FROM blocks ORDER BY seq"
        ).fetchall()
        return [BlockInfo(*r) for r in rows]

    def put_block(self, info: BlockInfo, raw: bytes) -> None:
        self.begin()
        self.db.execute(
            "INSERT OR REPLACE INTO blocks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                info.hash,
                info.height,
                info.prev,
                info.version,
                info.merkle,
                info.time,
                info.bits,
                info.nonce,
                info.n_tx,
                info.size,
                info.stripped_size,
                info.weight,
                info.status,
                info.seq,
                raw,
            ),
        )

    def set_status(self, block_hash: str, status: int) -> None:
        self.begin()
        self.db.execute("UPDATE blocks SET status=? WHERE hash=?", (status, block_hash))

    def delete_block(self, block_hash: str) -> None:
        self.begin()
        self.db.execute("DELETE FROM blocks WHERE hash=?", (block_hash,))

    def raw_block(self, block_hash: str) -> bytes | None:
        row = self.db.execute("SELECT raw FROM blocks WHERE hash=?", (block_hash,)).fetchone()
        return None if row is None else bytes(row[0])

    # undo -------------------------------------------------------------------
    def put_undo(self, block_hash: str, spent: list[list[Coin]]) -> None:
        data = marshal.dumps([[(c.value, c.spk, c.height, c.coinbase) for c in tx] for tx in spent])
        self.begin()
        self.db.execute("INSERT OR REPLACE INTO undo VALUES (?, ?)", (block_hash, data))

    def get_undo(self, block_hash: str) -> list[list[Coin]] | None:
        row = self.db.execute("SELECT data FROM undo WHERE hash=?", (block_hash,)).fetchone()
        if row is None:
            return None
        return [[Coin(*c) for c in tx] for tx in marshal.loads(row[0])]  # noqa: S302 - own file

    # utxo / txindex ---------------------------------------------------------
    def load_utxos(self) -> dict[Outpoint, Coin]:
        rows = self.db.execute("SELECT txid, n, value, spk, height, coinbase FROM utxo")
        return {(r[0], r[1]): Coin(r[2], bytes(r[3]), r[4], bool(r[5])) for r in rows}

    def load_txindex(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT txid, blockhash FROM txindex").fetchall())

    def add_utxos(self, rows: list[tuple[str, int, int, bytes, int, int]]) -> None:
        self.begin()
        self.db.executemany("INSERT OR REPLACE INTO utxo VALUES (?,?,?,?,?,?)", rows)

    def del_utxos(self, keys: list[Outpoint]) -> None:
        self.begin()
        self.db.executemany("DELETE FROM utxo WHERE txid=? AND n=?", keys)

    def index_txs(self, rows: list[tuple[str, str]]) -> None:
        self.begin()
        self.db.executemany("INSERT OR REPLACE INTO txindex VALUES (?, ?)", rows)

    def unindex_txs(self, txids: list[str]) -> None:
        self.begin()
        self.db.executemany("DELETE FROM txindex WHERE txid=?", [(t,) for t in txids])

    def wipe_chainstate(self) -> None:
        self.begin()
        self.db.execute("DELETE FROM utxo")
        self.db.execute("DELETE FROM txindex")
        self.db.execute("DELETE FROM undo")
