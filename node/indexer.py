"""The chain mirror store: blocks, escrow events and a cursor per chain.

Chain-agnostic: a watcher (node/chains/<family>/watcher.py) decides what to
write; these functions write it inside the caller's transaction. Bulk inserts
use PostgreSQL COPY (through the session's own psycopg connection, so they
are part of the same transaction), executemany elsewhere (SQLite).

Which blocks are stored (reorg detection needs no more):
- every block of the last ``finality_depth`` blocks below the watcher's head
  (contiguous, so the common ancestor of any reorg up to that depth is found
  by comparing stored hashes with the chain's),
- every block that holds an indexed event (its hash and timestamp are facts
  the API shows; ChainEvent.block_hash points at it),
- the cursor's head block.
Older blocks without events are pruned as the head moves on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.chains.base import BlockHeader, EscrowEvent
from node.db.models import ChainBlock, ChainCursor, ChainEvent

NO_HASH = "0x" + "00" * 32


@dataclass(frozen=True, slots=True)
class Cursor:
    chain: str
    head_number: int
    head_hash: str
    halted: str | None


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_cursor(session: Session, chain: str) -> Cursor | None:
    """The chain's cursor, row-locked (PostgreSQL) until the transaction ends,
    so two watcher processes never write the same step twice."""
    row = session.execute(
        select(ChainCursor.head_number, ChainCursor.head_hash, ChainCursor.halted)
        .where(ChainCursor.chain == chain)
        .with_for_update()
    ).first()
    if row is None:
        return None
    return Cursor(chain, int(row[0]), str(row[1]), row[2])


def get_cursor(session: Session, chain: str) -> Cursor | None:
    row = session.execute(
        select(ChainCursor.head_number, ChainCursor.head_hash, ChainCursor.halted).where(
            ChainCursor.chain == chain
        )
    ).first()
    return None if row is None else Cursor(chain, int(row[0]), str(row[1]), row[2])


def create_cursor(session: Session, chain: str, start: BlockHeader | None,
                  start_number: int) -> Cursor:
    """Create the cursor just below the first block to index (``start`` is that
    block's parent, None when indexing from genesis). If another process
    created it meanwhile, return theirs, locked."""
    number = start.number if start else start_number
    hash_ = start.hash if start else NO_HASH
    try:
        with session.begin_nested():
            session.add(ChainCursor(chain=chain, head_number=number, head_hash=hash_))
            if start is not None:
                session.add(ChainBlock(chain=chain, number=start.number, hash=start.hash,
                                       parent_hash=start.parent_hash, timestamp=start.timestamp))
    except IntegrityError:
        pass
    cur = lock_cursor(session, chain)
    assert cur is not None
    return cur


def set_head(session: Session, chain: str, number: int, hash_: str) -> None:
    session.execute(
        update(ChainCursor)
        .where(ChainCursor.chain == chain)
        .values(head_number=number, head_hash=hash_, updated_at=datetime.now(UTC))
    )


def halt(session: Session, chain: str, message: str) -> None:
    session.execute(
        update(ChainCursor)
        .where(ChainCursor.chain == chain)
        .values(halted=message, updated_at=datetime.now(UTC))
    )


def resume(session: Session, chain: str) -> None:
    """Operator action: clear a halt (after checking what happened)."""
    halt_msg: str | None = None
    session.execute(
        update(ChainCursor).where(ChainCursor.chain == chain).values(halted=halt_msg)
    )


def insert_blocks(session: Session, chain: str, headers: Iterable[BlockHeader]) -> int:
    rows = [(chain, h.number, h.hash, h.parent_hash, h.timestamp) for h in headers]
    if not rows:
        return 0
    if _is_pg(session):
        dbapi = session.connection().connection.driver_connection
        assert dbapi is not None
        with dbapi.cursor() as cur, cur.copy(
            "COPY chain_blocks (chain, number, hash, parent_hash, timestamp) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row(r)
    else:
        session.execute(
            insert(ChainBlock),
            [dict(zip(("chain", "number", "hash", "parent_hash", "timestamp"), r, strict=True))
             for r in rows],
        )
    return len(rows)


def insert_events(session: Session, chain: str, events: Sequence[EscrowEvent]) -> int:
    if not events:
        return 0
    dumps = orjson.dumps
    if _is_pg(session):
        # COPY text format, built in one pass: hashes, names and keys are
        # [0-9a-zA-Z_x]; args is JSON whose only COPY-special character can
        # be a backslash (escaped below), never a tab or newline (orjson).
        dbapi = session.connection().connection.driver_connection
        assert dbapi is not None
        lines = []
        for e in events:
            args = dumps(e.args).decode()
            if "\\" in args:
                args = args.replace("\\", "\\\\")
            lines.append(f"{chain}\t{e.block_number}\t{e.block_hash}\t{e.tx_hash}\t"
                         f"{e.log_index}\t{e.name}\t{e.escrow_key}\t{args}\n")
        with dbapi.cursor() as cur, cur.copy(
            "COPY chain_events (chain, block_number, block_hash, tx_hash, log_index, name, "
            "escrow_key, args) FROM STDIN"
        ) as copy:
            for i in range(0, len(lines), 5000):
                copy.write("".join(lines[i : i + 5000]))
    else:
        session.execute(
            insert(ChainEvent),
            [
                {"chain": chain, "block_number": e.block_number, "block_hash": e.block_hash,
                 "tx_hash": e.tx_hash, "log_index": e.log_index, "name": e.name,
                 "escrow_key": e.escrow_key, "args": dict(e.args)}
                for e in events
            ],
        )
    return len(events)


def stored_hashes(session: Session, chain: str, low: int, high: int) -> list[tuple[int, str]]:
    """(number, hash) of the stored blocks in [low, high], newest first."""
    rows = session.execute(
        select(ChainBlock.number, ChainBlock.hash)
        .where(ChainBlock.chain == chain, ChainBlock.number >= low, ChainBlock.number <= high)
        .order_by(ChainBlock.number.desc())
    ).all()
    return [(int(n), str(h)) for n, h in rows]


def rollback_above(session: Session, chain: str, ancestor: int) -> set[str]:
    """Delete the events and blocks above ``ancestor``; return the escrow keys
    whose events were deleted."""
    keys = session.execute(
        delete(ChainEvent)
        .where(ChainEvent.chain == chain, ChainEvent.block_number > ancestor)
        .returning(ChainEvent.escrow_key)
    ).scalars().all()
    session.execute(
        delete(ChainBlock).where(ChainBlock.chain == chain, ChainBlock.number > ancestor)
    )
    return {k for k in keys if k}


def keys_in_range(session: Session, chain: str, low_exclusive: int, high: int) -> set[str]:
    """Escrow keys with events in blocks (low_exclusive, high]."""
    if high <= low_exclusive:
        return set()
    rows = session.execute(
        select(ChainEvent.escrow_key)
        .where(
            ChainEvent.chain == chain,
            ChainEvent.block_number > low_exclusive,
            ChainEvent.block_number <= high,
        )
        .distinct()
    ).scalars().all()
    return {k for k in rows if k}


def prune_blocks(session: Session, chain: str, below: int, low: int | None = None) -> int:
    """Delete stored blocks in [low, below) that hold no event."""
    bounds = "AND b.number >= :low" if low is not None else ""
    result = session.execute(
        text(
            "DELETE FROM chain_blocks AS b WHERE b.chain = :chain AND b.number < :below "  # noqa: S608
            f"{bounds} AND NOT EXISTS (SELECT 1 FROM chain_events e "
            "WHERE e.chain = b.chain AND e.block_number = b.number)"
        ),
        {"chain": chain, "below": below, "low": low},
    )
    return int(getattr(result, "rowcount", 0) or 0)
