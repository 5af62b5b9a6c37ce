"""Automatic fee bumps of stuck Bitcoin payouts: RBF from a fee ladder the
party signed in advance (and a payout that fell out of the mempool is
broadcast again).

Why RBF and not CPFP from the payout: a payout's outputs belong to the buyer
and/or the seller (their own addresses); the node holds no key to any of them,
so it cannot spend one to pay for its parent. What the node can do without
the party is replace the payout with a higher-fee version of the same payout,
provided the party signed that version too: a party's signature covers one
exact transaction. So every payout PSBT handed out comes with a fee ladder
(``wallets.bitcoin.ladder``): the same inputs and output scripts, fees rising
``step``-fold per rung, all signalling RBF. The party signs the rungs with the
payout and posts them (``store_ladder``); the node checks each rung with the
same payout policy as any PSBT (inputs = the escrow's deposits, outputs = the
ruling, SIGHASH_ALL, the party's signature) plus a per-rung fee cap, and keeps
them. The agent signs nothing then.

``bump_stuck_payouts`` (a node job) finds payouts broadcast and still in the
mempool ``bump_after_blocks`` blocks later and broadcasts the cheapest rung
that replaces the current one (BIP-125 rules 3 and 4), agent-signed at that
moment under the signing journal (same decision as the payout it replaces:
I5 holds, and all rungs spend the same outputs so at most one confirms).
The trade's status follows the chain (the watcher's fold), so it ends
released once whichever rung confirms.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.chains.base import TxState
from node.db.models import BtcEscrow, P2PEscrow
from node.errors import EscrowdError, ValidationError
from wallets.bitcoin import PayoutKind, PayoutPsbt, Ruling
from wallets.bitcoin.ladder import (
    DEFAULT_STEP,
    LadderRung,
    fee_ladder,
    next_rung,
    rung_fee_cap,
    stuck_for,
)
from wallets.bitcoin.psbt import build_payout_psbt
from wallets.errors import WalletError

if TYPE_CHECKING:
    from node.btc_trades import BtcTradeChain

log = logging.getLogger("escrowd.btc")

MAX_RUNGS = 10


def decision_for(kind: PayoutKind, buyer_bps: int | None) -> str:
    """The signing journal's decision for a payout of ``kind``."""
    if kind is PayoutKind.RELEASE:
        return "release"
    if kind in (PayoutKind.REFUND, PayoutKind.TIMELOCK_REFUND):
        return "refund"
    return f"split:{buyer_bps}"


def ladder_payload(chain: BtcTradeChain, btc: BtcEscrow, built: PayoutPsbt | None,
                   ruling: Ruling, *, base_fee_sat: int | None = None) -> list[dict[str, Any]]:
    """The unsigned rungs above a payout (``built``, or one paying
    ``base_fee_sat``): same inputs and outputs' scripts, rising fees. None for
    the timelock refund (the seller alone signs and bumps it)."""
    if ruling.kind is PayoutKind.TIMELOCK_REFUND or chain.ladder_rungs <= 0:
        return []
    base = built or chain.build(btc, ruling, fee_sat=base_fee_sat)
    rate = Fraction(base.fee_sat, base.vsize)
    fees = fee_ladder(rate, base.vsize, rungs=chain.ladder_rungs, step=DEFAULT_STEP,
                      max_fee_sat=chain.max_fee_sat)
    out: list[dict[str, Any]] = []
    funding = chain.funding_outputs(btc)
    for k, fee in enumerate(fees[1:], start=1):
        try:
            rung = build_payout_psbt(chain.script(btc), funding, ruling, fee_sat=fee)
        except (WalletError, ValueError):  # a rung that would leave dust is not offered
            break
        out.append({"rung": k, "psbt": rung.psbt, "fee_sat": rung.fee_sat,
                    "feerate_sat_vb": round(rung.fee_sat / rung.vsize, 2), "txid": rung.txid})
    return out


def _ruling_for_party(chain: BtcTradeChain, btc: BtcEscrow, role: str) -> Ruling:
    """The payout a party's rungs are for: the pending or broadcast one, else
    the one the party alone asks for (the seller releases, the buyer cancels)."""
    if btc.payout_kind is not None:
        kind = PayoutKind(btc.payout_kind)
        if kind is PayoutKind.TIMELOCK_REFUND:
            raise ValidationError("the seller bumps a timelock refund in their own wallet",
                                  code="not_agent_payout")
        return chain.ruling_for(btc, kind, btc.payout_buyer_bps or 0)
    kind = PayoutKind.RELEASE if role == "seller" else PayoutKind.REFUND
    return chain.ruling_for(btc, kind)


