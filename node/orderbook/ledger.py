"""A double-entry ledger core: pure, integers in base units.

Accounts are ``(owner, asset, bucket)``. A user has an ``available`` and a
``held`` bucket per asset; the system has ``@fees`` (what trading fees earned)
and ``@custody`` (the counter-account of deposits and withdrawals, so minus its
balance is what the node should hold on chain for that asset).

Every change is one ``Entry`` of postings whose amounts sum to zero *per
asset*; an entry that would leave a user bucket or the fee account negative is
refused whole. Balances are a cache of the entries: ``verify()`` recomputes
them from the journal, and ``Ledger.replay(entries)`` rebuilds a ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from node.orderbook.errors import InsufficientFundsError, LedgerError, UnbalancedEntryError

AVAILABLE = "available"
HELD = "held"
FEES = "@fees"
CUSTODY = "@custody"


class Account(NamedTuple):
    owner: int | str
    asset: str
    bucket: str


class Posting(NamedTuple):
    account: Account
    amount: int


class Entry(NamedTuple):
    entry_id: int
    ref: str
    postings: tuple[Posting, ...]


# NamedTuple's generated __new__ is a Python call; on the hot path accounts,
# postings and entries are built with tuple.__new__ (same class, same values).
_new: Any = tuple.__new__


def _fee_account(asset: str) -> Account:
    return _new(Account, (FEES, asset, FEES))  # type: ignore[no-any-return]


def _custody_account(asset: str) -> Account:
    return _new(Account, (CUSTODY, asset, CUSTODY))  # type: ignore[no-any-return]


class Ledger:
    """Balances per account, always the sum of the journal's postings."""

    def __init__(self) -> None:
        self._balances: dict[Account, int] = {}
        self.entries: list[Entry] = []
        # (user, asset) -> (available, held) accounts, built once: the hot path
        # looks them up instead of constructing them for every order
        self._user_accounts: dict[tuple[int, str], tuple[Account, Account]] = {}

    def _accounts(self, user_id: int, asset: str) -> tuple[Account, Account]:
        pair = self._user_accounts.get((user_id, asset))
        if pair is None:
            pair = (_new(Account, (user_id, asset, AVAILABLE)),
                    _new(Account, (user_id, asset, HELD)))
            self._user_accounts[(user_id, asset)] = pair
        return pair

    # -- reading --------------------------------------------------------------

    def balance(self, account: Account) -> int:
        return self._balances.get(account, 0)

    def available(self, user_id: int, asset: str) -> int:
        pair = self._user_accounts.get((user_id, asset)) or self._accounts(user_id, asset)
        return self._balances.get(pair[0], 0)

    def held(self, user_id: int, asset: str) -> int:
        pair = self._user_accounts.get((user_id, asset)) or self._accounts(user_id, asset)
        return self._balances.get(pair[1], 0)

    def fees(self, asset: str) -> int:
        return self._balances.get(_fee_account(asset), 0)

    def custody_total(self, asset: str) -> int:
        """What the node must hold on chain for ``asset`` (all user and fee balances)."""
        return -self._balances.get(_custody_account(asset), 0)

    def balances(self) -> dict[Account, int]:
        """Every non-zero balance (a copy)."""
        return {a: v for a, v in self._balances.items() if v}

    def asset_totals(self) -> dict[str, int]:
        """Sum of all balances per asset: zero for every asset in a sound ledger."""
        totals: dict[str, int] = {}
        for account, value in self._balances.items():
            totals[account.asset] = totals.get(account.asset, 0) + value
        return totals

    # -- writing --------------------------------------------------------------

    def post(self, ref: str, postings: Sequence[Posting]) -> Entry:
        """Record one balanced entry, or raise and change nothing."""
        per_asset: dict[str, int] = {}
        new: dict[Account, int] = {}
        balances = self._balances
        for account, amount in postings:
            per_asset[account.asset] = per_asset.get(account.asset, 0) + amount
            value = new.get(account, balances.get(account, 0)) + amount
            new[account] = value
        for asset, total in per_asset.items():
            if total:
                raise UnbalancedEntryError(
                    f"entry {ref!r} does not balance for {asset}: {total}",
                    ref=ref, asset=asset, total=total,
                )
        for account, value in new.items():
            if value < 0 and account.owner != CUSTODY:
                error = InsufficientFundsError if account.bucket == AVAILABLE else LedgerError
                raise error(
                    f"entry {ref!r} would leave {account} at {value}",
                    ref=ref, account=str(account), balance=value,
                )
        balances.update(new)
        entry = Entry(len(self.entries) + 1, ref, tuple(postings))
        self.entries.append(entry)
        return entry

    def deposit(self, user_id: int, asset: str, amount: int, ref: str) -> Entry:
        self._positive(amount, ref)
        return self.post(ref, (
            Posting(_custody_account(asset), -amount),
            Posting(Account(user_id, asset, AVAILABLE), amount),
        ))

    def withdraw(self, user_id: int, asset: str, amount: int, ref: str) -> Entry:
        self._positive(amount, ref)
        return self.post(ref, (
            Posting(Account(user_id, asset, AVAILABLE), -amount),
            Posting(_custody_account(asset), amount),
        ))

    def hold(self, user_id: int, asset: str, amount: int, ref: str) -> Entry:
        """Move ``amount`` from available to held; ``InsufficientFundsError`` if short."""
        available, held = self._accounts(user_id, asset)
        return self._move(available, held, amount, ref)

    def try_hold(self, user_id: int, asset: str, amount: int, ref: str) -> bool:
        """``hold`` if the user has ``amount`` available; False (and nothing
        changes) if not. The engine's hot path: one lookup, no exception."""
        if amount <= 0:
            self._positive(amount, ref)
        source, target = (
            self._user_accounts.get((user_id, asset)) or self._accounts(user_id, asset)
        )
        balances = self._balances
        left = balances.get(source, 0) - amount
        if left < 0:
            return False
        balances[source] = left
        balances[target] = balances.get(target, 0) + amount
        entries = self.entries
        entries.append(_new(Entry, (len(entries) + 1, ref, (
            _new(Posting, (source, -amount)), _new(Posting, (target, amount))))))
        return True

    def release(self, user_id: int, asset: str, amount: int, ref: str) -> Entry:
        """Move ``amount`` from held back to available."""
        available, held = self._accounts(user_id, asset)
        return self._move(held, available, amount, ref)

    def _move(self, source: Account, target: Account, amount: int, ref: str) -> Entry:
        """A two-posting entry within one asset (balanced by construction: the
        general checks of ``post`` are skipped on this hot path, ``verify`` redoes them)."""
        if amount <= 0:
            self._positive(amount, ref)
        balances = self._balances
        left = balances.get(source, 0) - amount
        if left < 0:
            error = InsufficientFundsError if source.bucket == AVAILABLE else LedgerError
            raise error(
                f"entry {ref!r} would leave {source} at {left}",
                ref=ref, account=str(source), balance=left,
            )
        balances[source] = left
        balances[target] = balances.get(target, 0) + amount
        postings = (_new(Posting, (source, -amount)), _new(Posting, (target, amount)))
        entries = self.entries
        entry: Entry = _new(Entry, (len(entries) + 1, ref, postings))
        entries.append(entry)
        return entry

    def settle_fill(
        self,
        *,
        ref: str,
        buyer: int,
        seller: int,
        base_asset: str,
        quote_asset: str,
        quantity: int,
        quote_amount: int,
        buyer_fee: int,
        seller_fee: int,
    ) -> Entry:
        """One trade: the buyer's held quote pays the seller, the seller's held base
        goes to the buyer, each side's fee (on what it receives) to ``@fees``."""
        if not (0 <= buyer_fee <= quantity and 0 <= seller_fee <= quote_amount):
            raise LedgerError(f"entry {ref!r}: a fee exceeds what it is charged on")
        new = _new
        accounts = self._accounts
        postings = [
            new(Posting, (accounts(buyer, quote_asset)[1], -quote_amount)),
            new(Posting, (accounts(seller, quote_asset)[0], quote_amount - seller_fee)),
            new(Posting, (accounts(seller, base_asset)[1], -quantity)),
            new(Posting, (accounts(buyer, base_asset)[0], quantity - buyer_fee)),
        ]
        if seller_fee:
            postings.append(new(Posting, (new(Account, (FEES, quote_asset, FEES)), seller_fee)))
        if buyer_fee:
            postings.append(new(Posting, (new(Account, (FEES, base_asset, FEES)), buyer_fee)))
        balances = self._balances
        for account, amount in postings[0], postings[2]:
            if balances.get(account, 0) + amount < 0:
                raise LedgerError(f"entry {ref!r} would leave {account} negative", ref=ref)
        for account, amount in postings:  # balanced per asset by construction
            balances[account] = balances.get(account, 0) + amount
        entries = self.entries
        entry: Entry = new(Entry, (len(entries) + 1, ref, tuple(postings)))
        entries.append(entry)
        return entry

    @staticmethod
    def _positive(amount: int, ref: str) -> None:
        if amount <= 0:
            raise LedgerError(f"entry {ref!r}: amount must be positive", code="bad_amount")

    # -- checking and recovery --------------------------------------------------

    def verify(self) -> None:
        """Recompute every balance from the journal; raise ``LedgerError`` if the
        cache differs, an entry does not balance, or a user bucket is negative."""
        sums: dict[Account, int] = {}
        for entry in self.entries:
            per_asset: dict[str, int] = {}
            for account, amount in entry.postings:
                sums[account] = sums.get(account, 0) + amount
                per_asset[account.asset] = per_asset.get(account.asset, 0) + amount
            if any(per_asset.values()):
                raise UnbalancedEntryError(f"entry {entry.entry_id} does not balance")
        for account in set(sums) | set(self._balances):
            if sums.get(account, 0) != self._balances.get(account, 0):
                raise LedgerError(f"balance of {account} is not the sum of its entries")
            if sums.get(account, 0) < 0 and account.owner != CUSTODY:
                raise LedgerError(f"{account} is negative")

    @classmethod
    def replay(cls, entries: Iterable[Entry]) -> Ledger:
        """A ledger rebuilt from a recorded journal (checked entry by entry)."""
        ledger = cls()
        for entry in entries:
            ledger.post(entry.ref, entry.postings)
        return ledger
