"""Hot/cold sweeps (EVM native coin).

One pass (``sweep_pass``, the ``custody-sweep`` job):

1. settles sweeps that reached the chain's confirmations, as ledger entries
   between the node's holding accounts (fee = gas used x effective price):

   - deposit address -> hot: ``node:deposit +amount+fee, node:hot -amount,
     expense:network-fees -fee``;
   - hot -> cold: ``node:hot +amount+fee, node:cold -amount, expense -fee``;

2. moves each deposit address's *confirmed* balance (read at the confirmed
   block, so nothing not yet credited is moved) into the hot wallet, minus gas,
   when it is at least ``custody.min_sweep`` (default: 10x the gas);
3. moves each deposit address's confirmed ERC-20 balances into the hot
   wallet; the address pays the gas, and when it has too little the hot
   wallet first sends it what is missing (a ``gas`` sweep: ``node:hot
   +amount+fee, node:deposit -amount, expense -fee``);
4. sends the hot wallet's excess above ``custody.hot_ceiling[asset]`` (ETH
   and each listed ERC-20) to ``custody.cold_address[asset]`` (an address
   only: the node has no cold key).

Network fees are always in the native coin: a token sweep books the token
between the holding accounts and its gas as ``node:deposit +fee, expense
-fee`` in ETH. The raw transaction is stored before it is sent, so a crash
never signs a second one; one address has at most one sweep in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from eth_utils import keccak
from sqlalchemy import select

from node.custody.ledger import (
    NODE_COLD,
    NODE_DEPOSIT,
    NODE_HOT,
    NODE_NETWORK_FEES,
    Leg,
    post_entry,
)
from node.db.models_custody import CustodyAddress, CustodySweep
from node.db.session import transaction
from node.errors import ChainError

if TYPE_CHECKING:
    from node.custody.service import CustodyService

log = logging.getLogger("escrowd.custody.sweeps")

GAS = 21_000


def confirmed_height(svc: CustodyService) -> int:
    """The newest block with the chain's confirmations (and that the deposit
    watcher has processed: the ledger reflects nothing newer)."""
    assert svc.evm is not None
    head = svc.evm.head()
    for w in svc.watchers:
        if w.chain.startswith("custody:evm:"):
            with svc.sessions() as s:
                from node.indexer import get_cursor

                cur = get_cursor(s, w.chain)
            head = min(head, cur.head_number if cur is not None else -1)
    return head - svc.settings.evm.confirmations + 1


ROUTES = {  # kind -> (from account, to account)
    "to_hot": (NODE_DEPOSIT, NODE_HOT),
    "to_cold": (NODE_HOT, NODE_COLD),
    "gas": (NODE_HOT, NODE_DEPOSIT),
}
TRANSFER = "a9059cbb"
BALANCE_OF = "70a08231"


def _settle(svc: CustodyService) -> list[str]:
    evm = svc.evm
    assert evm is not None
    native = svc.evm_native
    out: list[str] = []
    with svc.sessions() as s:
        ids = list(
            s.scalars(
                select(CustodySweep.id).where(
                    CustodySweep.chain == "evm", CustodySweep.status == "broadcast"
                )
            )
        )
    for sid in ids:
        with transaction(svc.sessions) as s:
            sw = s.get(CustodySweep, sid, with_for_update=True)
            if sw is None or sw.status != "broadcast":
                continue
            rcpt = evm.receipt(sw.txid)
            if rcpt is None:
                if evm.rpc.call("eth_getTransactionByHash", sw.txid) is None:
                    try:
                        evm.broadcast(bytes.fromhex(sw.raw_tx))
                    except ChainError as exc:
                        log.warning("sweep %d re-broadcast refused: %s", sw.id, exc.message)
                        sw.status = "failed"
                continue
            if evm.head() - int(rcpt["blockNumber"], 16) + 1 < svc.settings.evm.confirmations:
                continue
            fee = int(rcpt["gasUsed"], 16) * int(rcpt.get("effectiveGasPrice", "0x0"), 16)
            sw.network_fee = fee
            src, dst = ROUTES[sw.kind]
            ok = int(rcpt["status"], 16) == 1
            legs = []
            if fee:
                legs += [Leg(src, native, fee), Leg(NODE_NETWORK_FEES, native, -fee)]
            if ok:
                legs += [Leg(src, sw.asset, sw.amount), Leg(dst, sw.asset, -sw.amount)]
            if legs:
                post_entry(s, ref=f"sweep:{sw.id}:settle", kind=f"sweep_{sw.kind}", legs=legs)
            sw.status = "confirmed" if ok else "failed"
            out.append(f"{sw.kind}:{sw.txid}:{sw.status}")
    return out


def _send(
    svc: CustodyService,
    *,
    kind: str,
    path: str,
    src: str,
    dst: str,
    asset: str,
    amount: int,
    max_fee: int,
    tip: int,
    gas: int = GAS,
) -> str:
    # one sender at a time from the hot wallet
    lock: AbstractContextManager[object] = (
        svc.hot_lock if src == svc.keys.evm_hot().address else nullcontext()
    )
    with lock:
        return _send_locked(
            svc,
            kind=kind,
            path=path,
            src=src,
            dst=dst,
            asset=asset,
            amount=amount,
            max_fee=max_fee,
            tip=tip,
            gas=gas,
        )


def _send_locked(
    svc: CustodyService,
    *,
    kind: str,
    path: str,
    src: str,
    dst: str,
    asset: str,
    amount: int,
    max_fee: int,
    tip: int,
    gas: int,
) -> str:
    evm = svc.evm
    assert evm is not None
    tx: dict[str, object] = {
        "gas": gas,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
        "nonce": evm.nonce(src, "pending"),
        "chainId": evm.chain_id,
        "type": 2,
    }
    if asset == svc.evm_native:
        tx.update(to=dst, value=amount)
    else:
        data = "0x" + TRANSFER + dst[2:].lower().rjust(64, "0") + f"{amount:064x}"
        tx.update(to=svc.evm_tokens[asset], value=0, data=data)
    raw = svc.keys.evm_sign(path, tx)
    txid = "0x" + keccak(raw).hex()
    with transaction(svc.sessions) as s:
        s.add(
            CustodySweep(
                kind=kind,
                chain="evm",
                asset=asset,
                from_address=src,
                to_address=dst,
                amount=amount,
                network_fee=0,
                status="broadcast",
                txid=txid,
                raw_tx=raw.hex(),
            )
        )
    try:
        evm.broadcast(raw)
    except ChainError as exc:
        if exc.code != "rpc_unreachable":
            with transaction(svc.sessions) as s:
                sw = s.scalar(select(CustodySweep).where(CustodySweep.txid == txid))
                if sw is not None and evm.receipt(txid) is None:
                    sw.status = "failed"
        log.warning("sweep from %s refused: %s", src, exc.message)
    return f"{kind}:{txid}"


def sweep_pass(svc: CustodyService) -> list[str]:
    """One pass over every chain; a chain that cannot be reached is logged
    and skipped, the others go on."""
    parts: list[tuple[str, Callable[[], list[str]]]] = []
    if svc.btc_rpc is not None:
        from node.custody import btc_moves

        parts.append(
            (
                "btc",
                lambda: [
                    *btc_moves.settle(svc),
                    *btc_moves.sweep_deposits(svc),
                    *btc_moves.sweep_to_cold(svc),
                ],
            )
        )
    if svc.evm is not None:
        parts.append(("evm", lambda: _evm_sweep_pass(svc)))
    if svc.sol_watcher is not None:
        from node.custody import sol_moves, sol_tokens

        parts.append(
            (
                "sol",
                lambda: [
                    *sol_moves.sweep_deposits(svc),
                    *sol_tokens.sweep_tokens(svc),
                    *sol_moves.sweep_to_cold(svc),
                    *sol_tokens.tokens_to_cold(svc),
                ],
            )
        )
    done: list[str] = []
    for chain, part in parts:
        try:
            done += part()
        except ChainError as exc:
            log.warning("%s sweeps: %s; next pass retries", chain, exc.message)
    return done


def _token_sweeps(
    svc: CustodyService,
    todo: list[tuple[str, str]],
    at: int,
    busy: set[str],
    max_fee: int,
    tip: int,
) -> list[str]:
    """Confirmed ERC-20 balances of deposit addresses -> hot (gas topped up first)."""
    evm = svc.evm
    assert evm is not None
    hot = svc.keys.evm_hot()
    done: list[str] = []
    with svc.sessions() as s:
        topping = set(
            s.scalars(
                select(CustodySweep.to_address).where(
                    CustodySweep.kind == "gas", CustodySweep.status == "broadcast"
                )
            )
        )
    for symbol, token in sorted(svc.evm_tokens.items()):
        calls = [
            (
                "eth_call",
                ({"to": token, "data": "0x" + BALANCE_OF + a[2:].lower().rjust(64, "0")}, hex(at)),
            )
            for a, _p in todo
        ]
        balances = evm.rpc.batch(calls) if calls else []
        floor = svc.settings.custody.min_sweep.get(symbol, 1)
        for (address, path), bal_hex in zip(todo, balances, strict=True):
            amount = int(bal_hex, 16)
            if amount < floor or address in busy:
                continue
            busy.add(address)
            data = "0x" + TRANSFER + hot.address[2:].lower().rjust(64, "0") + f"{amount:064x}"
            gas = evm.estimate_gas({"from": address, "to": token, "data": data}) * 6 // 5
            have = int(evm.rpc.call("eth_getBalance", address, "pending"), 16)
            if have >= gas * max_fee:
                done.append(
                    _send(
                        svc,
                        kind="to_hot",
                        path=path,
                        src=address,
                        dst=hot.address,
                        asset=symbol,
                        amount=amount,
                        max_fee=max_fee,
                        tip=tip,
                        gas=gas,
                    )
                )
            elif address not in topping:
                need = gas * max_fee - have
                hot_has = int(evm.rpc.call("eth_getBalance", hot.address, "pending"), 16)
                if hot_has < need + GAS * max_fee:
                    log.warning(
                        "hot wallet cannot pay the gas to sweep %s from %s", symbol, address
                    )
                    continue
                done.append(
                    _send(
                        svc,
                        kind="gas",
                        path=hot.path,
                        src=hot.address,
                        dst=address,
                        asset=svc.evm_native,
                        amount=need,
                        max_fee=max_fee,
                        tip=tip,
                    )
                )
    return done


def _evm_sweep_pass(svc: CustodyService) -> list[str]:
    evm = svc.evm
    assert evm is not None
    done = _settle(svc)
    native = svc.evm_native
    with svc.sessions() as s:
        busy = set(
            s.scalars(
                select(CustodySweep.from_address).where(
                    CustodySweep.chain == "evm", CustodySweep.status == "broadcast"
                )
            )
        )
        addrs = [
            (a.address, a.path)
            for a in s.scalars(
                select(CustodyAddress)
                .where(CustodyAddress.chain == "evm")
                .order_by(CustodyAddress.id)
            )
        ]
    quote = evm.fee_quote()
    max_fee, tip = quote.max_fee(), quote.max_priority_fee
    gas_cost = GAS * max_fee
    hot = svc.keys.evm_hot()
    hot_was_busy = hot.address in busy

    at = confirmed_height(svc)
    todo = [(a, p) for a, p in addrs if a not in busy]
    if todo and at >= 0:
        done += _token_sweeps(svc, todo, at, busy, max_fee, tip)
        todo = [(a, p) for a, p in todo if a not in busy]
        balances = evm.rpc.batch([("eth_getBalance", (a, hex(at))) for a, _p in todo])
        floor = svc.settings.custody.min_sweep.get(native, 10 * gas_cost)
        for (address, path), bal_hex in zip(todo, balances, strict=True):
            bal = int(bal_hex, 16)
            if bal < max(floor, gas_cost + 1):
                continue
            done.append(
                _send(
                    svc,
                    kind="to_hot",
                    path=path,
                    src=address,
                    dst=hot.address,
                    asset=native,
                    amount=bal - gas_cost,
                    max_fee=max_fee,
                    tip=tip,
                )
            )

    ceiling = svc.settings.custody.hot_ceiling.get(native)
    cold = svc.settings.custody.cold_address.get(native)
    if ceiling is not None and cold and not hot_was_busy:
        bal = int(evm.rpc.call("eth_getBalance", hot.address, "pending"), 16)
        excess = bal - ceiling
        if excess > 0 and bal >= excess + gas_cost:
            done.append(
                _send(
                    svc,
                    kind="to_cold",
                    path=hot.path,
                    src=hot.address,
                    dst=cold,
                    asset=native,
                    amount=excess,
                    max_fee=max_fee,
                    tip=tip,
                )
            )
    if not hot_was_busy:
        done += _tokens_to_cold(svc, max_fee, tip)
    return done


def _tokens_to_cold(svc: CustodyService, max_fee: int, tip: int) -> list[str]:
    """The hot wallet's ERC-20 excess above its ceiling -> the cold address
    (gas from the hot wallet's ETH)."""
    evm = svc.evm
    assert evm is not None
    hot = svc.keys.evm_hot()
    done: list[str] = []
    for symbol, token in sorted(svc.evm_tokens.items()):
        ceiling = svc.settings.custody.hot_ceiling.get(symbol)
        cold = svc.settings.custody.cold_address.get(symbol)
        if ceiling is None or not cold:
            continue
        data = "0x" + BALANCE_OF + hot.address[2:].lower().rjust(64, "0")
        excess = int(evm.call({"to": token, "data": data}, "pending"), 16) - ceiling
        if excess <= 0:
            continue
        send = "0x" + TRANSFER + cold[2:].lower().rjust(64, "0") + f"{excess:064x}"
        gas = evm.estimate_gas({"from": hot.address, "to": token, "data": send}) * 6 // 5
        if int(evm.rpc.call("eth_getBalance", hot.address, "pending"), 16) < gas * max_fee:
            log.warning("hot wallet cannot pay the gas to move %s to cold", symbol)
            continue
        done.append(
            _send(
                svc,
                kind="to_cold",
                path=hot.path,
                src=hot.address,
                dst=cold,
                asset=symbol,
                amount=excess,
                max_fee=max_fee,
                tip=tip,
                gas=gas,
            )
        )
    return done
