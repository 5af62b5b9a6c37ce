"""The custody ledger: double-entry, in the database, integers in base units.

Sign convention
---------------
A leg's ``amount`` is *added to its account's balance*, and an account's
balance is always the sum of its legs. The legs of one entry sum to zero per
asset, so per asset the balances of all accounts sum to zero too.

- What the node owes is held in *claim* accounts with positive balances:
  ``user:<id>:available``, ``user:<id>:held`` (funds locked by open orders or
  pending withdrawals), ``fees`` (what the node earned).
- Where the coins are is held in the node's *holding* accounts
  (``node:deposit``, ``node:hot``, ``node:inflight`` ...; the asset is a
  separate column), which carry *negative* balances: minus the coins at that
  place. A deposit of 5 is ``user:7:available +5, node:deposit -5``.
  ``reconcile`` compares minus their sum with what the chain says.
- ``user:<id>:debt`` is the only user account that may go negative: a reorg
  that reverses a deposit the user already spent debits what is available and
  books the rest there (see ``node.custody.deposits``); later credits repay it.

``available`` and ``held`` accounts never go below zero: an entry that would
take one there is refused whole (``InsufficientFundsError``).

Concurrency: the balance of each (account, asset) is cached in
``custody_balances``; ``post_entry`` locks the rows it touches with
SELECT ... FOR UPDATE in a fixed order (no deadlocks between two entries) and
updates them in the caller's transaction. ``check_balances`` proves the cache
equals the sum of the legs. Nothing here commits: the caller's transaction
decides, so a trade fill and its ledger entry commit or roll back together.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from node.custody.errors import InsufficientFundsError, RefConflictError, UnbalancedEntryError
from node.db.models import utcnow
from node.db.models_custody import CustodyBalance, CustodyEntry, CustodyLeg

Bucket = Literal["available", "held", "debt"]

FEES = "fees"
NODE_DEPOSIT = "node:deposit"  # coins on users' deposit addresses
NODE_HOT = "node:hot"  # coins in the hot wallet
NODE_COLD = "node:cold"  # coins sent to the cold address (the node has no key)
NODE_INFLIGHT = "node:inflight"  # coins of transactions broadcast, not yet confirmed
NODE_NETWORK_FEES = "expense:network-fees"  # miner / gas fees the node paid

MAX_ACCOUNT = 120
MAX_ASSET = 16
MAX_REF = 200
MAX_KIND = 32


class Leg(NamedTuple):
    account: str  # e.g. user_account(7, "available"), "node:hot", "fees"
    asset: str  # crypto_currencies symbol, e.g. "BTC", "ETH", "USDC-SOL"
    amount: int  # base units, added to the account's balance; != 0


def user_account(user_id: int, bucket: Bucket) -> str:
    """``user:<id>:<bucket>``: the user's ``available``, ``held`` or ``debt`` account."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise UnbalancedEntryError("user ids are positive integers", field="user_id")
    if bucket not in ("available", "held", "debt"):
        raise UnbalancedEntryError(f"unknown bucket {bucket!r}", field="bucket")
    return f"user:{user_id}:{bucket}"


def is_guarded(account: str) -> bool:
    """Accounts that may never go below zero: users' available and held."""
    return account.startswith("user:") and account.endswith((":available", ":held"))


# --- pure checks --------------------------------------------------------------


def net_legs(legs: Sequence[Leg]) -> dict[tuple[str, str], int]:
    """Validate an entry's legs and return their net per (account, asset).

    Raises ``UnbalancedEntryError`` for no legs, a malformed leg, or a nonzero
    sum for some asset. Pure."""
    if not legs:
        raise UnbalancedEntryError("an entry has at least one leg")
    per_asset: dict[str, int] = defaultdict(int)
    net: dict[tuple[str, str], int] = defaultdict(int)
    for leg in legs:
        account, asset, amount = leg
        if not isinstance(account, str) or not 0 < len(account) <= MAX_ACCOUNT:
            raise UnbalancedEntryError("a leg's account is a non-empty string", account=account)
        if not isinstance(asset, str) or not 0 < len(asset) <= MAX_ASSET:
            raise UnbalancedEntryError("a leg's asset is a non-empty symbol", asset=asset)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise UnbalancedEntryError("a leg's amount is a nonzero integer", account=account)
        per_asset[asset] += amount
        net[(account, asset)] += amount
    unbalanced = {a: s for a, s in per_asset.items() if s != 0}
    if unbalanced:
        raise UnbalancedEntryError(
            "the legs do not sum to zero", sums={a: str(s) for a, s in sorted(unbalanced.items())}
        )
    return dict(net)


