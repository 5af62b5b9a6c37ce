"""Solana custody moves: deposit wallets swept into the hot wallet (SOL here,
SPL tokens in ``node.custody.sol_tokens``), the hot wallet's SOL excess to
cold, withdrawals (SOL and SPL) paid from the hot wallet.

A transfer is a system-program transfer signed by the sending wallet (its own
fee payer), stored before it is sent. Its fee is read from the chain
(``getFeeForMessage``) when it is built, so it is exact.

Settlement at the watcher's commitment (finalized by default):

- sweeps are settled *by the deposit watcher's step* (``settle_sweeps``), in
  the transaction that books the balances read at slot S, for exactly the
  sweeps finalized at a slot <= S: the balance read already lacks what they
  took, and the observation's ``credited`` drops by the same amount, so a
  sweep is never mistaken for a rollback;
- withdrawals by the withdrawal job: ``user:held -amount, node:hot
  +amount+fee, expense -fee``; refused, failed on chain (the fee is still
  booked) or not landed within ``EXPIRE_S`` (the blockhash expired): the hold
  is released.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.custody.ledger import (
    NODE_COLD,
    NODE_DEPOSIT,
    NODE_HOT,
    NODE_NETWORK_FEES,
    Leg,
    post_entry,
    user_account,
)
from node.db.models import utcnow
from node.db.models_custody import (
    CustodyAddress,
    CustodyObservation,
    CustodySweep,
    CustodyWithdrawal,
)
from node.db.session import transaction
from node.errors import ChainError
from wallets.custody_keys import sol_token_account

if TYPE_CHECKING:
    from node.custody.service import CustodyService

log = logging.getLogger("escrowd.custody.sol")

ASSET = "SOL"
EXPIRE_S = 300  # a blockhash is valid ~60-90 s: a transaction not seen by then never lands


def _commitment(svc: CustodyService) -> Any:
    from solana.rpc.commitment import Commitment

    return Commitment(svc.settings.sol.commitment)


def _transfer(
    svc: CustodyService,
    path: str,
    src: str,
    dst: str,
    lamports_total: int,
    *,
    pay_fee_from_amount: bool,
) -> tuple[bytes, str, int, int]:
    """(raw, signature, fee, amount) of a transfer from ``src``; with
    ``pay_fee_from_amount`` the amount is ``lamports_total - fee``."""
    from solana.rpc.commitment import Commitment
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.signature import Signature
    from solders.system_program import TransferParams, transfer

    client = svc.sol_watcher.client
    blockhash, _valid = client.latest_blockhash(Commitment("confirmed"))

    def message(amount: int) -> Message:
        ix = transfer(
            TransferParams(
                from_pubkey=Pubkey.from_string(src),
                to_pubkey=Pubkey.from_string(dst),
                lamports=amount,
            )
        )
        return Message.new_with_blockhash([ix], Pubkey.from_string(src), blockhash)

    probe = message(max(lamports_total, 1))
    fee = int(client.call(lambda c: c.get_fee_for_message(probe)).value or 5000)
    amount = lamports_total - fee if pay_fee_from_amount else lamports_total
    raw = svc.keys.sol_sign(path, message(amount))
    from solders.transaction import VersionedTransaction

    sig: Signature = VersionedTransaction.from_bytes(raw).signatures[0]
    return raw, str(sig), fee, amount


def _send(svc: CustodyService, raw: bytes) -> str | None:
    """None when sent (or the node was not reached: retried by expiry), else the refusal."""
    from solana.rpc.commitment import Commitment

    try:
        svc.sol_watcher.client.send(raw, preflight_commitment=Commitment("confirmed"))
    except ChainError as exc:
        return exc.message
    return None


def _balances(svc: CustodyService, accounts: list[str]) -> dict[str, int]:
    from solders.pubkey import Pubkey

    _slot, states = svc.sol_watcher.client.accounts(
        [Pubkey.from_string(a) for a in accounts], _commitment(svc)
    )
    return {
        a: (0 if st is None else int(st.lamports)) for a, st in zip(accounts, states, strict=True)
    }


# --- sweeps ---------------------------------------------------------------------


def sweep_sources(s: Session) -> tuple[set[str], dict[str, str]]:
    """Deposit wallets with a sweep still in flight (skipped this pass), and
    every Solana deposit wallet with its derivation path."""
    busy = set(
        s.scalars(
            select(CustodySweep.from_address).where(
                CustodySweep.chain == "sol", CustodySweep.status == "broadcast"
            )
        )
    )
    wallets = {
        a.address: a.path
        for a in s.scalars(select(CustodyAddress).where(CustodyAddress.chain == "sol"))
    }
    return busy, wallets


def sweep_deposits(svc: CustodyService) -> list[str]:
    """Each deposit wallet's credited SOL -> the hot wallet (fee from the amount)."""
    hot = svc.keys.sol_hot()
    chain = svc.sol_watcher.chain
    with svc.sessions() as s:
        busy, wallets = sweep_sources(s)
        credited = {
            o.account: o.credited
            for o in s.scalars(
                select(CustodyObservation).where(
                    CustodyObservation.chain == chain, CustodyObservation.asset == ASSET
                )
            )
        }
    todo = [a for a in wallets if a not in busy and credited.get(a, 0) > 0]
    if not todo:
        return []
    onchain = _balances(svc, todo + [hot.address])
    rent = svc.sol_watcher.client.rent_exemption(0)
    done = []
    for address in todo:
        # only what is both credited and there (a newer deposit waits for its credit)
        have = min(onchain[address], credited[address])
        floor = svc.settings.custody.min_sweep.get(ASSET, rent)
        if have < floor or (onchain[hot.address] == 0 and have < rent + 10_000):
            continue
        raw, sig, fee, amount = _transfer(
            svc, wallets[address], address, hot.address, have, pay_fee_from_amount=True
        )
        if have != onchain[address]:
            left = onchain[address] - have
            if 0 < left < rent:  # the wallet would keep less than rent: leave it
                continue
        refused = broadcast_sweep(
            svc, raw, sig, kind="to_hot", asset=ASSET, from_address=address,
            to_address=hot.address, amount=amount, fee=fee)
        if refused:
            log.warning("sol sweep from %s refused: %s", address, refused)
        done.append(f"to_hot:{sig}")
    return done


