"""Reconciliation: the ledger's holdings per asset against the chain.

For each chain the node holds coins on, the ledger's view (minus the balances
of the holding accounts ``node:deposit`` + ``node:hot`` of the asset) is
compared with what the chain says those addresses hold (deposit addresses +
hot wallet). Both sides are read *at the confirmed height* (EVM: balances at
that block; Bitcoin: unspent outputs at least that deep), because the ledger
only books confirmed movements: a deposit or a withdrawal still inside its
confirmation window is on neither side. Movements the ledger has not booked
yet although they are confirmed (watcher or job lag) show as a difference
until the next pass; a persisting difference is what the job alerts on.

Also reported: the cold wallet (``node:cold`` vs the cold address, if one is
configured: informational, the operator spends from it without the node) and
the ledger's own soundness (``ledger.check_balances``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.custody.ledger import NODE_COLD, NODE_DEPOSIT, NODE_HOT, balance, check_balances
from node.db.models_custody import CustodyAddress

if TYPE_CHECKING:
    from node.custody.service import CustodyService


@dataclass(frozen=True, slots=True)
class ReconLine:
    chain: str
    asset: str
    ledger: int  # what the ledger says the node holds there
    on_chain: int
    height: int  # the confirmed height both were read at
    scope: str = "hot+deposits"  # or "cold" (informational)

    @property
    def difference(self) -> int:
        return self.on_chain - self.ledger

    @property
    def ok(self) -> bool:
        return self.scope == "cold" or self.difference == 0

    def describe(self) -> str:
        return (
            f"{self.chain} {self.asset} {self.scope}: ledger {self.ledger}, chain "
            f"{self.on_chain} at height {self.height} (difference {self.difference})"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            ledger=str(self.ledger),
            on_chain=str(self.on_chain),
            difference=str(self.difference),
            ok=self.ok,
        )
        return d


def _held(session: Session, asset: str) -> int:
    return -(balance(session, NODE_DEPOSIT, asset) + balance(session, NODE_HOT, asset))


def _addresses(session: Session, chain: str) -> list[CustodyAddress]:
    return list(session.scalars(select(CustodyAddress).where(CustodyAddress.chain == chain)))


def _evm_lines(svc: CustodyService, session: Session) -> list[ReconLine]:
    from node.custody.sweeps import confirmed_height

    evm = svc.evm
    assert evm is not None
    at = confirmed_height(svc)
    if at < 0:
        return []
    tag = hex(at)
    addrs = [a.address for a in _addresses(session, "evm")] + [svc.keys.evm_hot().address]
    native = sum(int(b, 16) for b in evm.rpc.batch([("eth_getBalance", (a, tag)) for a in addrs]))
    lines = [ReconLine("evm", svc.evm_native, _held(session, svc.evm_native), native, at)]
    for symbol, token in sorted(svc.evm_tokens.items()):
        calls = [
            ("eth_call", ({"to": token, "data": "0x70a08231" + a[2:].lower().rjust(64, "0")}, tag))
            for a in addrs
        ]
        total = sum(int(r, 16) for r in evm.rpc.batch(calls))
        lines.append(ReconLine("evm", symbol, _held(session, symbol), total, at))
    for symbol, token in sorted(svc.evm_tokens.items()):
        cold_t = svc.settings.custody.cold_address.get(symbol)
        if cold_t:
            data = "0x70a08231" + cold_t[2:].lower().rjust(64, "0")
            on_cold_t = int(evm.rpc.call("eth_call", {"to": token, "data": data}, tag), 16)
            lines.append(
                ReconLine(
                    "evm", symbol, -balance(session, NODE_COLD, symbol), on_cold_t, at, scope="cold"
                )
            )
    cold = svc.settings.custody.cold_address.get(svc.evm_native)
    if cold:
        on_cold = int(evm.rpc.call("eth_getBalance", cold, tag), 16)
        lines.append(
            ReconLine(
                "evm",
                svc.evm_native,
                -balance(session, NODE_COLD, svc.evm_native),
                on_cold,
                at,
                scope="cold",
            )
        )
    return lines


def _btc_lines(svc: CustodyService, session: Session) -> list[ReconLine]:
    from node.custody import btc_moves

    at = btc_moves.confirmed_height(svc)
    hot = svc.keys.btc_hot(svc.btc_network)
    owners = {
        a.script_hex.lower(): (a.address, a.path)
        for a in _addresses(session, "btc")
        if a.script_hex
    }
    assert hot.script_hex is not None
    owners[hot.script_hex] = (hot.address, hot.path)
    on_chain = sum(c.amount for c in btc_moves.scan(svc, owners, at))
    on_chain += btc_moves.inflight_addback(svc, session, at)
    lines = [ReconLine("btc", "BTC", _held(session, "BTC"), on_chain, at)]
    cold = svc.settings.custody.cold_address.get("BTC")
    if cold:
        from wallets.custody_btc import script_of

        cold_owner = {script_of(cold).hex(): (cold, "")}
        on_cold = sum(c.amount for c in btc_moves.scan(svc, cold_owner, at))
        lines.append(
            ReconLine("btc", "BTC", -balance(session, NODE_COLD, "BTC"), on_cold, at, scope="cold")
        )
    return lines


def reconcile(svc: CustodyService, session: Session) -> list[ReconLine]:
    lines: list[ReconLine] = []
    if svc.evm is not None:
        lines += _evm_lines(svc, session)
    if svc.btc_rpc is not None:
        lines += _btc_lines(svc, session)
    if svc.sol_watcher is not None:
        lines += _sol_lines(svc, session)
    return lines


def _sol_lines(svc: CustodyService, session: Session) -> list[ReconLine]:
    from node.custody.sol_watch import Watched
    from wallets.custody_keys import sol_token_account

    w = svc.sol_watcher
    hot = svc.keys.sol_hot().address
    items = [*w.watched(session), Watched(hot, w.native, 0, None)]
    items += [
        Watched(a, sym, 0, mint)
        for sym, mint in sorted(w.tokens.items())
        for a in [sol_token_account(hot, mint)]
    ]
    slot, observed = w.read(items)
    assets = [w.native, *sorted(w.tokens)]
    totals = dict.fromkeys(assets, 0)
    for (_account, asset), amount in observed.items():
        totals[asset] += amount
    lines = [ReconLine("sol", a, _held(session, a), totals[a], slot) for a in assets]
    for sym, mint in sorted(w.tokens.items()):
        cold_t = svc.settings.custody.cold_address.get(sym)
        if cold_t:
            cold_ata = sol_token_account(cold_t, mint)
            _s, on_cold_t = w.read([Watched(cold_ata, sym, 0, mint)])
            lines.append(
                ReconLine(
                    "sol",
                    sym,
                    -balance(session, NODE_COLD, sym),
                    on_cold_t[(cold_ata, sym)],
                    slot,
                    scope="cold",
                )
            )
    cold = svc.settings.custody.cold_address.get(w.native)
    if cold:
        _s, on_cold = w.read([Watched(cold, w.native, 0, None)])
        lines.append(
            ReconLine(
                "sol",
                w.native,
                -balance(session, NODE_COLD, w.native),
                on_cold[(cold, w.native)],
                slot,
                scope="cold",
            )
        )
    return lines


def ledger_soundness(session: Session) -> list[dict[str, str]]:
    return [
        {"account": m.account, "asset": m.asset, "cached": str(m.cached), "legs": str(m.legs)}
        for m in check_balances(session)
    ]
