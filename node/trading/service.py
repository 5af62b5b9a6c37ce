"""The trading service: the matching engine of each pair, kept in step with
the database, and this slice's hook into a running node.

The database is the sequencer and the source of truth; the in-memory engine
is a cache of it. Every command is one database transaction that

1. locks the pair's row (``UPDATE ... RETURNING last_seq``: a row lock on
   PostgreSQL, the write lock on SQLite), so commands of one pair apply one at a
   time across threads and node processes;
2. brings the engine up to ``last_seq`` (rebuilt from the input log if there is
   none in memory, or caught up with commands another process appended);
3. appends the command to the input log (``trading_engine_log``) with the next
   ``seq``, applies it to the engine, writes the fills and the orders' states,
   and posts the money movements to the custody ledger.

If anything fails the transaction rolls back and the engine, which ran ahead,
is dropped: the next command rebuilds it from the log. Recovery (``rebuild``)
replays the log into a fresh engine and checks it against the stored fills
and open orders; any difference raises ``ReplayMismatchError`` rather than
lose or duplicate a fill.

Money: before a user's order the engine is told the user's available balance
in the asset the order spends, as the custody ledger has it (a logged
``SetFunds`` command, so replay makes the same decisions); the engine's ledger
entries for the command (holds, releases, fill settlements and fees) are then
posted to the custody ledger in the same transaction (``node.trading.store``).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from node.custody.ledger import balance, user_account
from node.db.models_trading import (
    TradingEngineLog,
    TradingEngineSnapshot,
    TradingFill,
    TradingOrder,
    TradingPair,
)
from node.db.session import transaction
from node.errors import EscrowStateError, NotFoundError
from node.orderbook import (
    STP,
    AmendOrder,
    CancelOrder,
    Command,
    Engine,
    Event,
    Fill,
    Ledger,
    OrderRejected,
    OrderType,
    OrderValidationError,
    PairSpec,
    PlaceOrder,
    ReplayMismatchError,
    SetFunds,
    Side,
    Tick,
    TimeInForce,
)
from node.trading.codec import decode, encode, kind_of
from node.trading.errors import OrderNotOpenError, OrderRejectedError, PairHaltedError
from node.trading.pairs import load_spec, seed_pairs
from node.trading.settings import TradingSettings
from node.trading.store import TERMINAL, fill_message, post_ledger, record_events
from node.trading.stream import Hub, Message

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("escrowd.trading")
T = TypeVar("T")
DEV_PAIRS = (("BTC", "USDT"), ("ETH", "USDT"))
OPEN = ("open", "partially_filled", "pending")


class OrderRequest(NamedTuple):
    """A user's order as the API parsed it (integers in base units; ``expires_at``
    in ms since the epoch for GTD)."""

    pair_id: int
    side: Side
    order_type: OrderType
    quantity: int
    price: int | None = None
    stop_price: int | None = None
    stop_limit_price: int | None = None
    trail_amount: int | None = None
    trail_bps: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    expires_at: int | None = None
    stp: STP | None = None
    client_order_id: str | None = None
    notes: str | None = None


@dataclass
class PairBook:
    """One pair's engine as of log command ``seq``."""

    pair_id: int
    spec: PairSpec
    engine: Engine
    ledger: Ledger
    seq: int
    # the depth last published to the stream (None: nobody listened since)
    published: tuple[dict[int, int], dict[int, int]] | None = None
    # the snapshot the engine was rebuilt from (0: the whole log was replayed)
    restored_from: int = 0


Run = Callable[[Command, "str | None"], list[Event]]