def broadcast_sweep(svc: CustodyService, raw: bytes, sig: str, *, kind: str, asset: str,
                    from_address: str, to_address: str, amount: int, fee: int) -> str | None:
    """Record a signed sweep as broadcast, then send it; one the cluster
    refused is marked failed. The refusal, or None."""
    with transaction(svc.sessions) as s:
        s.add(CustodySweep(kind=kind, chain="sol", asset=asset, from_address=from_address,
                           to_address=to_address, amount=amount, network_fee=fee,
                           status="broadcast", txid=sig, raw_tx=raw.hex()))
    refused = _send(svc, raw)
    if refused:
        mark_sweep_failed(svc, sig)
    return refused


def mark_sweep_failed(svc: CustodyService, sig: str) -> None:
    """A sweep the cluster refused: marked failed (its funds never left)."""
    with transaction(svc.sessions) as s:
        sw = s.scalar(select(CustodySweep).where(CustodySweep.txid == sig))
        if sw is not None:
            sw.status = "failed"


def paid_by_fee_payer(client: Any, sig: str, sol_moved: int) -> int | None:
    """What the transaction cost its fee payer beyond ``sol_moved`` (the SOL
    it transferred itself, if any): the fee and any rent, as the chain
    recorded them (``getTransaction``: pre/post balances of account 0)."""
    from solana.rpc.commitment import Commitment

    tx = client.transaction(sig, Commitment("confirmed"))
    if tx is None or tx.transaction.meta is None:
        return None
    meta = tx.transaction.meta
    return int(meta.pre_balances[0]) - int(meta.post_balances[0]) - sol_moved


