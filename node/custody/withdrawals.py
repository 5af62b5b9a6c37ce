"""Withdrawals: requested under the policy (funds put on hold), signed by the
node's hot wallet and broadcast by a job, settled when confirmed.

Life of a withdrawal (``custody_withdrawals.status``):

- ``held``: accepted (TOTP verified, policy passed); the amount moved from
  the user's available to held. Idempotent per (user, ``request_key``).
- ``broadcast``: the job signed it with the hot wallet and stored the raw
  transaction *before* sending it (a crash in between re-sends the same bytes,
  never a second transaction).
- ``confirmed``: mined with the chain's confirmations; the hold is settled
  into a debit: ``user:held -amount, node:hot +amount+fee,
  expense:network-fees -fee`` (fee = gas used x effective price, in the
  native coin).
- ``failed``: refused by the chain (or reverted); the hold is released
  (a reverted transaction's gas is still booked as a network fee);
- ``cancelled``: by the user while still ``held``; the hold is released.

Broadcasting is implemented for EVM chains (native coin and listed ERC-20s),
Bitcoin (``node.custody.btc_moves``) and native SOL (``node.custody.sol_moves``);
requests for SPL tokens are refused with ``withdrawal_chain_unsupported``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from eth_utils import is_address, to_checksum_address
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.custody.addresses import currency
from node.custody.errors import WithdrawalRefusedError
from node.custody.ledger import (
    NODE_HOT,
    NODE_NETWORK_FEES,
    Leg,
    _ensure_rows,
    hold,
    post_entry,
    release_hold,
    user_account,
)
from node.custody.policy import WINDOW, PolicyInput, decide
from node.custody.settings import CustodySettings
from node.db.models import utcnow
from node.db.models_custody import (
    CustodyAddress,
    CustodyAllowedAddress,
    CustodyBalance,
    CustodyWithdrawal,
)
from node.db.session import transaction
from node.errors import ChainError, EscrowStateError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from node.custody.service import CustodyService

log = logging.getLogger("escrowd.custody.withdrawals")

ERC20_TRANSFER = "a9059cbb"
NATIVE_GAS = 21_000


# --- addresses ----------------------------------------------------------------


def canonical_address(chain: str, address: str, *, btc_network: object) -> str:
    """The address in its chain's canonical form, or ``invalid_address`` (422)."""
    if not isinstance(address, str) or not 0 < len(address) <= 128:
        raise ValidationError("address is required", code="invalid_address", field="address")
    if chain == "evm":
        if not is_address(address):
            raise ValidationError("not an EVM address", code="invalid_address", field="address")
        return str(to_checksum_address(address))
    if chain == "btc":
        from embit.script import address_to_scriptpubkey

        try:
            address_to_scriptpubkey(address)
        except Exception as exc:  # embit raises several types for bad input
            raise ValidationError(
                "not a Bitcoin address", code="invalid_address", field="address"
            ) from exc
        hrp = getattr(btc_network, "bech32_hrp", "")
        if address.lower().startswith(("bc1", "tb1", "bcrt1")) and not address.lower().startswith(
            hrp + "1"
        ):
            raise ValidationError(
                "address of another network", code="invalid_address", field="address"
            )
        return address
    if chain == "sol":
        from solders.pubkey import Pubkey

        try:
            return str(Pubkey.from_string(address))
        except ValueError as exc:
            raise ValidationError(
                "not a Solana address", code="invalid_address", field="address"
            ) from exc
    raise ValidationError(f"unknown chain {chain!r}", code="invalid_chain", field="chain")


# --- the allow-list -----------------------------------------------------------