@dataclass
class TradingService:
    sessions: sessionmaker[Session]
    settings: TradingSettings = field(default_factory=TradingSettings)
    clock: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    hub: Hub = field(default_factory=Hub)
    _books: dict[int, PairBook] = field(default_factory=dict)
    _locks: dict[int, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ commands

    def place(self, user_id: int, req: OrderRequest) -> TradingOrder:
        """Place an order; returns its row (committed). Bad input raises
        ``OrderValidationError`` (nothing is written); an order the engine
        refuses is kept as ``rejected`` and then raises ``OrderRejectedError``."""

        def body(session: Session, book: PairBook, run: Run) -> TradingOrder:
            if req.client_order_id is not None:
                found = session.execute(select(TradingOrder).where(
                    TradingOrder.user_id == user_id,
                    TradingOrder.client_order_id == req.client_order_id,
                )).scalar_one_or_none()
                if found is not None:  # a retried request: the order it placed
                    return found
            pair = session.get(TradingPair, book.pair_id)
            assert pair is not None
            if pair.status != "trading" or not pair.is_active:
                raise PairHaltedError("this pair is not trading", pair_id=book.pair_id)
            now = self.clock()
            cmd = PlaceOrder(
                0, user_id, req.side, req.order_type, req.quantity, req.price, req.stop_price,
                req.time_in_force, req.expires_at, req.stop_limit_price, req.trail_amount,
                req.trail_bps, req.stp, now,
            )
            book.engine.validate(cmd)  # bad input: a 4xx before anything is logged
            spec = book.spec
            buy = req.side is Side.BUY
            meta: dict[str, Any] = {
                k: v for k, v in (
                    ("stop_limit_price", req.stop_limit_price), ("trail_amount", req.trail_amount),
                    ("trail_bps", req.trail_bps), ("stp", req.stp and req.stp.value),
                ) if v is not None
            }
            row = TradingOrder(
                user_id=user_id, trading_pair_id=book.pair_id,
                client_order_id=req.client_order_id, order_type=req.order_type.value,
                side=req.side.value, quantity=req.quantity, executed_quantity=0,
                executed_quote=0, price=req.price, stop_price=req.stop_price, status="new",
                time_in_force=req.time_in_force.value,
                good_till_date=_to_datetime(req.expires_at), fee=0,
                fee_currency=spec.base_asset if buy else spec.quote_asset, held=0,
                notes=req.notes, meta={k: str(v) for k, v in meta.items()},
            )
            session.add(row)
            session.flush()
            asset = spec.quote_asset if buy else spec.base_asset
            available = balance(session, user_account(user_id, "available"), asset)
            if book.ledger.available(user_id, asset) != available:
                run(SetFunds(user_id, asset, available, now), None)
            ref = None if req.client_order_id is None else f"o:{user_id}:{req.client_order_id}"
            run(cmd._replace(order_id=row.id), ref)
            return row

        try:
            row = self._command(req.pair_id, body)
        except IntegrityError as exc:  # the same client_order_id, placed at once on two pairs
            if req.client_order_id is None:
                raise
            raise EscrowStateError(
                "this client_order_id is being used by another order",
                code="duplicate_client_order_id", client_order_id=req.client_order_id,
            ) from exc
        if row.status == "rejected":
            raise OrderRejectedError(
                f"order refused: {row.reason}", code=row.reason or "order_rejected",
                order_id=row.id,
            )
        return row

    def cancel(
        self, user_id: int | None, order_id: int, *, client_ref: str | None = None
    ) -> TradingOrder:
        """Cancel an open order of ``user_id`` (None: an operator). Another
        user's order is ``not_found``, as if it did not exist."""
        with self.sessions() as session:
            found = session.get(TradingOrder, order_id)
            if found is None or (user_id is not None and found.user_id != user_id):
                raise NotFoundError("no such order", code="order_not_found", order_id=order_id)
            pair_id = found.trading_pair_id

        def body(session: Session, book: PairBook, run: Run) -> tuple[TradingOrder, str | None]:
            row = session.get(TradingOrder, order_id)
            assert row is not None
            if client_ref is not None and session.execute(select(TradingEngineLog.id).where(
                TradingEngineLog.trading_pair_id == book.pair_id,
                TradingEngineLog.client_ref == client_ref,
            )).first() is not None:
                return row, None  # a retried request, applied before
            if row.status in TERMINAL or row.status == "new":
                return row, "order_not_open"
            events = run(CancelOrder(order_id, user_id, self.clock()), client_ref)
            refused = [e for e in events if isinstance(e, OrderRejected)]
            return row, refused[0].code if refused else None

        row, refused = self._command(pair_id, body)
        if refused is not None:
            raise OrderNotOpenError(
                f"order {order_id} is {row.status}", code=refused, order_id=order_id,
                order_status=row.status,
            )
        return row

    def amend(self, user_id: int, order_id: int, quantity: int) -> TradingOrder:
        """Lower an open order's total quantity; it keeps its place in the queue
        and the hold it no longer needs goes back to available."""
        with self.sessions() as session:
            found = session.get(TradingOrder, order_id)
            if found is None or found.user_id != user_id:
                raise NotFoundError("no such order", code="order_not_found", order_id=order_id)
            pair_id = found.trading_pair_id

        def body(session: Session, book: PairBook, run: Run) -> tuple[TradingOrder, str | None]:
            row = session.get(TradingOrder, order_id)
            assert row is not None
            if row.status in TERMINAL:
                return row, "order_not_open"
            if quantity % book.spec.step_size:  # refused before it reaches the log
                return row, "quantity_not_on_step"
            if not row.executed_quantity < quantity < row.quantity:
                return row, "amend_not_reduce"
            events = run(AmendOrder(order_id, quantity, user_id, self.clock()), None)
            refused = [e for e in events if isinstance(e, OrderRejected)]
            return row, refused[0].code if refused else None

        row, refused = self._command(pair_id, body)
        if refused == "order_not_open":
            raise OrderNotOpenError(f"order {order_id} is {row.status}", order_id=order_id,
                                    order_status=row.status)
        if refused is not None:
            raise OrderValidationError(f"amend refused: {refused}", code=refused,
                                       order_id=order_id)
        return row

    def submit(
        self, pair_id: int, command: Command, *, client_ref: str | None = None
    ) -> list[Event]:
        """Apply one raw engine command (operator tools, tests)."""
        return self._command(pair_id, lambda _s, _b, run: run(command, client_ref))

    def expire_due(self) -> None:
        """The periodic job: a clock tick to every pair with a GTD order due."""
        now = self.clock()
        with self.sessions() as session:
            pair_ids = list(session.execute(
                select(TradingPair.id).where(TradingPair.is_active.is_(True))
            ).scalars())
        for pair_id in pair_ids:
            book = self._books.get(pair_id)
            due = None if book is None else book.engine.next_expiry
            if book is not None and (due is None or due > now):
                continue

            def body(_s: Session, book: PairBook, run: Run) -> None:
                due = book.engine.next_expiry
                if due is not None and due <= now:
                    run(Tick(now), None)

            self._command(pair_id, body)

    # ------------------------------------------------------------- reads

    def depth(
        self, pair_id: int, levels: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int | None, int]:
        """(bids, asks, last price, seq): the book as of the newest command."""
        with self._lock_for(pair_id), self.sessions() as session:
            book = self._current(session, pair_id, self._last_seq(session, pair_id), [])
            bids, asks = book.engine.depth(levels)
            return bids, asks, book.engine.last_price, book.seq

    def stream_snapshot(self, pair_id: int) -> Message:
        """The stream's first message; from here on the deltas are relative to it."""
        with self._lock_for(pair_id), self.sessions() as session:
            book = self._current(session, pair_id, self._last_seq(session, pair_id), [])
            bids, asks = book.engine.depth(self.settings.max_depth)
            book.published = _levels(book.engine)
            return {
                "type": "snapshot", "pair_id": pair_id, "seq": book.seq,
                "bids": [[str(p), str(q)] for p, q in bids],
                "asks": [[str(p), str(q)] for p, q in asks],
                "last_price": _str(book.engine.last_price),
            }

    def poll(self, pair_id: int) -> None:
        """Catch up with commands other processes appended (publishes them)."""
        messages: list[Message] = []
        with self._lock_for(pair_id), self.sessions() as session:
            book = self._current(session, pair_id, self._last_seq(session, pair_id), messages)
            messages += self._book_delta(book)
        self.hub.publish(pair_id, messages)

    # ----------------------------------------------------------- recovery

    def rebuild(self, pair_id: int, *, use_snapshot: bool = True) -> PairBook:
        """Recover the pair's engine from the database (and keep it)."""
        with self._lock_for(pair_id), self.sessions() as session:
            last_seq = self._last_seq(session, pair_id)
            book = self._rebuild(session, pair_id, last_seq, use_snapshot=use_snapshot)
            self._books[pair_id] = book
            return book

    def drop(self, pair_id: int | None = None) -> None:
        """Forget the in-memory engine(s), as a crash would."""
        with self._guard:
            if pair_id is None:
                self._books.clear()
            else:
                self._books.pop(pair_id, None)

    def _rebuild(
        self, session: Session, pair_id: int, last_seq: int, *, use_snapshot: bool = True
    ) -> PairBook:
        _pair, spec = load_spec(session, pair_id)
        ledger = Ledger()
        engine = Engine(spec, ledger)
        seq = trade_id = 0
        snap = None
        if use_snapshot:
            snap = session.execute(
                select(TradingEngineSnapshot).where(
                    TradingEngineSnapshot.trading_pair_id == pair_id,
                    TradingEngineSnapshot.seq <= last_seq,
                ).order_by(TradingEngineSnapshot.seq.desc()).limit(1)
            ).scalar_one_or_none()
        if snap is not None:
            # the node's own pickle, from its own database (as trusted as the log)
            engine, ledger = pickle.loads(snap.state)  # noqa: S301
            if engine.pair != spec or engine.ledger is not ledger:
                raise ReplayMismatchError(
                    f"snapshot {snap.seq} of pair {pair_id} is not this pair's engine"
                )
            seq, trade_id = snap.seq, snap.trade_id
            # the fills before the snapshot: exactly trade ids 1..trade_id, once each
            count, top = session.execute(
                select(func.count(), func.coalesce(func.max(TradingFill.trade_id), 0)).where(
                    TradingFill.trading_pair_id == pair_id, TradingFill.trade_id <= trade_id
                )
            ).one()
            if count != trade_id or top != trade_id:
                raise ReplayMismatchError(
                    f"pair {pair_id}: {count} fills stored up to trade {trade_id}",
                    stored=count, produced=trade_id,
                )
        produced: list[tuple[int, Fill]] = []
        rows = session.execute(
            select(TradingEngineLog.seq, TradingEngineLog.kind, TradingEngineLog.command)
            .where(TradingEngineLog.trading_pair_id == pair_id, TradingEngineLog.seq > seq)
            .order_by(TradingEngineLog.seq)
        )
        for row_seq, kind, data in rows:
            if row_seq != seq + 1:
                raise ReplayMismatchError(f"log of pair {pair_id} jumps from {seq} to {row_seq}")
            for ev in engine.apply(decode(kind, data)):
                if type(ev) is Fill:
                    produced.append((row_seq, ev))
            ledger.entries.clear()  # posted when the command ran: only balances matter here
            seq = row_seq
        if seq != last_seq:
            raise ReplayMismatchError(f"pair {pair_id} says seq {last_seq}, its log ends at {seq}")
        stored = session.execute(
            select(TradingFill).where(
                TradingFill.trading_pair_id == pair_id, TradingFill.trade_id > trade_id
            ).order_by(TradingFill.trade_id)
        ).scalars().all()
        if len(stored) != len(produced):
            raise ReplayMismatchError(
                f"pair {pair_id}: {len(stored)} fills stored, the log gives {len(produced)}",
                stored=len(stored), produced=len(produced),
            )
        for s, (fseq, f) in zip(stored, produced, strict=True):
            got = (s.trade_id, s.seq, s.maker_order_id, s.taker_order_id, s.maker_user_id,
                   s.taker_user_id, s.taker_side, s.price, s.quantity, s.quote_amount,
                   s.maker_fee, s.taker_fee, s.ts)
            want = (f.trade_id, fseq, f.maker_order_id, f.taker_order_id, f.maker_user_id,
                    f.taker_user_id, f.taker_side.value, f.price, f.quantity, f.quote_amount,
                    f.maker_fee, f.taker_fee, f.ts)
            if got != want:
                raise ReplayMismatchError(
                    f"trade {s.trade_id} of pair {pair_id} differs from the log's",
                    trade_id=s.trade_id,
                )
        open_rows = dict(session.execute(
            select(TradingOrder.id, TradingOrder.executed_quantity).where(
                TradingOrder.trading_pair_id == pair_id, TradingOrder.status.in_(OPEN)
            )
        ).all())
        live = {v.order_id: v.filled for v in engine.open_orders()}
        if open_rows != live:
            raise ReplayMismatchError(
                f"pair {pair_id}: open orders in the database differ from the log's",
            )
        return PairBook(pair_id, spec, engine, ledger, seq,
                        restored_from=0 if snap is None else snap.seq)

    # --------------------------------------------------------- machinery

    def _lock_for(self, pair_id: int) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(pair_id)
            if lock is None:
                lock = self._locks[pair_id] = threading.Lock()
            return lock

    @staticmethod
    def _last_seq(session: Session, pair_id: int) -> int:
        found = session.execute(
            select(TradingPair.last_seq).where(TradingPair.id == pair_id)
        ).scalar_one_or_none()
        if found is None:
            raise NotFoundError("no such trading pair", code="pair_not_found", pair_id=pair_id)
        return int(found)

    @staticmethod
    def _lock_pair(session: Session, pair_id: int) -> int:
        found = session.execute(
            update(TradingPair).where(TradingPair.id == pair_id)
            .values(last_seq=TradingPair.last_seq, updated_at=TradingPair.updated_at)
            .returning(TradingPair.last_seq)
        ).scalar_one_or_none()
        if found is None:
            raise NotFoundError("no such trading pair", code="pair_not_found", pair_id=pair_id)
        return int(found)

    def _current(
        self, session: Session, pair_id: int, last_seq: int, messages: list[Message]
    ) -> PairBook:
        """The engine as of ``last_seq`` (caller holds the pair's local lock)."""
        book = self._books.get(pair_id)
        if book is None or book.seq > last_seq:
            book = self._rebuild(session, pair_id, last_seq)
            self._books[pair_id] = book
        elif book.seq < last_seq:  # commands another process appended
            rows = session.execute(
                select(TradingEngineLog.seq, TradingEngineLog.kind, TradingEngineLog.command)
                .where(TradingEngineLog.trading_pair_id == pair_id,
                       TradingEngineLog.seq > book.seq, TradingEngineLog.seq <= last_seq)
                .order_by(TradingEngineLog.seq)
            ).all()
            for row_seq, kind, data in rows:
                if row_seq != book.seq + 1:
                    self._books.pop(pair_id, None)
                    raise ReplayMismatchError(f"log of pair {pair_id} has a gap at {row_seq}")
                for ev in book.engine.apply(decode(kind, data)):
                    if type(ev) is Fill:
                        messages.append(fill_message(pair_id, row_seq, ev))
                book.ledger.entries.clear()  # the other process posted them
                book.seq = row_seq
        return book

    def _command(self, pair_id: int, body: Callable[[Session, PairBook, Run], T]) -> T:
        """Run ``body`` in one transaction with the pair locked; ``run`` appends a
        command to the log, applies it and writes what it did."""
        messages: list[Message] = []
        with self._lock_for(pair_id):
            dirty = False
            try:
                with transaction(self.sessions) as session:
                    last_seq = self._lock_pair(session, pair_id)
                    book = self._current(session, pair_id, last_seq, messages)

                    def run(command: Command, client_ref: str | None) -> list[Event]:
                        nonlocal dirty
                        seq = book.seq + 1
                        session.add(TradingEngineLog(
                            trading_pair_id=pair_id, seq=seq, kind=kind_of(command),
                            command=encode(command), client_ref=client_ref,
                        ))
                        journal = book.ledger.entries
                        journal.clear()  # the custody ledger keeps the journal of record
                        dirty = True
                        events = book.engine.apply(command)
                        book.seq = seq
                        messages.extend(record_events(
                            session, pair_id=pair_id, price_scale=book.spec.price_scale,
                            seq=seq, events=events, engine=book.engine,
                        ))
                        post_ledger(session, pair_id=pair_id, seq=seq, entries=journal)
                        journal.clear()
                        return events

                    result = body(session, book, run)
                    if book.seq != last_seq:
                        session.execute(
                            update(TradingPair).where(TradingPair.id == pair_id)
                            .values(last_seq=book.seq)
                        )
                        every = self.settings.snapshot_every
                        if every and book.seq // every > last_seq // every:
                            session.add(TradingEngineSnapshot(
                                trading_pair_id=pair_id, seq=book.seq,
                                trade_id=book.engine.last_trade_id,
                                state=pickle.dumps((book.engine, book.ledger),
                                                   protocol=pickle.HIGHEST_PROTOCOL),
                            ))
            except BaseException:
                if dirty:  # the engine ran ahead of what rolled back: rebuild it next time
                    self._books.pop(pair_id, None)
                raise
            messages += self._book_delta(book)
        self.hub.publish(pair_id, messages)
        return result

    def _book_delta(self, book: PairBook) -> list[Message]:
        if not self.hub.has_subscribers(book.pair_id):
            book.published = None
            return []
        old = book.published
        new = _levels(book.engine)
        book.published = new
        if old is None:
            return []
        sides = []
        for before, after in zip(old, new, strict=True):
            changed = {p: q for p, q in after.items() if before.get(p) != q}
            changed.update({p: 0 for p in before if p not in after})
            sides.append([[str(p), str(q)] for p, q in sorted(changed.items())])
        if not sides[0] and not sides[1]:
            return []
        return [{"type": "book", "pair_id": book.pair_id, "seq": book.seq,
                 "bids": sides[0], "asks": sides[1],
                 "last_price": _str(book.engine.last_price)}]


def _levels(engine: Engine) -> tuple[dict[int, int], dict[int, int]]:
    bids, asks = engine.depth()
    return dict(bids), dict(asks)


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)