def settle_sweeps(s: Session, client: Any, slot: int) -> dict[tuple[str, str], int]:
    """Inside the deposit watcher's step: book the sweeps (SOL and SPL)
    finalized at a slot <= ``slot`` (the slot its balances were read at);
    returns what left each deposit account, per (account, asset)."""
    rows = list(
        s.scalars(
            select(CustodySweep)
            .where(CustodySweep.chain == "sol", CustodySweep.status == "broadcast")
            .with_for_update()
        )
    )
    if not rows:
        return {}
    statuses = client.statuses([r.txid for r in rows])
    out: dict[tuple[str, str], int] = {}
    for sw, st in zip(rows, statuses, strict=True):
        if st is None:
            if sw.created_at < utcnow() - timedelta(seconds=EXPIRE_S):
                sw.status = "failed"
            continue
        if str(st.confirmation_status).lower().rsplit(".", 1)[-1] != "finalized" or st.slot > slot:
            continue
        ok = st.err is None
        moved_sol = sw.amount if ok and sw.asset == ASSET else 0
        paid = paid_by_fee_payer(client, sw.txid, moved_sol)
        if paid is not None:
            sw.network_fee = paid  # the chain's figure, not the estimate
        src, dst = (NODE_DEPOSIT, NODE_HOT) if sw.kind == "to_hot" else (NODE_HOT, NODE_COLD)
        # SOL sweeps pay their fee from the moved coins; token sweeps from the hot wallet
        payer = src if sw.asset == ASSET else NODE_HOT
        legs = [Leg(payer, ASSET, sw.network_fee), Leg(NODE_NETWORK_FEES, ASSET, -sw.network_fee)]
        if ok:
            legs += [Leg(src, sw.asset, sw.amount), Leg(dst, sw.asset, -sw.amount)]
        legs = [leg for leg in legs if leg.amount]
        if legs:
            post_entry(s, ref=f"sweep:{sw.id}:settle", kind=f"sweep_{sw.kind}", legs=legs)
        sw.status = "confirmed" if ok else "failed"
        left = (sw.amount if ok else 0) + (sw.network_fee if sw.asset == ASSET else 0)
        key = (sw.from_address, sw.asset)
        out[key] = out.get(key, 0) + left
    return out


def sweep_to_cold(svc: CustodyService) -> list[str]:
    """The hot wallet's SOL above ``custody.hot_ceiling["SOL"]`` (read at the
    commitment) -> ``custody.cold_address["SOL"]``; settled like the other
    sweeps by the deposit watcher's step."""
    ceiling = svc.settings.custody.hot_ceiling.get(ASSET)
    cold = svc.settings.custody.cold_address.get(ASSET)
    if ceiling is None or not cold:
        return []
    hot = svc.keys.sol_hot()
    with svc.hot_lock:
        with svc.sessions() as s:
            if s.scalar(
                select(CustodySweep.id)
                .where(
                    CustodySweep.chain == "sol",
                    CustodySweep.from_address == hot.address,
                    CustodySweep.status == "broadcast",
                )
                .limit(1)
            ):
                return []
            if s.scalar(
                select(CustodyWithdrawal.id)
                .where(CustodyWithdrawal.chain == "sol", CustodyWithdrawal.status == "broadcast")
                .limit(1)
            ):
                return []
        excess = _balances(svc, [hot.address])[hot.address] - ceiling
        if excess <= 0:
            return []
        raw, sig, fee, amount = _transfer(
            svc, hot.path, hot.address, cold, excess, pay_fee_from_amount=False
        )
        if ceiling - fee < svc.sol_watcher.client.rent_exemption(0):
            return []  # the hot wallet would keep less than rent
        refused = broadcast_sweep(
            svc, raw, sig, kind="to_cold", asset=ASSET, from_address=hot.address,
            to_address=cold, amount=amount, fee=fee)
    if refused:
        log.warning("sol sweep to cold refused: %s", refused)
    return [f"to_cold:{sig}"]


# --- withdrawals ----------------------------------------------------------------


def send_withdrawals(svc: CustodyService) -> dict[int, str]:
    from node.custody.withdrawals import _fail

    out: dict[int, str] = {}
    with svc.sessions() as s:
        ids = list(
            s.scalars(
                select(CustodyWithdrawal.id)
                .where(CustodyWithdrawal.chain == "sol", CustodyWithdrawal.status == "held")
                .order_by(CustodyWithdrawal.id)
            )
        )
    rent = svc.sol_watcher.client.rent_exemption(0) if ids else 0
    for wid in ids:
        with svc.hot_lock:
            with transaction(svc.sessions) as s:
                w = s.get(CustodyWithdrawal, wid, with_for_update=True)
                if w is None or w.status != "held":
                    continue
                made = _withdrawal_tx(svc, s, w, rent)
                if made is None:
                    out[wid] = "waiting"  # for a sweep into the hot wallet
                    continue
                raw, sig, cost = made
                w.raw_tx, w.txid, w.network_fee, w.status = raw.hex(), sig, cost, "broadcast"
            refused = _send(svc, raw)
        if refused:
            with transaction(svc.sessions) as s:
                row = s.get(CustodyWithdrawal, wid, with_for_update=True)
                assert row is not None
                _fail(s, row, f"refused by the chain: {refused}")
            out[wid] = "failed"
        else:
            out[wid] = "broadcast"
    return out