def add_allowed(
    session: Session,
    *,
    user_id: int,
    chain: str,
    address: str,
    label: str | None,
    now: datetime,
    delay_s: int,
    btc_network: object,
) -> CustodyAllowedAddress:
    """Put an address on the user's allow-list, usable after ``delay_s``.
    Adding it again returns the existing entry (its delay is not reset)."""
    canon = canonical_address(chain, address, btc_network=btc_network)
    found = session.scalar(
        select(CustodyAllowedAddress).where(
            CustodyAllowedAddress.user_id == user_id,
            CustodyAllowedAddress.chain == chain,
            CustodyAllowedAddress.address == canon,
        )
    )
    if found is not None:
        return found
    from datetime import timedelta

    row = CustodyAllowedAddress(
        user_id=user_id,
        chain=chain,
        address=canon,
        label=label,
        usable_from=now + timedelta(seconds=delay_s),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def remove_allowed(session: Session, *, user_id: int, entry_id: int) -> None:
    row = session.get(CustodyAllowedAddress, entry_id)
    if row is None or row.user_id != user_id:
        raise NotFoundError("no such allow-list entry", code="allowed_address_not_found")
    session.delete(row)
    session.flush()


def list_allowed(session: Session, user_id: int) -> list[CustodyAllowedAddress]:
    return list(
        session.scalars(
            select(CustodyAllowedAddress)
            .where(CustodyAllowedAddress.user_id == user_id)
            .order_by(CustodyAllowedAddress.id)
        )
    )


# --- requests -----------------------------------------------------------------


def _recent(session: Session, asset: str, since: datetime, user_id: int | None) -> int:
    q = select(CustodyWithdrawal.amount).where(
        CustodyWithdrawal.asset == asset,
        CustodyWithdrawal.created_at >= since,
        CustodyWithdrawal.status.not_in(("failed", "cancelled")),
    )
    if user_id is not None:
        q = q.where(CustodyWithdrawal.user_id == user_id)
    return sum(int(a) for a in session.scalars(q))


def request_withdrawal(
    session: Session,
    *,
    cfg: CustodySettings,
    supported_chains: set[str],
    btc_network: object,
    user_id: int,
    asset: str,
    address: str,
    amount: int,
    totp_code: str,
    request_key: str,
    now: datetime | None = None,
    internal_addresses: set[str] | None = None,
    unsupported_assets: set[str] | None = None,
) -> tuple[CustodyWithdrawal, bool]:
    """Accept a withdrawal (``(row, True)``) or return the one already made
    under ``request_key`` (``(row, False)``; different parameters: 409)."""
    now = now or utcnow()
    if not isinstance(request_key, str) or not 0 < len(request_key) <= 100:
        raise ValidationError("request_key: 1..100 characters", field="request_key")
    cur = currency(session, asset)
    chain = cur.chain
    canon = canonical_address(chain, address, btc_network=btc_network)
    existing = session.scalar(
        select(CustodyWithdrawal).where(
            CustodyWithdrawal.user_id == user_id, CustodyWithdrawal.request_key == request_key
        )
    )
    if existing is not None:
        if (existing.asset, existing.address, existing.amount) != (asset, canon, amount):
            raise EscrowStateError(
                "this request_key was used for another withdrawal", code="request_key_reused"
            )
        return existing, False
    if chain not in supported_chains or asset in (unsupported_assets or set()):
        raise ValidationError(
            f"withdrawals on {chain} are not supported by this node",
            code="withdrawal_chain_unsupported",
            field="asset",
        )
    if internal_addresses is not None and canon.lower() in internal_addresses:
        raise ValidationError(
            "the address belongs to this node (a deposit address or its hot wallet); "
            "withdrawals go to outside addresses",
            code="internal_address",
            field="address",
        )
    if session.scalar(
        select(CustodyAddress.id).where(
            CustodyAddress.chain == chain, func.lower(CustodyAddress.address) == canon.lower()
        )
    ):
        raise ValidationError(
            "the address is a deposit address of this node; withdrawals go to outside addresses",
            code="internal_address",
            field="address",
        )
    from node.accounts.totp import verify_totp_for_user

    verify_totp_for_user(session, user_id, totp_code, now=now)

    # Serialize the limit checks of one asset: lock its global counter row.
    _ensure_rows(session, [("limits:withdrawals", asset)])
    session.execute(
        select(CustodyBalance.balance)
        .where(CustodyBalance.account == "limits:withdrawals", CustodyBalance.asset == asset)
        .with_for_update()
    ).scalar_one()
    allowed = session.scalar(
        select(CustodyAllowedAddress.usable_from).where(
            CustodyAllowedAddress.user_id == user_id,
            CustodyAllowedAddress.chain == chain,
            CustodyAllowedAddress.address == canon,
        )
    )
    since = now - WINDOW
    decision = decide(
        PolicyInput(
            amount=amount,
            now=now,
            allowed_from=allowed,
            user_recent=_recent(session, asset, since, user_id),
            global_recent=_recent(session, asset, since, None),
            user_limit=cfg.user_daily_limit.get(asset),
            global_limit=cfg.global_daily_limit.get(asset),
        )
    )
    if not decision.allowed:
        raise WithdrawalRefusedError(decision.reason, code=decision.code)
    row = CustodyWithdrawal(
        user_id=user_id,
        request_key=request_key,
        chain=chain,
        asset=asset,
        address=canon,
        amount=amount,
        status="held",
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    hold(session, user_id=user_id, asset=asset, amount=amount, ref=f"withdrawal:{row.id}:hold")
    return row, True


def cancel_withdrawal(session: Session, *, user_id: int, withdrawal_id: int) -> CustodyWithdrawal:
    """Cancel a withdrawal not yet signed (``held``): the hold is released.
    Once broadcast it can no longer be cancelled (409 ``withdrawal_in_flight``)."""
    w = session.get(CustodyWithdrawal, withdrawal_id, with_for_update=True)
    if w is None or w.user_id != user_id:
        raise NotFoundError("no such withdrawal", code="withdrawal_not_found")
    if w.status == "cancelled":
        return w
    if w.status != "held":
        raise EscrowStateError(
            f"the withdrawal is {w.status}: it can no longer be cancelled",
            code="withdrawal_in_flight",
        )
    w.status = "cancelled"
    release_hold(
        session, user_id=w.user_id, asset=w.asset, amount=w.amount, ref=f"withdrawal:{w.id}:release"
    )
    return w


# --- the job ------------------------------------------------------------------


def _evm_tx(svc: CustodyService, w: CustodyWithdrawal, hot: str, nonce: int) -> dict[str, object]:
    evm = svc.evm
    assert evm is not None
    quote = evm.fee_quote()
    tx: dict[str, object] = {
        "nonce": nonce,
        "chainId": evm.chain_id,
        "type": 2,
        "maxFeePerGas": quote.max_fee(),
        "maxPriorityFeePerGas": quote.max_priority_fee,
    }
    if w.asset == svc.evm_native:
        tx.update(to=w.address, value=w.amount, gas=NATIVE_GAS)
    else:
        token = svc.evm_tokens[w.asset]
        data = "0x" + ERC20_TRANSFER + w.address[2:].lower().rjust(64, "0") + f"{w.amount:064x}"
        gas = evm.estimate_gas({"from": hot, "to": token, "data": data})
        tx.update(to=token, value=0, gas=gas * 6 // 5, data=data)
    return tx


def _hot_native_balance(svc: CustodyService, hot: str) -> int:
    assert svc.evm is not None
    return int(svc.evm.rpc.call("eth_getBalance", hot, "pending"), 16)


def _token_balance(svc: CustodyService, token: str, holder: str) -> int:
    assert svc.evm is not None
    data = "0x70a08231" + holder[2:].lower().rjust(64, "0")
    return int(svc.evm.call({"to": token, "data": data}), 16)


def _sign_and_send(svc: CustodyService, wid: int) -> str:
    with svc.hot_lock:
        return _sign_and_send_locked(svc, wid)


def _sign_and_send_locked(svc: CustodyService, wid: int) -> str:
    evm = svc.evm
    assert evm is not None
    hot = svc.keys.evm_hot()
    with transaction(svc.sessions) as s:
        w = s.get(CustodyWithdrawal, wid, with_for_update=True)
        if w is None or w.status != "held":
            return "skipped"
        nonce = evm.nonce(hot.address, "pending")
        tx = _evm_tx(svc, w, hot.address, nonce)
        need = int(tx["maxFeePerGas"]) * int(tx["gas"])  # type: ignore[call-overload]
        if w.asset == svc.evm_native:
            need += w.amount
        elif _token_balance(svc, svc.evm_tokens[w.asset], hot.address) < w.amount:
            return "waiting"  # for a sweep into the hot wallet
        if _hot_native_balance(svc, hot.address) < need:
            return "waiting"
        raw = svc.keys.evm_sign(hot.path, tx)
        from eth_utils import keccak

        w.raw_tx = raw.hex()
        w.txid = "0x" + keccak(raw).hex()
        w.nonce = nonce
        w.status = "broadcast"
    try:
        evm.broadcast(raw)
    except ChainError as exc:
        if exc.code == "rpc_unreachable":
            return "retry"  # stays broadcast: the next pass re-sends the same bytes
        with transaction(svc.sessions) as s:
            w = s.get(CustodyWithdrawal, wid, with_for_update=True)
            assert w is not None
            if evm.receipt(str(w.txid)) is None:
                _fail(s, w, f"refused by the chain: {exc.message}")
                return "failed"
    return "broadcast"


def _fail(s: Session, w: CustodyWithdrawal, error: str) -> None:
    w.status = "failed"
    w.error = error[:2000]
    release_hold(
        s, user_id=w.user_id, asset=w.asset, amount=w.amount, ref=f"withdrawal:{w.id}:release"
    )
    log.warning("withdrawal %d failed: %s", w.id, error)


def _settle(svc: CustodyService, wid: int) -> str:
    evm = svc.evm
    assert evm is not None
    with transaction(svc.sessions) as s:
        w = s.get(CustodyWithdrawal, wid, with_for_update=True)
        if w is None or w.status != "broadcast" or w.txid is None:
            return "skipped"
        rcpt = evm.receipt(w.txid)
        if rcpt is None:
            if w.raw_tx and evm.rpc.call("eth_getTransactionByHash", w.txid) is None:
                try:  # dropped from the mempool (or never sent): the same bytes again
                    evm.broadcast(bytes.fromhex(w.raw_tx))
                except ChainError as exc:
                    if exc.code == "rpc_unreachable":
                        return "retry"
                    # Refused (e.g. its nonce was used by another transaction)
                    # and not mined: it never will be. Release the funds.
                    _fail(s, w, f"re-broadcast refused by the chain: {exc.message}")
                    return "failed"
            return "pending"
        mined = int(rcpt["blockNumber"], 16)
        if evm.head() - mined + 1 < svc.settings.evm.confirmations:
            return "pending"
        fee = int(rcpt["gasUsed"], 16) * int(rcpt.get("effectiveGasPrice", "0x0"), 16)
        w.network_fee = fee
        native = svc.evm_native
        fee_legs = [Leg(NODE_HOT, native, fee), Leg(NODE_NETWORK_FEES, native, -fee)] if fee else []
        if int(rcpt["status"], 16) != 1:
            if fee_legs:
                post_entry(s, ref=f"withdrawal:{w.id}:fee", kind="network_fee", legs=fee_legs)
            _fail(s, w, "reverted on chain")
            return "failed"
        legs = [
            Leg(user_account(w.user_id, "held"), w.asset, -w.amount),
            Leg(NODE_HOT, w.asset, w.amount),
            *fee_legs,
        ]
        post_entry(s, ref=f"withdrawal:{w.id}:settle", kind="withdrawal", legs=legs)
        w.status = "confirmed"
        return "confirmed"


def process_withdrawals(svc: CustodyService) -> dict[int, str]:
    """One pass: sign and send what is held, settle what is confirmed. A chain
    that cannot be reached is logged and skipped; the others go on."""
    out: dict[int, str] = {}
    for chain, part in _parts(svc):
        try:
            out.update(part())
        except ChainError as exc:
            log.warning("%s withdrawals: %s; next pass retries", chain, exc.message)
    return {k: v for k, v in out.items() if v not in ("pending", "skipped")}


def _parts(svc: CustodyService) -> list[tuple[str, Callable[[], dict[int, str]]]]:
    parts: list[tuple[str, Callable[[], dict[int, str]]]] = []
    if svc.btc_rpc is not None:
        from node.custody import btc_moves

        def btc() -> dict[int, str]:
            out: dict[int, str] = {}
            for item in btc_moves.settle(svc):
                if item.startswith("withdrawal:"):
                    _w, wid, status = item.split(":")
                    out[int(wid)] = status
            out.update(btc_moves.send_withdrawals(svc))
            return out

        parts.append(("btc", btc))
    if svc.evm is not None:
        parts.append(("evm", lambda: _process_evm(svc)))
    if svc.sol_watcher is not None:
        from node.custody import sol_moves

        def sol() -> dict[int, str]:
            return {**sol_moves.settle_withdrawals(svc), **sol_moves.send_withdrawals(svc)}

        parts.append(("sol", sol))
    return parts


def _process_evm(svc: CustodyService) -> dict[int, str]:
    with svc.sessions() as s:
        rows = s.execute(
            select(CustodyWithdrawal.id, CustodyWithdrawal.status)
            .where(
                CustodyWithdrawal.chain == "evm",
                CustodyWithdrawal.status.in_(("held", "broadcast")),
            )
            .order_by(CustodyWithdrawal.id)
        ).all()
    out: dict[int, str] = {}
    for wid, status in rows:
        try:
            out[wid] = _sign_and_send(svc, wid) if status == "held" else _settle(svc, wid)
        except ChainError as exc:
            log.warning("withdrawal %d: %s", wid, exc.message)
            out[wid] = "retry"
    return out