def store_ladder(chain: BtcTradeChain, session: Session, *, escrow: P2PEscrow, role: str,
                 psbts: list[str]) -> dict[str, Any]:
    """Check and keep a party's signed rungs. Each must pass the payout policy
    for the ruling with the party's signature; sorted by fee, the k-th may pay
    at most ``step**k`` times the party's fee cap (never above ``max_fee_sat``)."""
    if role not in ("buyer", "seller"):
        raise ValidationError("only the trade's parties sign fee rungs", code="wrong_party")
    if not 1 <= len(psbts) <= MAX_RUNGS:
        raise ValidationError(f"send 1 to {MAX_RUNGS} signed rungs", field="psbts")
    btc = chain.btc_of(session, escrow)
    if btc.spent_txid is not None:
        raise ValidationError("the payout is confirmed", code="payout_confirmed")
    ruling = _ruling_for_party(chain, btc, role)
    base_cap = chain.party_fee_cap(btc, ruling)
    checked = [chain._check(btc, p, ruling, signer_role=role,  # noqa: SLF001
                            max_fee_sat=chain.max_fee_sat) for p in psbts]
    pairs = sorted(zip(checked, psbts, strict=True), key=lambda cp: cp[0].fee_sat)
    fees = [c.fee_sat for c, _ in pairs]
    if len(set(fees)) != len(fees):
        raise ValidationError("two rungs pay the same fee", code="ladder_duplicate_rung",
                              field="psbts")
    rungs: list[dict[str, Any]] = []
    for k, (c, psbt) in enumerate(pairs, start=1):
        cap = rung_fee_cap(base_cap, k, step=DEFAULT_STEP, max_fee_sat=chain.max_fee_sat)
        if c.fee_sat > cap:
            from node.btc_trades import BtcPolicyError

            raise BtcPolicyError(f"rung {k} pays {c.fee_sat} sat, above its cap {cap} sat",
                                 code="psbt_fee_above_cap", fee_sat=c.fee_sat, cap_sat=cap)
        from node.btc_trades import _unsigned_txid

        rungs.append({"role": role, "kind": ruling.kind.value,
                      "buyer_bps": ruling.buyer_bps if ruling.kind is PayoutKind.SPLIT else None,
                      "fee_sat": c.fee_sat, "txid": _unsigned_txid(psbt), "psbt": psbt})
    old = btc.payout_ladder or {}
    kept = [r for r in old.get("rungs", []) if r["role"] != role or r["kind"] != ruling.kind.value]
    btc.payout_ladder = {**old, "rungs": kept + rungs}
    return {"kind": ruling.kind.value, "rungs": [{"fee_sat": r["fee_sat"], "txid": r["txid"]}
                                                 for r in rungs]}


def ladder_state(btc: BtcEscrow) -> dict[str, Any]:
    """What the API shows of the ladder: the rungs held (no PSBTs) and the bumps."""
    ladder = btc.payout_ladder or {}
    return {"rungs": [{"role": r["role"], "kind": r["kind"], "fee_sat": r["fee_sat"],
                       "txid": r["txid"]} for r in ladder.get("rungs", [])],
            "broadcast_height": ladder.get("broadcast_height"),
            "bumps": list(ladder.get("bumps", [])),
            "rebroadcasts": int(ladder.get("rebroadcasts", 0))}


def _usable_rungs(btc: BtcEscrow, ladder: dict[str, Any]) -> list[dict[str, Any]]:
    """Rungs of the broadcast payout, signed by the party who signed it."""
    bps = btc.payout_buyer_bps if btc.payout_kind == PayoutKind.SPLIT.value else None
    return [r for r in ladder.get("rungs", [])
            if r["kind"] == btc.payout_kind and r.get("buyer_bps") == bps
            and r["role"] == ladder.get("signed_by")]


