"""The matching engine: pure, deterministic, event-sourced.

``Engine.apply(command) -> list[Event]`` is the only way in. The engine reads
no clock and draws no random number: ids and timestamps come in the commands,
so the same command stream always gives the same events, and
``Engine.replay(pair, commands)`` rebuilds the identical book (``recover``
also checks the rebuilt events against the recorded ones, so after a crash no
fill is lost or duplicated).

Matching is price-time priority. Each side of the book is a dict of price ->
deque of orders plus a heap of prices (bids negated); a cancelled order is
marked dead and skipped lazily, and an emptied price level is dropped, its heap
entry discarded when it reaches the top.

Rules the engine applies:

- market orders (and triggered stop-market / trailing stops) take what they can
  and cancel the rest; IOC does the same at its limit; FOK fills in full or is
  rejected (``fok_not_fillable``) with nothing changed; GTC rests; GTD rests
  until the first command whose ``ts >= expires_at``.
- a stop (stop-market, stop-limit, trailing, OCO stop leg) triggers on the last
  trade price: a buy stop when ``last >= stop``, a sell stop when
  ``last <= stop``. Placing one that would trigger at once is refused
  (``stop_would_trigger``). Triggered orders run in placement order after the
  command that moved the price, and take a new time priority.
- an OCO rests its limit leg (refused if marketable) and arms its stop leg;
  the first fill of the limit leg cancels the stop leg, the trigger of the stop
  leg pulls the limit leg out of the book.
- with a ledger, an order's funds are held at acceptance, never later (sells:
  the quantity; limit-priced buys: the ceiling of price x quantity, at the
  higher of the two OCO prices; market-priced stop buys — stop-market,
  trailing, an OCO's market stop leg — at the stop plus the pair's market
  protection); a market buy holds the user's whole available quote. A buy
  spends no more than it holds (what it cannot afford is cancelled,
  ``insufficient_funds``); every fill settles both sides and their fees in one
  balanced entry, and what an order still holds when it is done goes back to
  available. ``SetFunds`` tells the engine a user's available balance as the
  custody ledger has it, on the command stream, so replay decides the same.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from node.orderbook.errors import OrderValidationError, ReplayMismatchError
from node.orderbook.ledger import Ledger
from node.orderbook.messages import (
    STP,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    Event,
    Fill,
    FundsDeposited,
    FundsSet,
    OcoLegCancelled,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderReduced,
    OrderRejected,
    OrderRested,
    OrderTriggered,
    OrderType,
    OrderView,
    PlaceOrder,
    SetFunds,
    Side,
    Tick,
    TimeInForce,
)
from node.orderbook.pair import BPS, PairSpec

DONE, RESTING, PENDING, OCO, INFLIGHT = 0, 1, 2, 3, 4
# NamedTuple's generated __new__ costs a Python call; on the hot path events are
# built with tuple.__new__ directly (same values, same class, same equality).
_new: Any = tuple.__new__
_STATE_NAMES = {RESTING: "resting", PENDING: "pending", OCO: "oco", INFLIGHT: "inflight"}

_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP_MARKET = OrderType.STOP_MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT
_OCO = OrderType.OCO
_TRAILING = OrderType.TRAILING_STOP
_GTC, _IOC, _FOK, _GTD = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTD


class _Order:
    """The engine's mutable record of a live order (never leaves the engine).
    What never changes is read from the command; only what changes is a slot."""

    __slots__ = (
        "oid", "user", "buy", "cmd", "qty", "filled", "rem", "price", "hold", "hold_price",
        "seq", "state", "ref", "reason",
    )

    def __init__(self, cmd: PlaceOrder, seq: int) -> None:
        oid, user, side, _t, qty, price = cmd[:6]
        self.oid: int = oid
        self.user: int = user
        self.buy: bool = side is _BUY
        self.cmd: PlaceOrder = cmd
        self.qty: int = qty
        self.filled: int = 0
        self.rem: int = qty
        self.price: int | None = price
        self.hold: int = 0
        self.hold_price: int | None = None
        self.seq: int = seq
        self.state: int = INFLIGHT
        self.ref: int | None = None  # a trailing stop's peak or trough
        self.reason: str | None = None  # why a taker stopped early


def _no_op(_command: Tick, _events: list[Event]) -> None:
    """A clock tick does its work (GTD expiry) before any command."""


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class Engine:
    """One trading pair's order book and matching engine."""

    def __init__(
        self,
        pair: PairSpec,
        ledger: Ledger | None = None,
        *,
        default_stp: STP = STP.CANCEL_NEWEST,
    ) -> None:
        self.pair = pair
        self.ledger = ledger
        self.default_stp = default_stp
        self._levels: tuple[dict[int, deque[_Order]], dict[int, deque[_Order]]] = ({}, {})
        self._level_qty: tuple[dict[int, int], dict[int, int]] = ({}, {})
        # heap keys: asks by price, bids by -price; index 0 = bids, 1 = asks
        self._heaps: tuple[list[int], list[int]] = ([], [])
        self._orders: dict[int, _Order] = {}
        self._seen: set[int] = set()
        self._expiry: list[tuple[int, int, int]] = []
        self._buy_stops: list[tuple[int, int, int]] = []  # (stop, seq, oid)
        self._sell_stops: list[tuple[int, int, int]] = []  # (-stop, seq, oid)
        self._trailing: dict[int, _Order] = {}
        self._last: int | None = None
        self._trade_id = 0
        self._seq = 0
        self._now = 0
        self._fees = (pair.maker_fee_bps, pair.taker_fee_bps)
        self._folding = False
        self._tick, self._step = pair.tick_size, pair.step_size
        self._min_qty, self._max_qty = pair.min_quantity, pair.max_quantity
        self._min_price, self._max_price = pair.min_price, pair.max_price
        self._base, self._quote = pair.base_asset, pair.quote_asset
        self._handlers: dict[type, Any] = {
            PlaceOrder: self._place, CancelOrder: self._cancel, AmendOrder: self._amend,
            SetFunds: self._set_funds, Deposit: self._deposit, Tick: _no_op,
        }

    # ------------------------------------------------------------------ API

    def apply(self, command: Command) -> list[Event]:
        """Apply one command; return the events it caused, in order."""
        events: list[Event] = []
        ts = command.ts
        if ts > self._now:
            self._now = ts
        expiry = self._expiry
        if expiry and expiry[0][0] <= self._now:
            self._expire(events)
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not an engine command: {command!r}")
        handler(command, events)
        return events

    def apply_all(self, commands: Iterable[Command]) -> list[Event]:
        events: list[Event] = []
        for command in commands:
            events.extend(self.apply(command))
        return events

    @classmethod
    def replay(
        cls,
        pair: PairSpec,
        commands: Iterable[Command],
        *,
        ledger: Ledger | None = None,
        default_stp: STP = STP.CANCEL_NEWEST,
    ) -> Engine:
        """The engine rebuilt from its command log (``ledger``: a fresh ledger if
        the log's deposits should be replayed into it)."""
        engine = cls(pair, ledger, default_stp=default_stp)
        for command in commands:
            engine.apply(command)
        return engine

    @classmethod
    def recover(
        cls,
        pair: PairSpec,
        commands: Iterable[Command],
        recorded: Sequence[Event],
        *,
        ledger: Ledger | None = None,
        default_stp: STP = STP.CANCEL_NEWEST,
    ) -> tuple[Engine, list[Event]]:
        """Rebuild from the command log and check it against the recorded events.

        The recorded events must be a prefix of what the commands give (a crash
        can only lose the tail); anything else raises ``ReplayMismatchError``.
        Returns the engine and the events that were never recorded, which the
        caller persists: so no fill is lost and none is recorded twice."""
        engine = cls(pair, ledger, default_stp=default_stp)
        produced = engine.apply_all(commands)
        if len(recorded) > len(produced):
            raise ReplayMismatchError(
                "more events recorded than the commands give",
                recorded=len(recorded), produced=len(produced),
            )
        for index, (want, got) in enumerate(zip(recorded, produced, strict=False)):
            if want != got:
                raise ReplayMismatchError(
                    f"event {index} differs: recorded {want!r}, replay gives {got!r}",
                    index=index,
                )
        return engine, produced[len(recorded):]

    @classmethod
    def from_events(
        cls,
        pair: PairSpec,
        events: Iterable[Event],
        *,
        ledger: Ledger | None = None,
        default_stp: STP = STP.CANCEL_NEWEST,
    ) -> Engine:
        """The engine rebuilt by folding its recorded event log, without matching.

        ``ledger``: if the engine ran with one, that ledger rebuilt from its own
        journal (``Ledger.replay(entries)``); the fold posts nothing to it, it
        only restores what each order holds. The rebuilt engine then goes on
        exactly as the original would (its clock catches up with the next
        command: events carry only order and fill times)."""
        engine = cls(pair, ledger, default_stp=default_stp)
        engine._folding = True
        try:
            for event in events:
                engine._fold(event)
        finally:
            engine._folding = False
        return engine

    def _fold(self, ev: Event) -> None:
        orders = self._orders
        if isinstance(ev, Fill):
            f = ev
            m, o = orders[f.maker_order_id], orders[f.taker_order_id]
            x, price = f.quantity, f.price
            self._trade_id = f.trade_id
            self._now = max(self._now, f.ts)
            for order in (m, o):
                order.rem -= x
                order.filled += x
            if self.ledger is not None:
                o.hold -= f.quote_amount if o.buy else x
                m.hold -= x if o.buy else f.quote_amount
            side = 0 if m.buy else 1
            level_qty = self._level_qty[side]
            level_qty[price] -= x
            self._last = price
            if self._trailing:
                self._trail(price)
            if m.state == OCO:
                m.state = RESTING
            if not m.rem:
                m.state = DONE
                self._close(m)
            if not level_qty[price]:
                del level_qty[price]
                del self._levels[side][price]
            if not o.rem:
                self._close(o)
        elif isinstance(ev, OrderAccepted):
            a = ev
            cmd = a.command
            self._seen.add(a.order_id)
            self._now = max(self._now, cmd.ts)
            self._seq += 1
            o = _Order(cmd, self._seq)
            if self.ledger is not None:
                self._initial_hold(o)  # sets hold_price; the amount is in the event
            o.hold = a.hold
            orders[o.oid] = o
            otype = cmd.order_type
            if otype is _LIMIT or otype is _MARKET:
                return
            if cmd.expires_at is not None:
                heapq.heappush(self._expiry, (cmd.expires_at, o.seq, o.oid))
            o.state = PENDING
            if otype is _TRAILING:
                o.ref = self._last
                self._trailing[o.oid] = o
                return
            if otype is _OCO:
                self._rest(o, [])
                o.state = OCO
            assert cmd.stop_price is not None
            if o.buy:
                heapq.heappush(self._buy_stops, (cmd.stop_price, o.seq, o.oid))
            else:
                heapq.heappush(self._sell_stops, (-cmd.stop_price, o.seq, o.oid))
        elif isinstance(ev, OrderRested):
            o = orders[ev.order_id]
            if o.state == OCO:  # the OCO's limit leg, booked when it was accepted
                return
            self._rest(o, [])
            if o.cmd.time_in_force is _GTD and o.cmd.order_type is _LIMIT:
                assert o.cmd.expires_at is not None
                heapq.heappush(self._expiry, (o.cmd.expires_at, o.seq, o.oid))
        elif isinstance(ev, (OrderCancelled, OrderExpired)):
            live = orders.get(ev.order_id)
            if live is not None:
                self._remove_live(live)
        elif isinstance(ev, OrderReduced):
            o = orders[ev.order_id]
            self._reduce(o, ev.quantity)
            if not o.rem and o.state == INFLIGHT:
                self._close(o)
        elif isinstance(ev, OrderTriggered):
            t = ev
            o = orders[t.order_id]
            self._trailing.pop(o.oid, None)
            if o.state == OCO:
                self._unbook(o, purge=True)
                o.price = o.cmd.stop_limit_price
            elif o.cmd.order_type is _STOP_MARKET or o.cmd.order_type is _TRAILING:
                o.price = None
            self._seq += 1
            o.seq = self._seq
            o.state = INFLIGHT
            if o.price is None:
                o.hold_price = None
        elif isinstance(ev, OrderRejected):
            if ev.command == "place" and ev.order_id is not None:
                self._seen.add(ev.order_id)
        # OcoLegCancelled (its effect comes with the Fill / OrderTriggered before
        # it) and FundsDeposited (in the ledger's journal) change nothing here.

    def validate(self, command: PlaceOrder) -> None:
        """Raise ``OrderValidationError`` (with the code the engine would reject
        with) if ``command`` breaks a rule of the pair or of its order type, as
        the book stands now. Changes nothing; the API calls it before sequencing
        a command so that bad input is a 4xx and never reaches the log."""
        try:
            self._validate(command)
        except _Reject as r:
            raise OrderValidationError(r.detail or r.code, code=r.code) from None

    # -- views ----------------------------------------------------------------

    @property
    def last_price(self) -> int | None:
        return self._last

    @property
    def now(self) -> int:
        return self._now

    @property
    def last_trade_id(self) -> int:
        """The id of the last fill (trade ids are 1, 2, ... per engine)."""
        return self._trade_id

    @property
    def next_expiry(self) -> int | None:
        """The earliest GTD expiry scheduled (possibly of an order already done:
        a ``Tick`` at that time then simply drops it), or None."""
        return self._expiry[0][0] if self._expiry else None

    def best_bid(self) -> int | None:
        key = self._top(0)
        return None if key is None else -key

    def best_ask(self) -> int | None:
        return self._top(1)

    def depth(
        self, levels: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Aggregated depth: (bids best first, asks best first) as (price, quantity)."""
        bid_qty, ask_qty = self._level_qty
        bids = sorted(bid_qty, reverse=True)
        asks = sorted(ask_qty)
        if levels is not None:
            bids, asks = bids[:levels], asks[:levels]
        return [(p, bid_qty[p]) for p in bids], [(p, ask_qty[p]) for p in asks]

    def order(self, order_id: int) -> OrderView | None:
        """The live order (resting or pending), or None once it is done."""
        o = self._orders.get(order_id)
        return None if o is None else self._view(o)

    def open_orders(self) -> list[OrderView]:
        return [self._view(o) for o in sorted(self._orders.values(), key=lambda o: o.oid)]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything that defines the book, comparable with ``==``: depth, the
        queue of every level, every live order, stops, last price, counters."""
        queues = tuple(
            tuple(
                (price, tuple(o.oid for o in side[price] if o.state in (RESTING, OCO)))
                for price in sorted(side)
            )
            for side in self._levels
        )
        return (
            self.depth(),
            queues,
            tuple(self.open_orders()),
            tuple(sorted((o.oid, o.ref) for o in self._trailing.values())),
            self._last,
            self._trade_id,
            self._seq,
            tuple(sorted(self._seen)),
        )

    def check_invariants(self) -> None:
        """Raise AssertionError if the book is crossed at rest or its caches drift."""
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"crossed book {bid} >= {ask}"
        booked: set[int] = set()
        sides = zip(self._levels, self._level_qty, strict=True)
        for side_index, (levels, qty) in enumerate(sides):
            assert set(levels) == set(qty)
            for price, queue in levels.items():
                live = [o for o in queue if o.state in (RESTING, OCO)]
                assert live, f"empty level {price}"
                assert sum(o.rem for o in live) == qty[price]
                for o in live:
                    assert o.oid not in booked, f"order {o.oid} booked twice"
                    booked.add(o.oid)
                    assert o.price == price and o.buy == (side_index == 0)
                    assert 0 < o.rem and o.filled + o.rem == o.qty

    # ------------------------------------------------------------- commands

    def _place(self, cmd: PlaceOrder, events: list[Event]) -> None:
        # one unpack instead of a dozen attribute reads (this is the hot path)
        oid, _u, _s, otype, qty, price, stop, tif, expires, stop_limit, trail, trail_bps = cmd[:12]
        seen = self._seen
        if oid in seen:
            events.append(OrderRejected(oid, "duplicate_order_id"))
            return
        seen.add(oid)
        if not (  # the common case, a plain valid limit order, checked inline
            otype is _LIMIT
            and price is not None
            and stop is None
            and expires is None
            and tif is not _GTD
            and stop_limit is None
            and trail is None
            and trail_bps is None
            and not qty % self._step
            and self._min_qty <= qty <= self._max_qty
            and not price % self._tick
            and self._min_price <= price <= self._max_price
        ):
            try:
                self._validate(cmd)
            except _Reject as r:
                events.append(OrderRejected(oid, r.code, r.detail))
                return
            except OrderValidationError as e:
                events.append(OrderRejected(oid, e.code, e.message))
                return
        o = _Order(cmd, self._seq + 1)  # the sequence moves only if accepted
        if tif is _FOK and not self._fok_fillable(o):
            events.append(OrderRejected(oid, "fok_not_fillable"))
            return
        ledger = self.ledger
        if ledger is not None:
            hold = o.qty if not o.buy else self._initial_hold(o)  # a sell holds its quantity
            if hold:
                asset = self._quote if o.buy else self._base
                if not ledger.try_hold(o.user, asset, hold, f"hold:{oid}"):
                    events.append(OrderRejected(oid, "insufficient_funds"))
                    return
                o.hold = hold
            elif otype is _MARKET:  # a market buy with no quote at all
                events.append(OrderRejected(oid, "insufficient_funds"))
                return
        self._seq += 1
        events.append(_new(OrderAccepted, (oid, o.user, cmd, o.hold)))
        self._orders[oid] = o
        if otype is _LIMIT or otype is _MARKET:
            # does it cross? (best key of the other side; bids are keyed -price)
            side = 1 if o.buy else 0
            heap, level_qty = self._heaps[side], self._level_qty[side]
            key = None
            while heap:
                key = heap[0]
                if (key if side else -key) in level_qty:
                    break
                heapq.heappop(heap)
                key = None
            if key is None or (price is not None and key > (price if side else -price)):
                if price is not None and tif is _GTC:  # rest, inline
                    own = 1 - side
                    own_qty = self._level_qty[own]
                    if price in own_qty:
                        self._levels[own][price].append(o)
                        own_qty[price] += qty
                    else:
                        self._levels[own][price] = deque((o,))
                        own_qty[price] = qty
                        heapq.heappush(self._heaps[own], -price if own == 0 else price)
                    o.state = RESTING
                    events.append(_new(OrderRested, (oid, price, qty)))
                    return
                self._finish_taker(o, events)  # cancels an IOC / market, rests a GTD
                return
            trades = self._trade_id
            self._take(o, events)
            self._finish_taker(o, events)
            if self._trade_id != trades and (
                self._buy_stops or self._sell_stops or self._trailing
            ):
                self._run_triggers(events)
            return
        if expires is not None:
            heapq.heappush(self._expiry, (expires, o.seq, oid))
        if otype is _TRAILING:
            o.state = PENDING
            o.ref = self._last
            self._trailing[oid] = o
            return
        if otype is _OCO:
            assert o.price is not None
            self._rest(o, events)
            o.state = OCO
        else:
            o.state = PENDING
        assert stop is not None
        if o.buy:
            heapq.heappush(self._buy_stops, (stop, o.seq, oid))
        else:
            heapq.heappush(self._sell_stops, (-stop, o.seq, oid))

    def _validate(self, cmd: PlaceOrder) -> None:
        pair = self.pair
        otype, tif = cmd.order_type, cmd.time_in_force
        qty = cmd.quantity
        if qty % pair.step_size or not pair.min_quantity <= qty <= pair.max_quantity:
            pair.check_quantity(qty)
        price, stop = cmd.price, cmd.stop_price
        needs_price = otype is _LIMIT or otype is _STOP_LIMIT or otype is _OCO
        needs_stop = otype is _STOP_MARKET or otype is _STOP_LIMIT or otype is _OCO
        if needs_price:
            if price is None:
                raise _Reject("missing_price", f"{otype} needs a price")
            if price % pair.tick_size or not pair.min_price <= price <= pair.max_price:
                pair.check_price(price)
        elif price is not None:
            raise _Reject("unexpected_price", f"{otype} takes no price")
        if needs_stop:
            if stop is None:
                raise _Reject("missing_stop_price", f"{otype} needs a stop price")
            pair.check_price(stop, field="stop_price")
        elif stop is not None:
            raise _Reject("unexpected_stop_price", f"{otype} takes no stop price")
        if cmd.stop_limit_price is not None:
            if otype is not _OCO:
                raise _Reject("unexpected_stop_limit_price", "only an OCO has a stop-limit leg")
            pair.check_price(cmd.stop_limit_price, field="stop_limit_price")
        buy = cmd.side is _BUY
        if otype is _TRAILING:
            amount, bps = cmd.trail_amount, cmd.trail_bps
            if (amount is None) == (bps is None):
                raise _Reject("invalid_trail", "give exactly one of trail_amount, trail_bps")
            if amount is not None and (amount <= 0 or amount % pair.tick_size):
                raise _Reject("invalid_trail", "trail_amount must be a positive multiple of tick")
            if bps is not None and not 0 < bps < BPS:
                raise _Reject("invalid_trail", "trail_bps must be within 1..9999")
        elif cmd.trail_amount is not None or cmd.trail_bps is not None:
            raise _Reject("unexpected_trail", f"{otype} takes no trail")
        if otype is _MARKET or otype is _STOP_MARKET or otype is _TRAILING:
            if tif is _GTD and otype is _MARKET:
                raise _Reject("invalid_time_in_force", "a market order cannot be GTD")
            if tif is _FOK and otype is not _MARKET:
                raise _Reject("invalid_time_in_force", f"{otype} cannot be FOK")
        if otype is _STOP_LIMIT and tif is _FOK:
                raise _Reject("invalid_time_in_force", f"{otype} cannot be FOK")
        if otype is _OCO and tif is not _GTC and tif is not _GTD:
            raise _Reject("invalid_time_in_force", "an OCO is GTC or GTD")
        if tif is _GTD:
            if cmd.expires_at is None:
                raise _Reject("missing_expiry", "GTD needs expires_at")
            if cmd.expires_at <= self._now:
                raise _Reject("expiry_in_past", "expires_at is not after the current time")
        elif cmd.expires_at is not None:
            raise _Reject("unexpected_expiry", "only GTD takes expires_at")
        if otype is _OCO:
            assert price is not None and stop is not None
            if (stop <= price) if buy else (stop >= price):
                raise _Reject("oco_bad_prices", "an OCO's stop must be beyond its limit")
            best = self._top(1) if buy else self._top(0)
            if best is not None and ((price >= best) if buy else (price <= -best)):
                raise _Reject("oco_limit_would_match", "an OCO's limit leg must rest")
        last = self._last
        if needs_stop and last is not None:
            assert stop is not None
            if (last >= stop) if buy else (last <= stop):
                raise _Reject("stop_would_trigger", f"last price {last} is past stop {stop}")

    def _initial_hold(self, o: _Order) -> int:
        """What an order holds when it is accepted (and sets its ``hold_price``).

        Sells hold their quantity. Buys hold ``price x quantity`` at the highest
        price they may pay: the limit (limit, stop-limit), the higher of the two
        OCO legs, or, for a market-priced stop (stop-market, trailing, an OCO's
        market stop leg), the stop plus the pair's market protection. A triggered
        stop spends no more than it holds, so a fill never needs funds the book
        did not hold when the order was placed. A market buy holds the user's
        whole available quote and returns what it did not spend."""
        if not o.buy:
            return o.qty
        otype = o.cmd.order_type
        pair = self.pair
        if otype is _LIMIT or otype is _STOP_LIMIT:
            o.hold_price = o.price
        elif otype is _OCO:
            assert o.price is not None and o.cmd.stop_price is not None
            leg = o.cmd.stop_limit_price
            if leg is None:
                leg = pair.protected_price(o.cmd.stop_price)
            o.hold_price = max(o.price, leg)
        elif otype is _STOP_MARKET:
            assert o.cmd.stop_price is not None
            o.hold_price = pair.protected_price(o.cmd.stop_price)
        elif otype is _TRAILING:
            last = self._last
            if last is None:  # no trade yet: the stop is not known, hold at the top
                o.hold_price = pair.max_price
            else:
                amount = o.cmd.trail_amount
                offset = amount if amount is not None else last * (o.cmd.trail_bps or 0) // BPS
                o.hold_price = pair.protected_price(last + offset)
        else:  # market
            assert self.ledger is not None
            return self.ledger.available(o.user, pair.quote_asset)
        assert o.hold_price is not None
        return pair.quote_hold(o.hold_price, o.qty)

    def _cancel(self, cmd: CancelOrder, events: list[Event]) -> None:
        o = self._orders.get(cmd.order_id)
        if o is None:
            events.append(OrderRejected(cmd.order_id, "unknown_order", "", "cancel"))
            return
        if cmd.user_id is not None and cmd.user_id != o.user:
            events.append(OrderRejected(cmd.order_id, "not_owner", "", "cancel"))
            return
        events.append(_new(OrderCancelled, (o.oid, o.rem, "user")))
        state = o.state
        if state == RESTING or state == OCO:
            self._unbook(o)
        elif state == PENDING and o.cmd.order_type is _TRAILING:
            del self._trailing[o.oid]
        o.state = DONE
        del self._orders[o.oid]
        if o.hold:
            self._release(o)

    def _amend(self, cmd: AmendOrder, events: list[Event]) -> None:
        o = self._orders.get(cmd.order_id)
        if o is None:
            events.append(OrderRejected(cmd.order_id, "unknown_order", "", "amend"))
            return
        if cmd.user_id is not None and cmd.user_id != o.user:
            events.append(OrderRejected(cmd.order_id, "not_owner", "", "amend"))
            return
        new = cmd.quantity
        if new % self.pair.step_size:
            events.append(OrderRejected(o.oid, "quantity_not_on_step", "", "amend"))
            return
        if not o.filled < new < o.qty:
            events.append(
                OrderRejected(o.oid, "amend_not_reduce", "quantity must go down", "amend")
            )
            return
        d = o.qty - new
        events.append(OrderReduced(o.oid, d, "amend"))
        self._reduce(o, d)

    def _deposit(self, cmd: Deposit, events: list[Event]) -> None:
        if self.ledger is None:
            raise TypeError("Deposit needs an engine with a ledger")
        self.ledger.deposit(cmd.user_id, cmd.asset, cmd.amount, cmd.ref or "deposit")
        events.append(FundsDeposited(cmd.user_id, cmd.asset, cmd.amount))

    def _set_funds(self, cmd: SetFunds, events: list[Event]) -> None:
        ledger = self.ledger
        if ledger is None:
            raise TypeError("SetFunds needs an engine with a ledger")
        if cmd.available < 0:
            raise ValueError("an available balance is never negative")
        change = cmd.available - ledger.available(cmd.user_id, cmd.asset)
        ref = f"funds:{cmd.user_id}:{cmd.asset}"
        if change > 0:
            ledger.deposit(cmd.user_id, cmd.asset, change, ref)
        elif change < 0:
            ledger.withdraw(cmd.user_id, cmd.asset, -change, ref)
        events.append(FundsSet(cmd.user_id, cmd.asset, cmd.available, change))

    # -------------------------------------------------------------- matching

    def _top(self, side: int) -> int | None:
        """The best heap key of a side (bids: -price), dropping stale keys."""
        heap = self._heaps[side]
        levels = self._level_qty[side]
        while heap:
            key = heap[0]
            if (-key if side == 0 else key) in levels:
                return key
            heapq.heappop(heap)
        return None

    def _fok_fillable(self, o: _Order) -> bool:
        """Whether a FOK taker would fill in full (self-trade rules included)."""
        need = o.rem
        side = 1 if o.buy else 0
        levels = self._levels[side]
        limit = o.price
        prices = sorted(self._level_qty[side], reverse=not o.buy)
        stp = o.cmd.stp or self.default_stp
        budget = None
        if self.ledger is not None and o.buy and limit is None:
            budget = self.ledger.available(o.user, self.pair.quote_asset)
        cost = 0
        for price in prices:
            if limit is not None and ((price > limit) if o.buy else (price < limit)):
                break
            for m in levels[price]:
                if m.state != RESTING and m.state != OCO:
                    continue
                if m.user == o.user:
                    if stp is STP.CANCEL_OLDEST:
                        continue
                    return False
                x = m.rem if m.rem < need else need
                need -= x
                cost += self.pair.quote_amount(price, x)
                if budget is not None and cost > budget:
                    return False
                if need <= 0:
                    return True
        return False

    def _take(self, o: _Order, events: list[Event]) -> None:
        """Match the in-flight taker ``o`` against the other side."""
        buy = o.buy
        side = 1 if buy else 0
        levels = self._levels[side]
        level_qty = self._level_qty[side]
        heap = self._heaps[side]
        limit = o.price
        key_limit = 0
        if limit is not None:
            key_limit = limit if buy else -limit
        ledger = self.ledger
        budget = ledger is not None and buy
        scale = self.pair.price_scale
        maker_bps, taker_bps = self._fees
        orders = self._orders
        trailing = self._trailing
        ts = self._now
        taker_id, taker_user = o.oid, o.user
        taker_side = _BUY if buy else _SELL
        heappop = heapq.heappop
        while o.rem:
            while heap:
                key = heap[0]
                price = key if buy else -key
                if price in level_qty:
                    break
                heappop(heap)
            else:
                return
            if limit is not None and key > key_limit:
                return
            queue = levels[price]
            while queue:
                m = queue[0]
                if m.state != RESTING and m.state != OCO:
                    queue.popleft()
                    continue
                rem = o.rem
                if m.user == taker_user:
                    self._self_trade(o, m, events)
                    if not o.rem or o.state == DONE:
                        break
                    continue
                x = m.rem if m.rem < rem else rem
                quote = price * x // scale
                if budget and quote > o.hold:
                    x = o.hold * scale // price
                    x -= x % self.pair.step_size
                    if x <= 0:
                        o.reason = "insufficient_funds"
                        break
                    quote = price * x // scale
                if buy:
                    taker_fee = -(-x * taker_bps // BPS) if taker_bps else 0
                    maker_fee = -(-quote * maker_bps // BPS) if maker_bps else 0
                else:
                    taker_fee = -(-quote * taker_bps // BPS) if taker_bps else 0
                    maker_fee = -(-x * maker_bps // BPS) if maker_bps else 0
                self._trade_id += 1
                events.append(_new(Fill, (
                    self._trade_id, m.oid, taker_id, m.user, taker_user, taker_side,
                    price, x, quote, maker_fee, taker_fee, ts,
                )))
                o.rem = rem - x
                o.filled += x
                m.rem -= x
                m.filled += x
                level_qty[price] -= x
                self._last = price
                if trailing:
                    self._trail(price)
                if ledger is not None:
                    if buy:
                        o.hold -= quote
                        m.hold -= x
                        buyer, seller = taker_user, m.user
                        buyer_fee, seller_fee = taker_fee, maker_fee
                    else:
                        o.hold -= x
                        m.hold -= quote
                        buyer, seller = m.user, taker_user
                        buyer_fee, seller_fee = maker_fee, taker_fee
                    ledger.settle_fill(
                        ref=f"trade:{self._trade_id}", buyer=buyer, seller=seller,
                        base_asset=self.pair.base_asset, quote_asset=self.pair.quote_asset,
                        quantity=x, quote_amount=quote, buyer_fee=buyer_fee, seller_fee=seller_fee,
                    )
                if m.state == OCO:
                    m.state = RESTING
                    events.append(OcoLegCancelled(m.oid, "stop"))
                if not m.rem:
                    queue.popleft()
                    m.state = DONE
                    del orders[m.oid]
                    if m.hold:
                        self._release(m)
                if o.reason is not None or not o.rem:
                    break
            if level_qty.get(price) == 0:
                del level_qty[price]
                del levels[price]
                heappop(heap)
            if o.reason is not None or o.state == DONE:
                return

    def _self_trade(self, o: _Order, m: _Order, events: list[Event]) -> None:
        """Taker ``o`` meets maker ``m`` of the same user (``m`` heads its queue)."""
        stp = o.cmd.stp or self.default_stp
        if stp is STP.DECREMENT:
            d = min(o.rem, m.rem)
            events.append(OrderReduced(o.oid, d, "self_trade"))
            events.append(OrderReduced(m.oid, d, "self_trade"))
            self._reduce(m, d)
            self._reduce(o, d)
            if not o.rem:
                o.state = DONE
            return
        if stp is STP.CANCEL_OLDEST or stp is STP.CANCEL_BOTH:
            events.append(OrderCancelled(m.oid, m.rem, "self_trade"))
            self._remove_live(m)
        if stp is STP.CANCEL_NEWEST or stp is STP.CANCEL_BOTH:
            events.append(OrderCancelled(o.oid, o.rem, "self_trade"))
            o.state = DONE

    def _finish_taker(self, o: _Order, events: list[Event]) -> None:
        """After matching: rest the taker, or cancel its remainder, or close it."""
        if o.state == DONE or not o.rem:
            self._close(o)
            return
        if o.reason is not None:
            events.append(OrderCancelled(o.oid, o.rem, o.reason))
            self._close(o)
        elif o.price is None:
            events.append(OrderCancelled(o.oid, o.rem, "market_unfilled"))
            self._close(o)
        elif o.cmd.time_in_force is _IOC or o.cmd.time_in_force is _FOK:
            events.append(OrderCancelled(o.oid, o.rem, "ioc"))
            self._close(o)
        else:
            self._rest(o, events)
            if o.cmd.time_in_force is _GTD and o.cmd.order_type is _LIMIT:
                assert o.cmd.expires_at is not None
                heapq.heappush(self._expiry, (o.cmd.expires_at, o.seq, o.oid))

    def _rest(self, o: _Order, events: list[Event]) -> None:
        price = o.price
        assert price is not None
        side = 0 if o.buy else 1
        level_qty = self._level_qty[side]
        if price in level_qty:
            self._levels[side][price].append(o)
            level_qty[price] += o.rem
        else:
            self._levels[side][price] = deque((o,))
            level_qty[price] = o.rem
            heapq.heappush(self._heaps[side], -price if side == 0 else price)
        o.state = RESTING
        events.append(_new(OrderRested, (o.oid, price, o.rem)))

    def _unbook(self, o: _Order, *, purge: bool = False) -> None:
        """Take a resting order's quantity out of its level; drop the level when it
        is empty. The deque entry of a done order is skipped lazily; ``purge``
        removes it now, for an order that lives on (an OCO whose stop fired)."""
        side = 0 if o.buy else 1
        price = o.price
        assert price is not None
        level_qty = self._level_qty[side]
        left = level_qty[price] - o.rem
        if left:
            level_qty[price] = left
            if purge:
                self._levels[side][price].remove(o)
        else:
            del level_qty[price]
            del self._levels[side][price]

    def _remove_live(self, o: _Order) -> None:
        """Cancel or expire a live order, wherever it is; release its hold."""
        if o.state == RESTING or o.state == OCO:
            self._unbook(o)
        if o.cmd.order_type is _TRAILING:
            self._trailing.pop(o.oid, None)
        o.state = DONE
        self._close(o)

    def _close(self, o: _Order) -> None:
        o.state = DONE
        self._orders.pop(o.oid, None)
        if o.hold:
            self._release(o)

    def _release(self, o: _Order) -> None:
        assert self.ledger is not None
        if not self._folding:  # folding: the ledger has its own journal
            asset = self._quote if o.buy else self._base
            self.ledger.release(o.user, asset, o.hold, f"release:{o.oid}")
        o.hold = 0

    def _reduce(self, o: _Order, d: int) -> None:
        """Lower ``o``'s quantity and remaining quantity by ``d`` with no trade; free
        its excess hold, or close it at zero (an in-flight taker is closed by its
        caller)."""
        o.qty -= d
        if o.state == RESTING or o.state == OCO:
            if o.rem == d:
                self._unbook(o)
            else:
                assert o.price is not None
                self._level_qty[0 if o.buy else 1][o.price] -= d
        o.rem -= d
        if not o.rem:
            if o.state != INFLIGHT:
                self._trailing.pop(o.oid, None)
                self._close(o)
            return
        if self.ledger is not None and o.hold:
            if not o.buy:
                excess = o.hold - o.rem
            elif o.hold_price is not None:
                excess = o.hold - self.pair.quote_hold(o.hold_price, o.rem)
            else:
                return
            if excess > 0:
                if not self._folding:
                    asset = self.pair.quote_asset if o.buy else self.pair.base_asset
                    self.ledger.release(o.user, asset, excess, f"release:{o.oid}")
                o.hold -= excess

    # -------------------------------------------------------------- triggers

    def _trail(self, price: int) -> None:
        for o in self._trailing.values():
            ref = o.ref
            if ref is None or (price < ref if o.buy else price > ref):
                o.ref = price

    def _trail_stop(self, o: _Order) -> int | None:
        ref = o.ref
        if ref is None:
            return None
        amount = o.cmd.trail_amount
        offset = amount if amount is not None else ref * (o.cmd.trail_bps or 0) // BPS
        return ref + offset if o.buy else ref - offset

    def _run_triggers(self, events: list[Event]) -> None:
        """Fire every stop the last price has crossed, in placement order, until none."""
        while True:
            last = self._last
            if last is None:
                return
            fired: list[_Order] = []
            orders = self._orders
            buy_stops, sell_stops = self._buy_stops, self._sell_stops
            while buy_stops and buy_stops[0][0] <= last:
                _, seq, oid = heapq.heappop(buy_stops)
                o = orders.get(oid)
                if o is not None and o.seq == seq and (o.state == PENDING or o.state == OCO):
                    fired.append(o)
            while sell_stops and -sell_stops[0][0] >= last:
                _, seq, oid = heapq.heappop(sell_stops)
                o = orders.get(oid)
                if o is not None and o.seq == seq and (o.state == PENDING or o.state == OCO):
                    fired.append(o)
            for o in list(self._trailing.values()):
                stop = self._trail_stop(o)
                if stop is not None and ((last >= stop) if o.buy else (last <= stop)):
                    del self._trailing[o.oid]
                    fired.append(o)
            if not fired:
                return
            fired.sort(key=lambda o: o.seq)
            for o in fired:
                # an earlier one may have cancelled it (self-trade) or filled an
                # OCO's limit leg, which cancels its stop leg
                if o.state != PENDING and o.state != OCO:
                    continue
                self._fire(o, last, events)

    def _fire(self, o: _Order, last: int, events: list[Event]) -> None:
        events.append(_new(OrderTriggered, (o.oid, last)))
        if o.state == OCO:
            self._unbook(o, purge=True)
            events.append(OcoLegCancelled(o.oid, "limit"))
            o.price = o.cmd.stop_limit_price
        elif o.cmd.order_type is _STOP_MARKET or o.cmd.order_type is _TRAILING:
            o.price = None
        self._seq += 1
        o.seq = self._seq
        o.state = INFLIGHT
        if o.price is None:
            o.hold_price = None
        self._take(o, events)
        self._finish_taker(o, events)

    def _expire(self, events: list[Event]) -> None:
        heap, now, orders = self._expiry, self._now, self._orders
        while heap and heap[0][0] <= now:
            expires, _, oid = heapq.heappop(heap)
            o = orders.get(oid)
            if o is None or o.cmd.expires_at != expires or o.state == INFLIGHT:
                continue
            events.append(OrderExpired(oid, o.rem))
            self._remove_live(o)

    # ------------------------------------------------------------------ misc

    def _view(self, o: _Order) -> OrderView:
        side = _BUY if o.buy else _SELL
        stop = o.cmd.stop_price
        if o.cmd.order_type is _TRAILING:
            stop = self._trail_stop(o)
        return OrderView(
            o.oid, o.user, side, o.cmd.order_type, o.qty, o.filled, o.rem, o.price, stop,
            _STATE_NAMES.get(o.state, "done"), o.hold,
        )