def _to_datetime(ms: int | None) -> Any:
    from datetime import UTC, datetime

    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


# ------------------------------------------------------------------ wiring

_SERVICES: weakref.WeakKeyDictionary[sessionmaker[Session], TradingService] = (
    weakref.WeakKeyDictionary()
)
_SERVICES_LOCK = threading.Lock()


def service_for(
    sessions: sessionmaker[Session], settings: TradingSettings | None = None
) -> TradingService:
    """The one trading service of a database (its sessionmaker): the node's jobs
    and the API of the same process share its engines."""
    with _SERVICES_LOCK:
        service = _SERVICES.get(sessions)
        if service is None:
            service = TradingService(sessions, settings or TradingSettings())
            _SERVICES[sessions] = service
        return service


def install(node: Node) -> None:
    """Seed the configured pairs, recover every pair's engine from the database,
    and register the GTD expiry job."""
    settings = node.settings.trading
    service = service_for(node.sessions, settings)
    wanted = settings.seed_pairs
    if wanted is None:
        wanted = list(DEV_PAIRS) if node.settings.mode == "dev" else []
    with transaction(node.sessions) as session:
        if wanted:
            seed_pairs(session, tuple((b, q) for b, q in wanted))
        pair_ids = list(session.execute(select(TradingPair.id)).scalars())
    for pair_id in pair_ids:
        service.rebuild(pair_id)  # ReplayMismatchError stops the node: nothing is invented
    node.jobs.append(("trading-expire-gtd", service.expire_due, settings.expire_interval_s))
