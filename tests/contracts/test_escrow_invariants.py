"""Stateful property tests (hypothesis RuleBasedStateMachine) of invariants
I1, I2 and I4 on a real anvil.

Random sequences of openings, direct actions, relayed (signed) actions,
claims, blocklistings, fee changes and time jumps are sent by random accounts
(the parties, outsiders, the arbitrator acting alone, the owner). A Python
model predicts, for every call, whether it must succeed and where every unit
of every asset must go. After each step the chain must agree with the model:

- each call succeeded exactly when the rules allow it (so no outsider, no
  lone arbitrator, no owner, no stale or foreign signature moves funds: I1, I4);
- every account's balance of the native coin and of the token equals the
  model's (funds leave only to the buyer, the seller, the split, or the fee
  recipient's share of what goes to the buyer: I2);
- the contract's balance of each asset equals the sum of its open escrows plus
  what it owes, and `owed` equals the model's debts.

Transactions go straight to anvil over JSON-RPC (eth_sendTransaction from its
unlocked test accounts, at a block time set by the model) because ape's
per-transaction overhead would make a useful number of steps too slow. Each
example starts from an anvil snapshot and reverts to it."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.contracts.helpers import (
    CANCEL,
    DISPUTE,
    DISPUTED,
    FUNDED,
    MARK_PAID,
    PAID,
    RECLAIM,
    REFUNDED,
    RELEASE,
    RELEASED,
    RESOLVE,
    RESOLVED,
    action_message,
    sign,
)

NATIVE = "0x" + "00" * 20
GAS = 1_000_000
SETTINGS = settings(
    max_examples=40,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


# How often each kind of step is drawn: mostly actions on escrows. (One rule
# with weighted kinds rather than one rule per kind: hypothesis' swarm testing
# disables random rules per example, which starved the actions.)
STEP_KINDS = ["act"] * 6 + ["open"] * 2 + ["claim", "claim", "warp", "warp", "blocklist", "set_fee"]


def step_args(**strategies: Any) -> Any:
    """Marks a machine method as a step kind with these argument strategies."""

    def mark(fn: Any) -> Any:
        fn.strategies = strategies
        return fn

    return mark


def selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def call_data(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (selector(signature) + encode(types, args)).hex()


class Rpc:
    """Minimal JSON-RPC client to the anvil that ape started."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.session = requests.Session()
        self.ids = itertools.count()

    def __call__(self, method: str, params: list[Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params or []}
        reply = self.session.post(self.uri, json=body, timeout=30).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        replies = sorted(
            self.session.post(self.uri, json=body, timeout=30).json(), key=lambda r: r["id"]
        )
        return [r["result"] for r in replies]


@dataclass
class Model:
    seller: str
    buyer: str
    token: str
    amount: int
    fee_bps: int
    fee_recipient: str
    payment_deadline: int
    deadline: int
    state: int = FUNDED
    nonce: int = 0


def make_machine(escrow, blocklist_token, receiver, parties, chain) -> type:
    rpc = Rpc(chain.provider.uri)
    p = parties
    escrow_addr = escrow.address
    token_addr = blocklist_token.address
    sellers = [p.seller.address, p.outsider.address]  # both hold approved tokens
    eoa_buyers = [p.buyer.address, p.fresh.address]
    buyers = [*eoa_buyers, receiver.address]  # the receiver rejects the native coin
    arbitrator = p.arbitrator.address
    # Everyone who may send a call: the parties, outsiders, the arbitrator, the owner.
    callers = [
        p.seller.address,
        p.outsider.address,
        p.buyer.address,
        p.fresh.address,
        arbitrator,
        p.relayer.address,
        p.owner.address,
    ]
    keys = {a.address: a for a in (p.seller, p.outsider, p.buyer, p.fresh, p.arbitrator, p.relayer)}
    fee_recipients = [p.fee_recipient.address, p.relayer.address]
    holders = sorted({*callers, *fee_recipients, receiver.address, p.fee_recipient.address})
    assets = [NATIVE, token_addr]
    refs = itertools.count(1)
    seen: Counter[tuple[str, Any]] = Counter()  # what the examples exercised

    class EscrowMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot = rpc("evm_snapshot")
            head = rpc("eth_getBlockByNumber", ["latest", False])
            self.time = int(head["timestamp"], 16) + 1
            self.escrows: list[tuple[bytes, Model]] = []
            self.blocked: set[str] = set()
            self.fee = (0, NATIVE)
            self.owed = {(h, a): 0 for h in holders for a in assets}
            self.balance = self.read_balances()

        def teardown(self) -> None:
            rpc("evm_revert", [self.snapshot])

        # ------------------------------------------------------------ chain

        def send(self, sender: str, data: str, value: int = 0, to: str = escrow_addr) -> bool:
            rpc("evm_setNextBlockTimestamp", [self.time])
            tx = {"from": sender, "to": to, "data": data, "value": hex(value)}
            tx |= {"gas": hex(GAS), "gasPrice": "0x0"}
            tx_hash = rpc("eth_sendTransaction", [tx])
            # anvil mines right away, but the receipt may lag the reply.
            while (receipt := rpc("eth_getTransactionReceipt", [tx_hash])) is None:
                time.sleep(0.001)
            assert int(receipt["blockNumber"], 16) and self.time == int(
                rpc("eth_getBlockByNumber", [receipt["blockNumber"], False])["timestamp"], 16
            )
            self.time += 1
            return receipt["status"] == "0x1"

        def read_balances(self) -> dict[tuple[str, str], int]:
            calls = []
            for h in [*holders, escrow_addr]:
                calls.append(("eth_getBalance", [h, "latest"]))
                data = call_data("balanceOf(address)", ["address"], [h])
                calls.append(("eth_call", [{"to": token_addr, "data": data}, "latest"]))
            values = [int(v, 16) for v in rpc.batch(calls)]
            keys_ = [(h, a) for h in [*holders, escrow_addr] for a in assets]
            return dict(zip(keys_, values, strict=True))

        def read_owed(self) -> dict[tuple[str, str], int]:
            keys_ = [(h, a) for h in holders for a in assets]
            calls = [
                (
                    "eth_call",
                    [
                        {
                            "to": escrow_addr,
                            "data": call_data("owed(address,address)", ["address", "address"], k),
                        },
                        "latest",
                    ],
                )
                for k in keys_
            ]
            return dict(zip(keys_, [int(v, 16) for v in rpc.batch(calls)], strict=True))

        # ------------------------------------------------------------ model

        def can_receive(self, to: str, asset: str) -> bool:
            if asset == NATIVE:
                return to != receiver.address
            return to not in self.blocked

        def pay(self, to: str, asset: str, amount: int) -> None:
            if amount == 0:
                return
            if self.can_receive(to, asset):
                self.balance[(escrow_addr, asset)] -= amount
                self.balance[(to, asset)] += amount
            else:  # stays in the contract, owed to `to`
                self.owed[(to, asset)] += amount
                seen["deferred", asset] += 1

        def allowed(self, e: Model, action: int, caller: str, bps: int) -> bool:
            t = self.time
            if action == MARK_PAID:
                return e.state == FUNDED and caller == e.buyer and t < e.payment_deadline
            if action == RELEASE:
                return e.state in (FUNDED, PAID, DISPUTED) and caller == e.seller
            if action == CANCEL:
                return e.state in (FUNDED, PAID) and caller == e.buyer
            if action == DISPUTE:
                return (
                    e.state in (FUNDED, PAID) and caller in (e.buyer, e.seller) and t < e.deadline
                )
            if action == RESOLVE:
                return e.state == DISPUTED and caller == arbitrator and bps <= 10_000
            assert action == RECLAIM
            if e.state == FUNDED:
                return caller == e.seller and t >= e.payment_deadline
            return e.state == PAID and caller == e.seller and t >= e.deadline

        def apply(self, e: Model, action: int, bps: int) -> None:
            if action == MARK_PAID:
                e.state = PAID
            elif action == DISPUTE:
                e.state = DISPUTED
            elif action == RELEASE:
                e.state = RELEASED
                fee = e.amount * e.fee_bps // 10_000
                self.pay(e.buyer, e.token, e.amount - fee)
                self.pay(e.fee_recipient, e.token, fee)
            elif action in (CANCEL, RECLAIM):
                e.state = REFUNDED
                self.pay(e.seller, e.token, e.amount)
            else:
                e.state = RESOLVED
                gross = e.amount * bps // 10_000
                fee = gross * e.fee_bps // 10_000
                self.pay(e.buyer, e.token, gross - fee)
                self.pay(e.fee_recipient, e.token, fee)
                self.pay(e.seller, e.token, e.amount - gross)

        # ------------------------------------------------------------ rules

        def open_escrow(
            self, seller: str, buyer: str, asset: str, amount: int, window: int, period: int
        ) -> None:
            ref = next(refs).to_bytes(32, "big")
            payment_deadline = self.time + window
            deadline = payment_deadline + period
            data = call_data(
                "open(bytes32,address,address,address,uint256,uint64,uint64)",
                ["bytes32", "address", "address", "address", "uint256", "uint64", "uint64"],
                [ref, buyer, arbitrator, asset, amount, window, deadline],
            )
            value = amount if asset == NATIVE else 0
            ok = self.send(seller, data, value)
            expected = (
                amount > 0
                and buyer != seller
                and not (asset == token_addr and seller in self.blocked)
            )
            assert ok == expected
            seen["open", ok] += 1
            if ok:
                id_ = keccak(encode(["address", "bytes32"], [seller, ref]))
                fee_bps, fee_to = self.fee
                e = Model(seller, buyer, asset, amount, fee_bps, fee_to, payment_deadline, deadline)
                self.escrows.append((id_, e))
                self.balance[(seller, asset)] -= amount
                self.balance[(escrow_addr, asset)] += amount

        # ------------------------------------------------------------ rules

        @initialize(bps=st.integers(0, 500), amount=st.integers(1, 10**9))
        def start(self, bps: int, amount: int) -> None:
            """A fee, then one escrow per asset and kind of buyer."""
            data = call_data(
                "set_fee(uint16,address)", ["uint16", "address"], [bps, fee_recipients[0]]
            )
            assert self.send(p.owner.address, data)
            self.fee = (bps, fee_recipients[0])
            self.blocklist(p.fresh.address, True)  # its token payouts are deferred
            for asset in assets:
                for buyer in buyers:
                    self.open_escrow(sellers[0], buyer, asset, amount, 3600, 7200)

        @step_args(
            seller=st.sampled_from(sellers),
            buyer=st.sampled_from([*buyers, sellers[0]]),
            asset=st.sampled_from(assets),
            amount=st.integers(0, 10**9),
            window=st.sampled_from([60, 3600]),
            period=st.sampled_from([1, 7200]),
        )
        def open(self, seller: str, buyer: str, asset: str, amount: int, window: int, period: int):
            self.open_escrow(seller, buyer, asset, amount, window, period)

        @step_args(
            which=st.integers(0, 10**6),
            role=st.sampled_from(["seller", "buyer", "arbitrator", "other"]),
            other=st.sampled_from(callers),
            action=st.sampled_from([MARK_PAID, RELEASE, CANCEL, DISPUTE, RESOLVE, RECLAIM]),
            bps=st.sampled_from([0, 1, 2500, 5000, 9999, 10_000, 10_001]),
            mode=st.sampled_from(["direct", "relayed", "stale", "foreign"]),
            guided=st.booleans(),
            pick=st.integers(0, 2**16),
        )
        def act(
            self,
            which: int,
            role: str,
            other: str,
            action: int,
            bps: int,
            mode: str,
            guided: bool,
            pick: int,
        ) -> None:
            """A party (or anyone) calls an action directly, or signs it for
            `other` to relay, possibly at an already consumed nonce. When
            `guided`, the action is one the escrow's state admits, by the party
            it requires (it may still fail on time); otherwise anything goes."""
            if not self.escrows:
                return
            id_, e = self.escrows[which % len(self.escrows)]
            if guided:
                options = {
                    FUNDED: [MARK_PAID, RELEASE, CANCEL, DISPUTE, RECLAIM],
                    PAID: [RELEASE, CANCEL, DISPUTE, RECLAIM],
                    DISPUTED: [RESOLVE, RESOLVE, RELEASE],
                }.get(e.state, [action])
                action = options[pick % len(options)]
                role = {
                    MARK_PAID: "buyer",
                    CANCEL: "buyer",
                    RELEASE: "seller",
                    RECLAIM: "seller",
                    RESOLVE: "arbitrator",
                    DISPUTE: ("buyer", "seller")[pick // 8 % 2],
                }[action]
            caller = {"seller": e.seller, "buyer": e.buyer, "arbitrator": arbitrator}.get(
                role, other
            )
            if mode == "direct":
                if caller not in callers:  # the receiver contract sends nothing itself
                    caller = other
                if action == RESOLVE:
                    data = call_data("resolve(bytes32,uint16)", ["bytes32", "uint16"], [id_, bps])
                else:
                    name = {
                        MARK_PAID: "mark_paid",
                        RELEASE: "release",
                        CANCEL: "cancel",
                        DISPUTE: "dispute",
                        RECLAIM: "reclaim",
                    }[action]
                    data = call_data(f"{name}(bytes32)", ["bytes32"], [id_])
                expected = self.allowed(e, action, caller, bps)
                assert self.send(caller, data) == expected
                seen["act", action, expected] += 1
            else:
                signer = caller if caller in keys else other
                if signer not in keys:  # the owner's key is not in the signing set
                    signer = p.relayer.address
                bps = bps if action == RESOLVE else 0
                stale = mode == "stale" and e.nonce > 0
                nonce = e.nonce - 1 if stale else e.nonce
                expiry = self.time + 100
                # "foreign": signed for another escrow (at this one's nonce).
                signed_id = self.escrows[(which + 1) % len(self.escrows)][0]
                foreign = mode == "foreign" and signed_id != id_
                signed_id = signed_id if foreign else id_
                msg = action_message(escrow, signed_id, action, bps, nonce, expiry)
                sig = sign(keys[signer], msg)
                data = call_data(
                    "execute(bytes32,uint8,uint16,uint256,bytes)",
                    ["bytes32", "uint8", "uint16", "uint256", "bytes"],
                    [id_, action, bps, expiry, sig],
                )
                expected = not stale and not foreign and self.allowed(e, action, signer, bps)
                assert self.send(other, data) == expected
                kind = "stale" if stale else "foreign" if foreign else action
                seen["relayed", kind, expected] += 1
                if expected:
                    e.nonce += 1
            if expected:
                self.apply(e, action, bps)

        @step_args(
            caller=st.sampled_from(callers),
            asset=st.sampled_from(assets),
            guided=st.booleans(),
        )
        def claim(self, caller: str, asset: str, guided: bool) -> None:
            """Anyone claims; when `guided`, someone who is owed something."""
            debts = sorted(k for k, v in self.owed.items() if v and k[0] in callers)
            if guided and debts:
                caller, asset = debts[0]
                if caller in self.blocked:  # lift the block first
                    self.blocklist(caller, False)
            owed = self.owed[(caller, asset)]
            data = call_data("claim(address)", ["address"], [asset])
            expected = owed > 0 and self.can_receive(caller, asset)
            assert self.send(caller, data) == expected
            seen["claim", expected] += 1
            if expected:
                self.owed[(caller, asset)] = 0
                self.balance[(caller, asset)] += owed
                self.balance[(escrow_addr, asset)] -= owed

        @step_args(
            who=st.sampled_from([*sellers, *eoa_buyers, *fee_recipients]), flag=st.booleans()
        )
        def blocklist(self, who: str, flag: bool) -> None:
            if not flag and self.blocked and who not in self.blocked:
                who = sorted(self.blocked)[0]  # lift a block that is in force
            data = call_data("set_blocked(address,bool)", ["address", "bool"], [who, flag])
            assert self.send(p.owner.address, data, to=token_addr)
            (self.blocked.add if flag else self.blocked.discard)(who)

        @step_args(
            caller=st.sampled_from([p.owner.address, arbitrator, sellers[0]]),
            bps=st.sampled_from([0, 100, 500, 501]),
            recipient=st.sampled_from(fee_recipients),
        )
        def set_fee(self, caller: str, bps: int, recipient: str) -> None:
            data = call_data("set_fee(uint16,address)", ["uint16", "address"], [bps, recipient])
            expected = caller == p.owner.address and bps <= 500
            assert self.send(caller, data) == expected
            if expected:
                self.fee = (bps, recipient)

        @step_args(seconds=st.sampled_from([30, 600, 3600, 7200]))
        def warp(self, seconds: int) -> None:
            self.time += seconds

        @rule(kind=st.sampled_from(STEP_KINDS), data=st.data())
        def step(self, kind: str, data: st.DataObject) -> None:
            """One step of a random kind (actions are the most frequent), its
            arguments drawn from the strategies of that kind's method."""
            method = getattr(self, kind)
            method(**{k: data.draw(v, label=k) for k, v in method.strategies.items()})

        # ------------------------------------------------------- invariants

        @invariant()
        def balances_match_the_model(self) -> None:
            assert self.read_balances() == self.balance

        @invariant()
        def contract_holds_open_escrows_plus_owed(self) -> None:
            owed = self.read_owed()
            assert owed == self.owed
            for asset in assets:
                open_sum = sum(
                    e.amount
                    for _, e in self.escrows
                    if e.token == asset and e.state in (FUNDED, PAID, DISPUTED)
                )
                owed_sum = sum(v for (_, a), v in owed.items() if a == asset)
                assert self.balance[(escrow_addr, asset)] == open_sum + owed_sum

    EscrowMachine.seen = seen
    return EscrowMachine


def test_escrow_state_machine(escrow, blocklist_token, receiver, parties, chain):
    machine = make_machine(escrow, blocklist_token, receiver, parties, chain)
    run_state_machine_as_test(machine, settings=SETTINGS)
    # The examples must have exercised every path, allowed and refused, so
    # that the invariants above were checked after each kind of payout.
    seen = machine.seen
    actions = (MARK_PAID, RELEASE, CANCEL, DISPUTE, RESOLVE, RECLAIM)
    missing = [
        key
        for key in [
            ("open", True),
            ("open", False),
            *[("act", a, False) for a in actions],
            *[("relayed", a, False) for a in actions],
            ("relayed", "stale", False),
            ("relayed", "foreign", False),
            ("claim", True),
            ("claim", False),
            ("deferred", NATIVE),
            ("deferred", blocklist_token.address),
        ]
        if not seen[key]
    ]
    # Each action succeeded at least once, directly or relayed (same code path
    # after the signature check), and both ways succeeded for some action.
    missing += [a for a in actions if not (seen["act", a, True] or seen["relayed", a, True])]
    assert not missing, (missing, dict(seen))
    assert sum(n for k, n in seen.items() if k[0] == "act" and k[-1] is True) > 0
    assert sum(n for k, n in seen.items() if k[0] == "relayed" and k[-1] is True) > 0


def test_raw_encoding_matches_ape(escrow):
    """The raw-RPC encoding the state machine uses matches ape's."""
    ref = (7).to_bytes(32, "big")
    raw = call_data("mark_paid(bytes32)", ["bytes32"], [ref])
    assert raw == "0x" + bytes(escrow.mark_paid.encode_input(ref)).hex()
    raw = call_data("resolve(bytes32,uint16)", ["bytes32", "uint16"], [ref, 77])
    assert raw == "0x" + bytes(escrow.resolve.encode_input(ref, 77)).hex()
