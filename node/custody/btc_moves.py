"""Bitcoin custody moves: deposit outputs swept into the hot wallet, hot
wallet excess to the cold address, withdrawals paid from the hot wallet.

Coins are found with ``scantxoutset`` over the node's own addresses (no
bitcoind wallet needed) and only at the confirmed height; a sweep spends only
outputs the ledger has credited (``custody_deposits``). Transactions are
P2WPKH spends built and sized in ``wallets.custody_btc``, signed by the
keystore, stored before they are sent, and settled in the ledger (fees are
known exactly when signing) once they have ``btc.confirmations``:

- sweep to hot: ``node:deposit +inputs, node:hot -(inputs-fee), expense -fee``;
- to cold: ``node:hot +amount+fee, node:cold -amount, expense -fee``;
- withdrawal: ``user:held -amount, node:hot +amount+fee, expense -fee``.

One hot-wallet spend is in flight at a time (its change is unconfirmed), so
two never pick the same coins.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from node.chains.base import TxState
from node.chains.btc.adapter import BtcAdapter
from node.chains.btc.rpc import btc_to_sat
from node.custody.ledger import (
    NODE_COLD,
    NODE_DEPOSIT,
    NODE_HOT,
    NODE_NETWORK_FEES,
    Leg,
    post_entry,
    user_account,
)
from node.db.models_custody import CustodyAddress, CustodyDeposit, CustodySweep, CustodyWithdrawal
from node.db.session import transaction
from node.errors import BroadcastError, ChainError
from wallets.custody_btc import SpendableOutput, script_of, unsigned, vsize
from wallets.custody_btc import select as select_coins

if TYPE_CHECKING:
    from node.custody.service import CustodyService

log = logging.getLogger("escrowd.custody.btc")

ASSET = "BTC"


def _adapter(svc: CustodyService) -> BtcAdapter:
    assert svc.btc_rpc is not None
    return BtcAdapter(svc.btc_rpc, network=svc.btc_network.name)


def confirmed_height(svc: CustodyService) -> int:
    """The newest block with ``btc.confirmations`` that the deposit watcher has processed."""
    assert svc.btc_rpc is not None
    head = int(svc.btc_rpc.rpc("getblockcount"))
    from node.indexer import get_cursor

    for w in svc.watchers:
        if w.chain.startswith("custody:btc:"):
            with svc.sessions() as s:
                cur = get_cursor(s, w.chain)
            head = min(head, cur.head_number if cur is not None else -1)
    return head - svc.settings.btc.confirmations + 1


def scan(svc: CustodyService, owners: dict[str, tuple[str, str]], at: int) -> list[SpendableOutput]:
    """Unspent outputs of the addresses ``owners`` ({script hex: (address,
    path)}) mined at heights 1..``at``."""
    if not owners or at < 1:
        return []
    assert svc.btc_rpc is not None
    res = svc.btc_rpc.rpc("scantxoutset", "start", [f"addr({a})" for a, _p in owners.values()])
    out = []
    for u in res.get("unspents", []):
        spk = str(u["scriptPubKey"]).lower()
        if spk in owners and 0 < int(u.get("height", 0)) <= at:
            out.append(
                SpendableOutput(
                    str(u["txid"]), int(u["vout"]), btc_to_sat(u["amount"]), owners[spk][1]
                )
            )
    return out


def _hot_owner(svc: CustodyService) -> dict[str, tuple[str, str]]:
    hot = svc.keys.btc_hot(svc.btc_network)
    assert hot.script_hex is not None
    return {hot.script_hex: (hot.address, hot.path)}


def _feerate(svc: CustodyService) -> int:
    cfg = svc.settings.btc
    return _adapter(svc).estimate_feerate(target_blocks=6, floor_sat_vb=cfg.min_feerate_sat_vb)


def _hot_busy(s: Session) -> bool:
    w = s.scalar(
        select(CustodyWithdrawal.id)
        .where(CustodyWithdrawal.chain == "btc", CustodyWithdrawal.status == "broadcast")
        .limit(1)
    )
    c = s.scalar(
        select(CustodySweep.id)
        .where(
            CustodySweep.chain == "btc",
            CustodySweep.kind == "to_cold",
            CustodySweep.status == "broadcast",
        )
        .limit(1)
    )
    return w is not None or c is not None


def _send(svc: CustodyService, raw: bytes, txid: str) -> str | None:
    """Broadcast; None when sent (or unreachable: retried later), else the refusal."""
    try:
        _adapter(svc).broadcast(raw)
    except BroadcastError as exc:  # the chain refused it
        return exc.message
    except ChainError as exc:  # not reached: the next pass re-sends the same bytes
        log.warning("btc broadcast of %s failed, will retry: %s", txid, exc.message)
    return None


# --- sweeps ---------------------------------------------------------------------


def sweep_deposits(svc: CustodyService) -> list[str]:
    """All credited, confirmed, unswept deposit outputs -> the hot wallet, in one transaction."""
    at = confirmed_height(svc)
    with svc.sessions() as s:
        if s.scalar(
            select(CustodySweep.id)
            .where(
                CustodySweep.chain == "btc",
                CustodySweep.kind == "to_hot",
                CustodySweep.status == "broadcast",
            )
            .limit(1)
        ):
            return []
        owners = {
            a.script_hex.lower(): (a.address, a.path)
            for a in s.scalars(select(CustodyAddress).where(CustodyAddress.chain == "btc"))
            if a.script_hex
        }
        credited = {
            (d.txid, d.output)
            for d in s.scalars(
                select(CustodyDeposit).where(
                    CustodyDeposit.chain.startswith("custody:btc:"),
                    CustodyDeposit.status == "credited",
                    CustodyDeposit.spent_txid.is_(None),
                )
            )
        }
    coins = [c for c in scan(svc, owners, at) if (c.txid, c.vout) in credited]
    if not coins:
        return []
    hot = svc.keys.btc_hot(svc.btc_network)
    dest = script_of(hot.address)
    total = sum(c.amount for c in coins)
    fee = vsize(len(coins), [dest]) * _feerate(svc)
    floor = svc.settings.custody.min_sweep.get(ASSET, 10 * fee)
    if total < max(floor, fee + 294) or fee > svc.settings.btc.max_fee_sat:
        return []
    raw = svc.keys.btc_sign(unsigned(coins, [(dest, total - fee)]), coins)
    from embit.transaction import Transaction

    txid = Transaction.parse(raw).txid().hex()
    with transaction(svc.sessions) as s:
        s.add(
            CustodySweep(
                kind="to_hot",
                chain="btc",
                asset=ASSET,
                from_address="deposits",
                to_address=hot.address,
                amount=total - fee,
                network_fee=fee,
                status="broadcast",
                txid=txid,
                raw_tx=raw.hex(),
            )
        )
        for c in coins:
            s.execute(
                update(CustodyDeposit)
                .where(
                    CustodyDeposit.chain.startswith("custody:btc:"),
                    CustodyDeposit.txid == c.txid,
                    CustodyDeposit.output == c.vout,
                )
                .values(spent_txid=txid)
            )
    refused = _send(svc, raw, txid)
    if refused:
        with transaction(svc.sessions) as s:
            _fail_sweep(s, txid, refused)
    return [f"to_hot:{txid}"]


def _fail_sweep(s: Session, txid: str, reason: str) -> None:
    sw = s.scalar(select(CustodySweep).where(CustodySweep.txid == txid))
    if sw is not None:
        sw.status = "failed"
    s.execute(
        update(CustodyDeposit).where(CustodyDeposit.spent_txid == txid).values(spent_txid=None)
    )
    log.warning("btc sweep %s failed: %s", txid, reason)


def _spend_hot(
    svc: CustodyService, dest_address: str, amount: int, at: int
) -> tuple[bytes, str, int] | None:
    """A signed hot-wallet payment of ``amount`` to ``dest_address`` (change
    back to the hot wallet); None when the confirmed hot coins do not suffice."""
    hot = svc.keys.btc_hot(svc.btc_network)
    coins = scan(svc, _hot_owner(svc), at)
    try:
        inputs, outputs, fee = select_coins(
            coins,
            amount,
            dest=script_of(dest_address),
            change=script_of(hot.address),
            feerate=_feerate(svc),
        )
    except ValueError:
        return None
    if fee > svc.settings.btc.max_fee_sat:
        return None
    raw = svc.keys.btc_sign(unsigned(inputs, outputs), inputs)
    from embit.transaction import Transaction

    return raw, Transaction.parse(raw).txid().hex(), fee


def sweep_to_cold(svc: CustodyService) -> list[str]:
    ceiling = svc.settings.custody.hot_ceiling.get(ASSET)
    cold = svc.settings.custody.cold_address.get(ASSET)
    if ceiling is None or not cold:
        return []
    at = confirmed_height(svc)
    with svc.hot_lock:
        with svc.sessions() as s:
            if _hot_busy(s):
                return []
        hot_total = sum(c.amount for c in scan(svc, _hot_owner(svc), at))
        excess = hot_total - ceiling
        if excess <= 294:
            return []
        made = _spend_hot(svc, cold, excess, at)
        if made is None:
            return []
        raw, txid, fee = made
        with transaction(svc.sessions) as s:
            s.add(
                CustodySweep(
                    kind="to_cold",
                    chain="btc",
                    asset=ASSET,
                    from_address=svc.keys.btc_hot(svc.btc_network).address,
                    to_address=cold,
                    amount=excess,
                    network_fee=fee,
                    status="broadcast",
                    txid=txid,
                    raw_tx=raw.hex(),
                )
            )
        refused = _send(svc, raw, txid)
    if refused:
        with transaction(svc.sessions) as s:
            _fail_sweep(s, txid, refused)
    return [f"to_cold:{txid}"]


# --- withdrawals ----------------------------------------------------------------


def send_withdrawals(svc: CustodyService) -> dict[int, str]:
    """Sign and send the oldest held Bitcoin withdrawal (one hot spend in flight)."""
    from node.custody.withdrawals import _fail

    at = confirmed_height(svc)
    with svc.hot_lock:
        with transaction(svc.sessions) as s:
            if _hot_busy(s):
                return {}
            w = s.scalar(
                select(CustodyWithdrawal)
                .where(CustodyWithdrawal.chain == "btc", CustodyWithdrawal.status == "held")
                .order_by(CustodyWithdrawal.id)
                .limit(1)
                .with_for_update()
            )
            if w is None:
                return {}
            made = _spend_hot(svc, w.address, w.amount, at)
            if made is None:
                return {w.id: "waiting"}  # for a sweep into the hot wallet
            raw, txid, fee = made
            w.raw_tx, w.txid, w.network_fee, w.status = raw.hex(), txid, fee, "broadcast"
            wid = w.id
        refused = _send(svc, raw, txid)
    if refused:
        with transaction(svc.sessions) as s:
            row = s.get(CustodyWithdrawal, wid, with_for_update=True)
            assert row is not None
            _fail(s, row, f"refused by the chain: {refused}")
        return {wid: "failed"}
    return {wid: "broadcast"}


# --- settling -------------------------------------------------------------------


def settle(svc: CustodyService) -> list[str]:
    """Book the Bitcoin sweeps and withdrawals that reached their confirmations."""
    from node.custody.withdrawals import _fail

    adapter = _adapter(svc)
    need = svc.settings.btc.confirmations
    out: list[str] = []
    with svc.sessions() as s:
        sweeps = list(
            s.scalars(
                select(CustodySweep.id).where(
                    CustodySweep.chain == "btc", CustodySweep.status == "broadcast"
                )
            )
        )
        withdrawals = list(
            s.scalars(
                select(CustodyWithdrawal.id).where(
                    CustodyWithdrawal.chain == "btc", CustodyWithdrawal.status == "broadcast"
                )
            )
        )
    for sid in sweeps:
        with transaction(svc.sessions) as s:
            sw = s.get(CustodySweep, sid, with_for_update=True)
            if sw is None or sw.status != "broadcast":
                continue
            st = adapter.tx_status(sw.txid)
            if st.state == TxState.UNKNOWN:
                refused = _send(svc, bytes.fromhex(sw.raw_tx), sw.txid)
                if refused:
                    _fail_sweep(s, sw.txid, refused)
                    out.append(f"{sw.kind}:{sw.txid}:failed")
                continue
            if st.state != TxState.CONFIRMED or st.confirmations < need:
                continue
            src, dst = (NODE_DEPOSIT, NODE_HOT) if sw.kind == "to_hot" else (NODE_HOT, NODE_COLD)
            legs = [Leg(src, ASSET, sw.amount + sw.network_fee), Leg(dst, ASSET, -sw.amount)]
            if sw.network_fee:
                legs.append(Leg(NODE_NETWORK_FEES, ASSET, -sw.network_fee))
            post_entry(s, ref=f"sweep:{sw.id}:settle", kind=f"sweep_{sw.kind}", legs=legs)
            sw.status = "confirmed"
            out.append(f"{sw.kind}:{sw.txid}:confirmed")
    for wid in withdrawals:
        with transaction(svc.sessions) as s:
            w = s.get(CustodyWithdrawal, wid, with_for_update=True)
            if w is None or w.status != "broadcast" or w.txid is None or w.raw_tx is None:
                continue
            st = adapter.tx_status(w.txid)
            if st.state == TxState.UNKNOWN:
                refused = _send(svc, bytes.fromhex(w.raw_tx), w.txid)
                if refused:
                    _fail(s, w, f"re-broadcast refused by the chain: {refused}")
                    out.append(f"withdrawal:{w.id}:failed")
                continue
            if st.state != TxState.CONFIRMED or st.confirmations < need:
                continue
            fee = int(w.network_fee or 0)
            legs = [
                Leg(user_account(w.user_id, "held"), w.asset, -w.amount),
                Leg(NODE_HOT, w.asset, w.amount + fee),
            ]
            if fee:
                legs.append(Leg(NODE_NETWORK_FEES, w.asset, -fee))
            post_entry(s, ref=f"withdrawal:{w.id}:settle", kind="withdrawal", legs=legs)
            w.status = "confirmed"
            out.append(f"withdrawal:{w.id}:confirmed")
    return out


def inflight_addback(svc: CustodyService, s: Session, at: int) -> int:
    """Inputs of our unsettled transactions mined above ``at``: the UTXO set
    lost them already, the ledger (which waits for confirmations) not yet."""
    adapter = _adapter(svc)
    assert svc.btc_rpc is not None
    txids = list(
        s.scalars(
            select(CustodySweep.txid).where(
                CustodySweep.chain == "btc", CustodySweep.status == "broadcast"
            )
        )
    )
    txids += [
        t
        for t in s.scalars(
            select(CustodyWithdrawal.txid).where(
                CustodyWithdrawal.chain == "btc", CustodyWithdrawal.status == "broadcast"
            )
        )
        if t
    ]
    total = 0
    for txid in txids:
        st = adapter.tx_status(txid)
        if st.state != TxState.CONFIRMED or st.block_number is None or st.block_number <= at:
            continue
        tx = svc.btc_rpc.rpc("getrawtransaction", txid, True)
        for vin in tx["vin"]:
            prev = svc.btc_rpc.rpc("getrawtransaction", vin["txid"], True)
            total += btc_to_sat(prev["vout"][int(vin["vout"])]["value"])
    return total