def bump_one(chain: BtcTradeChain, btc: BtcEscrow, tip: int) -> str | None:
    """Broadcast the next rung of ``btc``'s payout if it is stuck; its txid."""
    ladder = btc.payout_ladder or {}
    height = ladder.get("broadcast_height")
    if btc.payout_txid is None or btc.spent_txid is not None or height is None:
        return None
    if stuck_for(int(height), tip) < chain.bump_after_blocks:
        return None
    entry = chain.adapter.mempool_entry(btc.payout_txid)
    if entry is None:
        return _rebroadcast_if_dropped(chain, btc, tip)
    usable = _usable_rungs(btc, ladder)
    if not usable:
        return None  # no rung signed (or a timelock refund: the seller bumps it)
    by_txid = {r["txid"]: r for r in usable}
    chosen = next_rung([LadderRung(int(r["fee_sat"]), str(r["txid"])) for r in usable],
                       entry.fee_sat, max(entry.vsize, btc.payout_vsize or 0))
    if chosen is None:
        log.warning("btc payout %s stuck for %d blocks and no higher rung is signed",
                    btc.payout_txid, stuck_for(int(height), tip))
        return None
    rung = by_txid[chosen.txid]
    kind = PayoutKind(btc.payout_kind or "")
    ruling = chain.ruling_for(btc, kind, btc.payout_buyer_bps or 0)
    role = str(rung["role"])
    old_txid = btc.payout_txid
    # the whole policy again (the deposits may have changed since it was signed)
    chain._check(btc, rung["psbt"], ruling, signer_role=role,  # noqa: SLF001
                 max_fee_sat=chain.max_fee_sat)
    agent_signed = chain._agent_sign(btc, rung["psbt"], ruling,  # noqa: SLF001
                                     decision_for(kind, btc.payout_buyer_bps))
    txid = chain._finalize_and_broadcast(btc, [rung["psbt"], agent_signed],  # noqa: SLF001
                                         ruling, signed_by=role)
    ladder = dict(btc.payout_ladder or {})
    ladder["bumps"] = [*ladder.get("bumps", []),
                       {"from": old_txid, "to": txid, "fee_sat": chosen.fee_sat,
                        "height": tip}]
    btc.payout_ladder = ladder
    log.info("btc payout %s stuck %d blocks: replaced by %s (fee %d sat)", old_txid,
             stuck_for(int(height), tip), txid, chosen.fee_sat)
    return txid


def _rebroadcast_if_dropped(chain: BtcTradeChain, btc: BtcEscrow, tip: int) -> str | None:
    """A payout neither in the mempool nor on chain (evicted, or lost with a
    restarted bitcoind's mempool) is broadcast again; confirmed ones are the
    watcher's to fold."""
    if btc.payout_txid is None or btc.payout_raw is None:
        return None
    if chain.adapter.tx_status(btc.payout_txid).state is not TxState.UNKNOWN:
        return None
    txid = chain.adapter.broadcast(bytes.fromhex(btc.payout_raw))
    ladder = dict(btc.payout_ladder or {})
    ladder["broadcast_height"] = tip
    ladder["rebroadcasts"] = int(ladder.get("rebroadcasts", 0)) + 1
    btc.payout_ladder = ladder
    log.info("btc payout %s was dropped: broadcast again", txid)
    return txid


def bump_stuck_payouts(chain: BtcTradeChain) -> list[str]:
    """The job: bump every stuck payout of this network that has a signed
    rung above it. Rows are claimed with SKIP LOCKED, so node processes
    running the job at once bump each payout once. Returns the new txids."""
    done: list[str] = []
    tip = chain.adapter.head()
    with chain.sessions() as session, session.begin():
        rows = session.scalars(
            select(BtcEscrow)
            .join(P2PEscrow, BtcEscrow.p2p_escrow_id == P2PEscrow.id)
            .where(BtcEscrow.payout_txid.is_not(None), BtcEscrow.spent_txid.is_(None),
                   P2PEscrow.network == chain.network_name)
            .with_for_update(of=BtcEscrow, skip_locked=True)
        ).all()
        for btc in rows:
            if not btc.payout_ladder:
                continue
            try:
                txid = bump_one(chain, btc, tip)
            except EscrowdError as exc:
                log.warning("btc fee bump of %s failed: %s", btc.payout_txid, exc.message)
                continue
            if txid is not None:
                done.append(txid)
    return done