def _withdrawal_tx(
    svc: CustodyService, s: Session, w: CustodyWithdrawal, rent: int
) -> tuple[bytes, str, int] | None:
    """The signed payment of ``w`` from the hot wallet, or None when the hot
    wallet cannot pay it yet (and keep its rent)."""
    from node.custody.sol_tokens import _hot_lamports, token_transfer

    hot = svc.keys.sol_hot()
    lamports = _hot_lamports(svc)
    if w.asset == ASSET:
        raw, sig, fee, amount = _transfer(
            svc, hot.path, hot.address, w.address, w.amount, pay_fee_from_amount=False
        )
        left = lamports - amount - fee
        if left < 0 or 0 < left < rent:
            return None
        return raw, sig, fee
    from node.custody.addresses import currency
    from node.custody.sol_watch import Watched

    mint = svc.sol_watcher.tokens[w.asset]
    hot_ata = sol_token_account(hot.address, mint)
    _slot, have = svc.sol_watcher.read([Watched(hot_ata, w.asset, 0, mint)])
    if have[(hot_ata, w.asset)] < w.amount:
        return None
    raw, sig, cost = token_transfer(
        svc,
        owner_path=hot.path,
        owner=hot.address,
        mint=mint,
        decimals=currency(s, w.asset).decimals,
        dest_owner=w.address,
        amount=w.amount,
    )
    if lamports - cost < rent:
        return None
    return raw, sig, cost


def settle_withdrawals(svc: CustodyService) -> dict[int, str]:
    from node.custody.withdrawals import _fail

    out: dict[int, str] = {}
    with svc.sessions() as s:
        rows = s.execute(
            select(CustodyWithdrawal.id, CustodyWithdrawal.txid).where(
                CustodyWithdrawal.chain == "sol", CustodyWithdrawal.status == "broadcast"
            )
        ).all()
    if not rows:
        return out
    statuses = svc.sol_watcher.client.statuses([str(t) for _i, t in rows])
    want = svc.settings.sol.commitment
    for (wid, _txid), st in zip(rows, statuses, strict=True):
        with transaction(svc.sessions) as s:
            w = s.get(CustodyWithdrawal, wid, with_for_update=True)
            if w is None or w.status != "broadcast":
                continue
            if st is None:
                if w.updated_at < utcnow() - timedelta(seconds=EXPIRE_S):
                    _fail(s, w, "never landed (blockhash expired)")
                    out[wid] = "failed"
                continue
            level = str(st.confirmation_status).lower().rsplit(".", 1)[-1]
            order = ["processed", "confirmed", "finalized"]
            if order.index(level) < order.index(want):
                continue
            ok = st.err is None
            paid = paid_by_fee_payer(
                svc.sol_watcher.client, str(w.txid), w.amount if ok and w.asset == ASSET else 0
            )
            if paid is not None:
                w.network_fee = paid  # the chain's figure, not the estimate
            fee = int(w.network_fee or 0)
            fee_legs = (
                [Leg(NODE_HOT, ASSET, fee), Leg(NODE_NETWORK_FEES, ASSET, -fee)] if fee else []
            )
            if st.err is not None:
                if fee_legs:
                    post_entry(s, ref=f"withdrawal:{w.id}:fee", kind="network_fee", legs=fee_legs)
                _fail(s, w, f"failed on chain: {st.err}")
                out[wid] = "failed"
                continue
            post_entry(
                s,
                ref=f"withdrawal:{w.id}:settle",
                kind="withdrawal",
                legs=[
                    Leg(user_account(w.user_id, "held"), w.asset, -w.amount),
                    Leg(NODE_HOT, w.asset, w.amount),
                    *fee_legs,
                ],
            )
            w.status = "confirmed"
            out[wid] = "confirmed"
    return out
