"""The EVM watcher: follows the head, mirrors the Escrow contract's events
into the database, counts confirmations and handles reorgs.

One *step* is one database transaction (the cursor row is locked for its
duration, so two watcher processes never interleave):

1. check that the stored head is still on the chain (its hash at that
   height); if not, walk back over the stored blocks to the common ancestor,
   delete the events and blocks above it (a reorg deeper than
   ``finality_depth`` instead halts the watcher: ``ChainCursor.halted`` is set
   and ReorgTooDeepError raised);
2. read the next range of at most ``log_range`` blocks: the headers it needs
   first, then one ``eth_getLogs`` for the range, then the headers of the
   blocks with events; every log's block hash must match its header (else the
   chain moved under us: the step is dropped and retried);
3. insert blocks and events (COPY), move the cursor, prune old blocks, and
   call ``on_confirmed(session, chain, escrow_keys, confirmed_block)`` for
   every escrow with events that became confirmed or were rolled back.

Because step 1 runs first on every step, a reorg that happened while the
node was down is found by the first step after start.

An event in block ``b`` is confirmed when ``head - b + 1 >= confirmations``
(``confirmed_block = head - confirmations + 1``), ``head`` being the newest
block the watcher has checked, not merely seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from node import indexer
from node.chains.base import BlockHeader, EscrowEvent, NotSupportedError
from node.chains.evm.adapter import EvmAdapter
from node.errors import ChainError, ReorgTooDeepError

log = logging.getLogger(__name__)

OnConfirmed = Callable[[Session, str, set[str], int], None]


class WatcherSettings(Protocol):
    """The fields of node.config.EvmSettings the watcher reads."""

    start_block: int
    confirmations: int
    finality_depth: int
    log_range: int
    poll_interval_ms: int


PRUNE_EVERY = 32


@dataclass(frozen=True, slots=True)
class StepResult:
    head: int  # the watcher's head after the step
    tip: int  # the chain's tip as seen by the step
    events: int  # events inserted
    blocks: int  # blocks stored
    reorg_depth: int = 0  # blocks rolled back (0: no reorg)
    retried: bool = False  # the chain moved during the step; nothing written

    @property
    def caught_up(self) -> bool:
        return not self.retried and self.head >= self.tip


class _ChainMoved(Exception):
    """The chain changed between two reads of one step: drop it, retry."""


class _TooDeep(Exception):
    pass


class EvmWatcher:
    def __init__(
        self,
        adapter: EvmAdapter,
        sessions: sessionmaker[Session],
        *,
        start_block: int = 0,
        confirmations: int = 2,
        finality_depth: int = 64,
        log_range: int = 2000,
        poll_interval_s: float = 1.0,
        on_confirmed: OnConfirmed | None = None,
        use_websocket: bool = True,
    ) -> None:
        if confirmations < 1 or finality_depth < 1 or log_range < 1:
            raise ValueError("confirmations, finality_depth and log_range must be >= 1")
        self.adapter = adapter
        self.sessions = sessions
        self.chain = adapter.chain_key
        self.start_block = start_block
        self.confirmations = confirmations
        self.finality_depth = finality_depth
        self.log_range = log_range
        self.poll_interval_s = poll_interval_s
        self.on_confirmed = on_confirmed
        self.use_websocket = use_websocket
        self._pruned_below: int | None = None

    @classmethod
    def from_settings(
        cls,
        adapter: EvmAdapter,
        sessions: sessionmaker[Session],
        settings: WatcherSettings,
        *,
        on_confirmed: OnConfirmed | None = None,
    ) -> EvmWatcher:
        """Build from ``node.config.EvmSettings`` (or anything shaped like it)."""
        return cls(
            adapter,
            sessions,
            start_block=settings.start_block,
            confirmations=settings.confirmations,
            finality_depth=settings.finality_depth,
            log_range=settings.log_range,
            poll_interval_s=settings.poll_interval_ms / 1000,
            on_confirmed=on_confirmed,
        )

    # --- one step -----------------------------------------------------

    def step(self, hint: BlockHeader | None = None) -> StepResult:
        """One transaction: reorg check (+ rollback), then the next range.

        ``hint`` is the newest head the websocket announced: when it is the
        child of the stored head, the step trusts it as the tip and as that
        block's header (it still checks every log's block hash against it),
        which spares two round trips on the path of every new block."""
        halted: str | None = None
        try:
            with self.sessions() as session, session.begin():
                if session.get_bind().dialect.name == "postgresql":
                    # What a step writes is a copy of the chain (and what
                    # follows from it): a commit lost in a PostgreSQL crash
                    # leaves the cursor behind, and the next step reads those
                    # blocks again. So the step does not wait for the WAL
                    # flush, which is most of a step's time on a busy disk.
                    # (Nothing else the node writes is relaxed like this.)
                    session.execute(text("SET LOCAL synchronous_commit = off"))
                result = self._step(session, hint)
                if isinstance(result, str):
                    halted = result
                    indexer.halt(session, self.chain, halted)
        except _ChainMoved as exc:
            log.info("%s: chain moved during a step (%s); retrying", self.chain, exc)
            return StepResult(head=-1, tip=-1, events=0, blocks=0, retried=True)
        if halted is not None:
            log.critical("ALERT %s watcher halted: %s", self.chain, halted)
            raise ReorgTooDeepError(halted, chain=self.chain)
        assert isinstance(result, StepResult)
        return result

    def _step(self, s: Session, hint: BlockHeader | None = None) -> StepResult | str:
        chain = self.chain
        cur = indexer.lock_cursor(s, chain)
        if cur is None:
            start = self.adapter.header(self.start_block - 1) if self.start_block > 0 else None
            cur = indexer.create_cursor(s, chain, start, self.start_block - 1)
        if cur.halted:
            raise ReorgTooDeepError(cur.halted, chain=chain)

        old_head, head, head_hash = cur.head_number, cur.head_number, cur.head_hash
        fd = self.finality_depth
        if (
            hint is not None
            and head >= 0
            and hint.number == head + 1
            and hint.parent_hash == head_hash
        ):
            # the announced head extends ours: it is the tip, and the stored
            # head is on the chain (its child says so)
            tip = hint.number
            hdrs: dict[int, BlockHeader] = {head: BlockHeader(head, head_hash, "", 0),
                                            tip: hint}
        else:
            tip = self.adapter.head()
            hdrs = {}
        frm = head + 1
        to = min(tip, head + self.log_range)
        window_lo = max(frm, tip - fd)

        needed: set[int] = set()
        if head >= 0:
            needed.add(head)
        if frm <= to:
            needed.update((frm, to))
            needed.update(range(window_lo, to + 1))
        needed -= hdrs.keys()
        if needed:
            hdrs.update(self.adapter.headers(sorted(needed)))

        reorg_depth = 0
        ancestor = head
        rolled_back: set[str] = set()
        if head >= 0 and (head not in hdrs or hdrs[head].hash != head_hash):
            found = self._find_ancestor(s, head, hdrs)
            if found is None:
                return (
                    f"reorg deeper than finality_depth={fd}: no stored block in "
                    f"[{head - fd}, {head}] is on the chain any more (tip {tip})"
                )
            ancestor, ancestor_hash = found
            reorg_depth = head - ancestor
            log.warning("%s: reorg of %d blocks; rolling back to %d", chain, reorg_depth, ancestor)
            rolled_back = indexer.rollback_above(s, chain, ancestor)
            indexer.set_head(s, chain, ancestor, ancestor_hash)
            head, head_hash = ancestor, ancestor_hash
            frm = head + 1
            to = min(tip, head + self.log_range)
            window_lo = max(frm, tip - fd)
            more = {frm, to, *range(window_lo, to + 1)} if frm <= to else set()
            if more:
                hdrs = self.adapter.headers(sorted(more))

        n_events = n_blocks = 0
        newly: list[EscrowEvent] = []
        if frm <= to:
            if frm not in hdrs or to not in hdrs:
                raise _ChainMoved(f"blocks {frm}/{to} not served")
            if head >= 0 and hdrs[frm].parent_hash != head_hash:
                raise _ChainMoved(f"block {frm} does not follow the stored head")
            # the stored window must be one chain
            for n in range(window_lo + 1, to + 1):
                if hdrs[n].parent_hash != hdrs[n - 1].hash:
                    raise _ChainMoved(f"block {n} does not follow {n - 1}")
            batch = self.adapter.events(frm, to)
            newly = list(batch.events)
            for n, bh in batch.headers.items():  # adapters that read whole blocks
                hdrs.setdefault(n, bh)
            missing = sorted({d.block_number for d in newly} - hdrs.keys())
            if missing:
                hdrs.update(self.adapter.headers(missing))
            for d in newly:
                eh = hdrs.get(d.block_number)
                if eh is None or eh.hash != d.block_hash:
                    raise _ChainMoved(f"log in block {d.block_number} is from another branch")
            store: dict[int, BlockHeader] = {
                n: h for n, h in hdrs.items() if frm <= n <= to and (n >= window_lo or n == to)
            }
            for d in newly:
                store[d.block_number] = hdrs[d.block_number]
            n_blocks = indexer.insert_blocks(s, chain, store.values())
            n_events = indexer.insert_events(s, chain, newly)
            head, head_hash = to, hdrs[to].hash
            indexer.set_head(s, chain, head, head_hash)

        # blocks no longer needed for reorg detection
        # (in batches of PRUNE_EVERY blocks: one DELETE per block would cost a
        # round trip on the deposit-to-funded path for nothing)
        cut = head - fd
        if self._pruned_below is None or cut >= self._pruned_below + PRUNE_EVERY:
            indexer.prune_blocks(s, chain, cut, self._pruned_below)
            self._pruned_below = cut

        # confirmations: events in (low, confirmed] became confirmed this step
        conf = self.confirmations
        confirmed = head - conf + 1
        previously = old_head - conf + 1
        low = min(previously, ancestor)
        touched = set(rolled_back)
        if confirmed > low:
            touched |= {e.escrow_key for e in newly if e.escrow_key and e.block_number <= confirmed}
            # events stored by earlier steps that reached their confirmations now
            touched |= indexer.keys_in_range(s, chain, low, min(confirmed, frm - 1))
        if touched and self.on_confirmed is not None:
            self.on_confirmed(s, chain, touched, confirmed)
        return StepResult(head=head, tip=tip, events=n_events, blocks=n_blocks,
                          reorg_depth=reorg_depth)

    def _find_ancestor(
        self, s: Session, head: int, seen: dict[int, BlockHeader]
    ) -> tuple[int, str] | None:
        """The newest stored block within finality_depth of ``head`` that is
        still on the chain; (-1, NO_HASH) when indexing started at genesis and
        everything was replaced."""
        low = head - self.finality_depth
        stored = indexer.stored_hashes(s, self.chain, max(low, 0), head)
        chunk = 16
        i = 0
        while i < len(stored):
            part = stored[i : i + chunk]
            want = [n for n, _ in part if n not in seen]
            if want:
                seen = {**seen, **self.adapter.headers(want)}
            for n, h in part:
                on_chain = seen.get(n)
                if on_chain is not None and on_chain.hash == h:
                    return n, h
            i += chunk
            chunk *= 4
        if low < 0 and self.start_block == 0:
            return -1, indexer.NO_HASH
        return None

    # --- loops --------------------------------------------------------

    def sync(self, *, max_steps: int | None = None) -> StepResult:
        """Step until the watcher's head reaches the chain's tip (as seen by
        the last step). Raises ReorgTooDeepError if halted."""
        steps = 0
        while True:
            r = self.step()
            steps += 1
            if r.caught_up or (max_steps is not None and steps >= max_steps):
                return r

    def run(self, stop: threading.Event) -> None:
        """Follow the chain until ``stop`` is set. New heads arrive over the
        websocket when there is one; a poll every ``poll_interval_s`` backs it
        up. Errors reading the chain or the database are logged and retried
        with backoff; only a halt (ReorgTooDeepError) ends the loop."""
        sub = None
        if self.use_websocket:
            try:
                sub = self.adapter.subscribe_heads()
            except NotSupportedError:
                log.info("%s: no websocket; polling every %.2fs", self.chain,
                         self.poll_interval_s)
        backoff = 0.5
        used_hint: BlockHeader | None = None
        try:
            while not stop.is_set():
                # an announced head is used once: a step that found the chain
                # moved under it retries the long way
                hint = sub.latest if sub is not None else None
                if hint is used_hint:
                    hint = None
                used_hint = hint
                try:
                    r = self.step(hint)
                    backoff = 0.5
                except ReorgTooDeepError:
                    raise
                except (ChainError, SQLAlchemyError, OSError) as exc:
                    log.warning("%s watcher step failed: %r; retrying in %.1fs",
                                self.chain, exc, backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if r.caught_up:
                    if sub is not None:
                        sub.wait(self.poll_interval_s)
                    else:
                        stop.wait(self.poll_interval_s)
                elif r.retried:
                    time.sleep(0.05)
        finally:
            if sub is not None:
                sub.close()
