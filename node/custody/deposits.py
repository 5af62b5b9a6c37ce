"""Crediting deposits from the deposit watchers' mirror, and reversing them.

The custody watchers store every payment to a deposit address as a
``Deposit`` chain event (``chain_events``; a reorg deletes the events of the
blocks it removes). ``apply_confirmed`` is their ``on_confirmed`` hook: for
the addresses touched it compares the *confirmed* events (block <=
``confirmed``) with the deposits credited so far, credits the new ones and
reverses those whose event is gone or no longer confirmed. A reversed deposit
mined again is credited again (``credits`` numbers each credit's ledger ref).

Reorg debt (the documented choice): a reversal debits the user's
``available`` account as far as it goes and books the rest on the user's
``debt`` account (the only user account allowed below zero); funds on hold
are not touched. Later deposits repay the debt first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.custody.ledger import NODE_DEPOSIT, Leg, balance, post_entry, user_account
from node.db.models import ChainEvent
from node.db.models_custody import CustodyAddress, CustodyDeposit

log = logging.getLogger("escrowd.custody.deposits")


def event_amount_asset(args: dict[str, Any], native: str) -> tuple[int, str, int]:
    """(amount, asset, output index) of a Deposit event's args (Bitcoin's
    adapter writes ``amount_sat``/``vout``; the custody EVM adapter
    ``amount``/``asset``/``output``)."""
    if "amount_sat" in args:
        return int(args["amount_sat"]), native, int(args["vout"])
    return int(args["amount"]), str(args["asset"]), int(args["output"])


def credit_legs(user_id: int, asset: str, amount: int, debt: int) -> list[Leg]:
    """Legs of a deposit credit that first repays the user's reorg debt (``debt`` <= 0)."""
    repay = min(amount, -debt) if debt < 0 else 0
    legs = [Leg(NODE_DEPOSIT, asset, -amount)]
    if repay:
        legs.append(Leg(user_account(user_id, "debt"), asset, repay))
    if amount - repay:
        legs.append(Leg(user_account(user_id, "available"), asset, amount - repay))
    return legs


def reversal_legs(user_id: int, asset: str, amount: int, available: int) -> list[Leg]:
    """Legs of a reversal: from available as far as it goes, the rest as debt."""
    take = min(amount, max(available, 0))
    legs = [Leg(NODE_DEPOSIT, asset, amount)]
    if take:
        legs.append(Leg(user_account(user_id, "available"), asset, -take))
    if amount - take:
        legs.append(Leg(user_account(user_id, "debt"), asset, -(amount - take)))
    return legs


def apply_confirmed(
    session: Session, chain: str, keys: Iterable[str], confirmed: int, *, family: str, native: str
) -> list[str]:
    """Credit / reverse the deposits of the deposit addresses ``keys``; returns
    what changed, as ``credit:<ref>`` / ``reverse:<ref>`` strings."""
    keys = set(keys)
    owners = {
        a.address: a.user_id
        for a in session.scalars(
            select(CustodyAddress).where(
                CustodyAddress.chain == family, CustodyAddress.address.in_(keys)
            )
        )
    }
    if not owners:
        return []
    events = session.scalars(
        select(ChainEvent).where(
            ChainEvent.chain == chain,
            ChainEvent.name == "Deposit",
            ChainEvent.escrow_key.in_(owners),
            ChainEvent.block_number <= confirmed,
        )
    ).all()
    confirmed_now: dict[tuple[str, int], tuple[ChainEvent, int, str]] = {}
    for ev in events:
        amount, asset, output = event_amount_asset(dict(ev.args), native)
        if amount > 0:
            confirmed_now[(ev.tx_hash.lower(), output)] = (ev, amount, asset)
    known = {
        (d.txid, d.output): d
        for d in session.scalars(
            select(CustodyDeposit)
            .where(CustodyDeposit.chain == chain, CustodyDeposit.address.in_(owners))
            .with_for_update()
        )
    }
    changed: list[str] = []
    for key, dep in known.items():
        if dep.status == "credited" and key not in confirmed_now:
            ref = f"deposit-reversal:{chain}:{dep.txid}:{dep.output}:{dep.credits}"
            avail = balance(session, user_account(dep.user_id, "available"), dep.asset)
            post_entry(
                session,
                ref=ref,
                kind="deposit_reversal",
                legs=reversal_legs(dep.user_id, dep.asset, dep.amount, avail),
            )
            dep.status = "reversed"
            changed.append(f"reverse:{ref}")
            log.warning("%s: deposit %s:%d reversed (reorg)", chain, dep.txid, dep.output)
    for key, (ev, amount, asset) in sorted(confirmed_now.items()):
        found = known.get(key)
        if found is None:
            dep = CustodyDeposit(
                chain=chain,
                asset=asset,
                user_id=owners[ev.escrow_key],
                address=ev.escrow_key,
                txid=key[0],
                output=key[1],
                amount=amount,
                block_number=ev.block_number,
                status="new",
                credits=0,
            )
            session.add(dep)
        elif found.status == "credited":
            continue
        else:
            dep = found
        dep.credits += 1
        dep.block_number = ev.block_number
        ref = f"deposit:{chain}:{dep.txid}:{dep.output}:{dep.credits}"
        debt = balance(session, user_account(dep.user_id, "debt"), asset)
        post_entry(
            session, ref=ref, kind="deposit", legs=credit_legs(dep.user_id, asset, amount, debt)
        )
        dep.status = "credited"
        changed.append(f"credit:{ref}")
    session.flush()
    return changed