def digest(kind: str, legs: Sequence[Leg]) -> str:
    """The canonical fingerprint of an entry (kind and legs, order-free)."""
    canon = "\n".join(
        f"{a}|{s}|{n}" for a, s, n in sorted((leg.account, leg.asset, leg.amount) for leg in legs)
    )
    return hashlib.sha256(f"{kind}\n{canon}".encode()).hexdigest()


# --- posting ------------------------------------------------------------------


def _existing(session: Session, ref: str, fingerprint: str) -> int | None:
    row = session.execute(
        select(CustodyEntry.id, CustodyEntry.digest).where(CustodyEntry.ref == ref)
    ).first()
    if row is None:
        return None
    if row.digest != fingerprint:
        raise RefConflictError("an entry with this ref exists with different legs", ref=ref)
    return int(row.id)


def _ensure_rows(session: Session, keys: Iterable[tuple[str, str]]) -> None:
    rows = [{"account": a, "asset": s, "balance": 0, "updated_at": utcnow()} for a, s in keys]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(CustodyBalance).on_conflict_do_nothing(), rows)
    elif dialect == "sqlite":
        session.execute(sqlite.insert(CustodyBalance).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - the two supported backends are above
        for row in rows:
            if session.get(CustodyBalance, (row["account"], row["asset"])) is None:
                session.execute(insert(CustodyBalance), [row])


def post_entry(session: Session, *, ref: str, kind: str, legs: Sequence[Leg]) -> int:
    """Post one balanced entry in the caller's transaction; return its id.

    Idempotent on ``ref``: the same ref with the same kind and legs returns the
    first entry's id and posts nothing; different legs raise
    ``RefConflictError``. Refuses (``InsufficientFundsError``) to take a
    user's available or held account below zero."""
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF:
        raise UnbalancedEntryError(f"an entry's ref is a string of 1..{MAX_REF} characters")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND:
        raise UnbalancedEntryError(f"an entry's kind is a string of 1..{MAX_KIND} characters")
    net = net_legs(legs)
    fingerprint = digest(kind, legs)
    found = _existing(session, ref, fingerprint)
    if found is not None:
        return found

    keys = sorted(net)
    _ensure_rows(session, keys)
    # One statement; PostgreSQL locks the rows as they leave the sort, so in a
    # fixed (account, asset) order: two entries never deadlock.
    rows = session.execute(
        select(CustodyBalance.account, CustodyBalance.asset, CustodyBalance.balance)
        .where(tuple_(CustodyBalance.account, CustodyBalance.asset).in_(keys))
        .order_by(CustodyBalance.account, CustodyBalance.asset)
        .with_for_update()
    ).all()
    locked: dict[tuple[str, str], int] = {(a, s): int(b) for a, s, b in rows}
    assert len(locked) == len(keys)

    # A concurrent post of the same ref committed while we waited for the locks.
    found = _existing(session, ref, fingerprint)
    if found is not None:
        return found

    for key, amount in net.items():
        after = locked[key] + amount
        if after < 0 and is_guarded(key[0]):
            raise InsufficientFundsError(
                f"{key[0]} holds {locked[key]} {key[1]}, the entry needs {-amount}",
                account=key[0],
                asset=key[1],
                balance=str(locked[key]),
                needed=str(-amount),
            )

    entry_id = int(
        session.execute(
            insert(CustodyEntry)
            .values(ref=ref, kind=kind, digest=fingerprint, created_at=utcnow())
            .returning(CustodyEntry.id)
        ).scalar_one()
    )
    session.execute(
        insert(CustodyLeg),
        [
            {"entry_id": entry_id, "account": leg.account, "asset": leg.asset, "amount": leg.amount}
            for leg in legs
        ],
    )
    now = utcnow()
    for key, amount in net.items():
        if amount:
            session.execute(
                update(CustodyBalance)
                .where(CustodyBalance.account == key[0], CustodyBalance.asset == key[1])
                .values(balance=locked[key] + amount, updated_at=now)
            )
    return entry_id


def hold(session: Session, *, user_id: int, asset: str, amount: int, ref: str) -> int:
    """Move ``amount`` from the user's available to their held account."""
    _positive(amount)
    return post_entry(
        session,
        ref=ref,
        kind="hold",
        legs=[
            Leg(user_account(user_id, "available"), asset, -amount),
            Leg(user_account(user_id, "held"), asset, amount),
        ],
    )


def release_hold(session: Session, *, user_id: int, asset: str, amount: int, ref: str) -> int:
    """Move ``amount`` back from the user's held to their available account."""
    _positive(amount)
    return post_entry(
        session,
        ref=ref,
        kind="release",
        legs=[
            Leg(user_account(user_id, "held"), asset, -amount),
            Leg(user_account(user_id, "available"), asset, amount),
        ],
    )


def _positive(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise UnbalancedEntryError(
            "an amount is a positive integer in base units", amount=str(amount)
        )


# --- reading ------------------------------------------------------------------


def balance(session: Session, account: str, asset: str) -> int:
    """The account's balance: the sum of its legs (read from the checked cache)."""
    bal = session.execute(
        select(CustodyBalance.balance).where(
            CustodyBalance.account == account, CustodyBalance.asset == asset
        )
    ).scalar_one_or_none()
    return int(bal) if bal is not None else 0


def legs_sum(session: Session, account: str, asset: str) -> int:
    """The sum of the account's legs, computed from the legs themselves."""
    amounts = session.execute(
        select(CustodyLeg.amount).where(CustodyLeg.account == account, CustodyLeg.asset == asset)
    ).scalars()
    return sum(int(a) for a in amounts)


def user_balances(session: Session, user_id: int) -> dict[str, dict[str, int]]:
    """``{asset: {"available": n, "held": n, "debt": n}}`` for one user."""
    prefix = f"user:{user_id}:"
    out: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(CustodyBalance.account, CustodyBalance.asset, CustodyBalance.balance).where(
            CustodyBalance.account.startswith(prefix, autoescape=True)
        )
    )
    for account, asset, bal in rows:
        bucket = account.removeprefix(prefix)
        out.setdefault(asset, {"available": 0, "held": 0, "debt": 0})[bucket] = int(bal)
    return out


def totals(session: Session, *, prefix: str = "") -> dict[str, int]:
    """Sum of balances per asset over the accounts whose name starts with ``prefix``."""
    query = select(CustodyBalance.asset, CustodyBalance.balance)
    if prefix:
        query = query.where(CustodyBalance.account.startswith(prefix, autoescape=True))
    out: dict[str, int] = defaultdict(int)
    for asset, bal in session.execute(query):
        out[asset] += int(bal)
    return dict(out)


class BalanceMismatch(NamedTuple):
    account: str
    asset: str
    cached: int
    legs: int


def check_balances(session: Session) -> list[BalanceMismatch]:
    """Every cached balance against the sum of its legs, and every asset's
    accounts summing to zero; returns the mismatches (empty when sound)."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        for account, asset, total in session.execute(
            select(CustodyLeg.account, CustodyLeg.asset, func.sum(CustodyLeg.amount)).group_by(
                CustodyLeg.account, CustodyLeg.asset
            )
        ):
            sums[(account, asset)] = int(total)
    else:
        for account, asset, amount in session.execute(
            select(CustodyLeg.account, CustodyLeg.asset, CustodyLeg.amount)
        ):
            sums[(account, asset)] += int(amount)
    cached = {
        (a, s): int(b)
        for a, s, b in session.execute(
            select(CustodyBalance.account, CustodyBalance.asset, CustodyBalance.balance)
        )
    }
    out = [
        BalanceMismatch(a, s, cached.get((a, s), 0), sums.get((a, s), 0))
        for a, s in sorted(set(sums) | set(cached))
        if cached.get((a, s), 0) != sums.get((a, s), 0)
    ]
    per_asset: dict[str, int] = defaultdict(int)
    for (_, s), total in sums.items():
        per_asset[s] += total
    out += [
        BalanceMismatch("*", s, 0, total) for s, total in sorted(per_asset.items()) if total != 0
    ]
    return out
