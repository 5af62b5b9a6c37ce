"""The relayer and the EIP-712 builders against a real anvil and PostgreSQL.

Proves that:
- the EIP-712 payloads built by wallets/evm/eip712.py hash to the digests the
  contract computes (Action and Open), and signatures by wallets/evm/signer.py
  drive relayed opens, executions and settlements on chain;
- one instruction is submitted once even if enqueued twice;
- a relayer killed between committing the signed transaction and
  broadcasting it re-broadcasts the very same transaction after a restart
  (same hash, same nonce), never a second one;
- a stuck transaction is replaced with the same nonce and fees >= +12.5%,
  all hashes kept, and the job follows the replacement to its receipt;
- an instruction that would revert is refused before anything is submitted;
  one that reverts on chain is marked failed with the revert reason;
- two relayer processes working the same queue submit each job exactly once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node.db.models import ChainEvent, RelayJob
from node.relayer import (
    EvmRelayer,
    RelayRefusedError,
    execute_instruction,
    open_relayed_instruction,
    settle_instruction,
)
from tests.functional.evm_fixtures import EvmChain, make_ref
from wallets.evm.eip712 import ActionCode, action_typed_data, open_typed_data, recover_signer
from wallets.evm.signer import SoftwareSigner


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing after it runs."""


def signer_of(acct: Any) -> SoftwareSigner:
    return SoftwareSigner(acct.key)


def make_relayer(c: EvmChain, sessions: sessionmaker[Session], **kw: Any) -> EvmRelayer:
    kw.setdefault("confirmations", 2)
    return EvmRelayer(c.adapter(), sessions, signer_of(c.relayer), **kw)


def signed_action(
    c: EvmChain,
    who: Any,
    escrow_id: str,
    action: ActionCode,
    *,
    nonce: int = 0,
    buyer_bps: int = 0,
    expiry_in: int = 3600,
) -> dict[str, Any]:
    expiry = c.w3.eth.get_block("latest")["timestamp"] + expiry_in
    typed = action_typed_data(
        chain_id=c.deployment.chain_id,
        contract=c.deployment.escrow,
        escrow_id=escrow_id,
        action=action,
        buyer_bps=buyer_bps,
        nonce=nonce,
        expiry=expiry,
    )
    sig = signer_of(who).sign_typed_data(typed)
    return execute_instruction(
        escrow_id=escrow_id, action=action, buyer_bps=buyer_bps, expiry=expiry, signature=sig
    )


def enqueue(relayer: EvmRelayer, sessions: sessionmaker[Session], ins: dict[str, Any]) -> Any:
    with sessions() as s, s.begin():
        return relayer.enqueue(s, ins)


def job(sessions: sessionmaker[Session], job_id: int) -> RelayJob:
    with sessions() as s:
        j = s.get(RelayJob, job_id)
        assert j is not None
        return j


def state_of(c: EvmChain, escrow_id: str) -> int:
    return int(c.escrow.functions.escrows(escrow_id).call()[7])


def relayer_nonce(c: EvmChain) -> int:
    return int(c.w3.eth.get_transaction_count(c.relayer.address))


def test_eip712_payloads_match_contract_digests(evm_chain: EvmChain) -> None:
    c = evm_chain
    eid = "0x" + "ab" * 32
    typed = action_typed_data(
        chain_id=c.deployment.chain_id,
        contract=c.deployment.escrow,
        escrow_id=eid,
        action=ActionCode.RESOLVE,
        buyer_bps=2500,
        nonce=3,
        expiry=2**40,
    )
    assert typed.digest == bytes(c.escrow.functions.action_digest(eid, 5, 2500, 3, 2**40).call())
    assert typed.payload["message"]["nonce"] == "3"  # uint256 as a decimal string
    sig = signer_of(c.seller).sign_typed_data(typed)
    assert len(sig) == 65 and recover_signer(typed, sig) == c.seller.address

    token = c.deployment.token("USDT").address
    o = open_typed_data(
        chain_id=c.deployment.chain_id,
        contract=c.deployment.escrow,
        seller=c.seller.address,
        ref=make_ref(5),
        buyer=c.buyer.address,
        arbitrator=c.arbitrator.address,
        token=token,
        amount=10**24 + 7,
        payment_window=600,
        deadline=2**33,
        expiry=2**34,
    )
    onchain = c.escrow.functions.open_digest(
        c.seller.address,
        make_ref(5),
        c.buyer.address,
        c.arbitrator.address,
        token,
        10**24 + 7,
        600,
        2**33,
        2**34,
    ).call()
    assert o.digest == bytes(onchain)
    with pytest.raises(ValueError):
        action_typed_data(
            chain_id=1,
            contract=c.deployment.escrow,
            escrow_id=eid,
            action=ActionCode.RELEASE,
            buyer_bps=1,
            nonce=0,
            expiry=1,
        )


def test_relayed_open_dispute_settle(evm_chain: EvmChain, sessions: sessionmaker[Session]) -> None:
    c = evm_chain
    r = make_relayer(c, sessions)
    tusd = c.token("TUSD")
    amount = 2_000 * 10**18
    c.transact(tusd.functions.approve(c.escrow.address, amount), c.seller.address)
    now = c.w3.eth.get_block("latest")["timestamp"]
    ref = make_ref(77)
    typed = open_typed_data(
        chain_id=c.deployment.chain_id,
        contract=c.deployment.escrow,
        seller=c.seller.address,
        ref=ref,
        buyer=c.buyer.address,
        arbitrator=c.arbitrator.address,
        token=tusd.address,
        amount=amount,
        payment_window=600,
        deadline=now + 7200,
        expiry=now + 3600,
    )
    ins = open_relayed_instruction(
        seller=c.seller.address,
        ref=ref,
        buyer=c.buyer.address,
        arbitrator=c.arbitrator.address,
        token=tusd.address,
        amount=amount,
        payment_window=600,
        deadline=now + 7200,
        expiry=now + 3600,
        open_sig=signer_of(c.seller).sign_typed_data(typed),
    )
    opened = enqueue(r, sessions, ins)
    eid = c.escrow_id(c.seller.address, ref)
    with sessions() as s:
        assert s.get(RelayJob, opened.job_id).escrow_key == eid  # type: ignore[union-attr]
    r.process_until_idle()
    assert state_of(c, eid) == 1  # FUNDED, paid by the seller, gas by the relayer

    enqueue(r, sessions, signed_action(c, c.buyer, eid, ActionCode.DISPUTE, nonce=0))
    r.process_until_idle()
    assert state_of(c, eid) == 3  # DISPUTED

    expiry = now + 3600
    settle = action_typed_data(
        chain_id=c.deployment.chain_id,
        contract=c.deployment.escrow,
        escrow_id=eid,
        action=ActionCode.SETTLE,
        buyer_bps=4000,
        nonce=1,
        expiry=expiry,
    )
    enqueue(
        r,
        sessions,
        settle_instruction(
            escrow_id=eid,
            buyer_bps=4000,
            expiry=expiry,
            buyer_sig=signer_of(c.buyer).sign_typed_data(settle),
            seller_sig=signer_of(c.seller).sign_typed_data(settle),
        ),
    )
    r.process_until_idle()
    c.anvil.mine(2)
    r.process_until_idle()
    assert state_of(c, eid) == 6  # RESOLVED
    assert [j.status for j in r.jobs()] == ["confirmed"] * 3


def test_instruction_submitted_once_even_if_enqueued_twice(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    eid = c.open_native(make_ref(1))
    r = make_relayer(c, sessions)
    ins = signed_action(c, c.seller, eid, ActionCode.RELEASE)
    first = enqueue(r, sessions, ins)
    second = enqueue(r, sessions, dict(ins))
    assert first.created and not second.created and first.job_id == second.job_id
    n0 = relayer_nonce(c)
    r.process_until_idle()
    enqueue(r, sessions, ins)  # again, after it ran: still the same job
    c.anvil.mine(1)
    r.process_until_idle()
    j = job(sessions, first.job_id)
    assert j.status == "confirmed" and len(j.tx_hashes) == 1
    assert relayer_nonce(c) == n0 + 1
    assert state_of(c, eid) == 4  # RELEASED
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(RelayJob)).scalar_one() == 1


def test_crash_between_commit_and_broadcast_rebroadcasts_same_tx(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    eid = c.open_native(make_ref(2))
    n0 = relayer_nonce(c)

    def crash(status: str, _job_id: int) -> None:
        if status == "signed":
            raise SimulatedCrash

    doomed = make_relayer(c, sessions, after_commit=crash)
    res = enqueue(doomed, sessions, signed_action(c, c.buyer, eid, ActionCode.MARK_PAID))
    with pytest.raises(SimulatedCrash):
        doomed.process_once()
    stored = job(sessions, res.job_id)
    assert stored.status == "signed" and stored.raw_tx and stored.sender_nonce == n0
    assert c.w3.eth.get_transaction_count(c.relayer.address, "pending") == n0  # never sent

    restarted = make_relayer(c, sessions)  # a new process
    restarted.process_until_idle()
    c.anvil.mine(1)
    restarted.process_until_idle()
    done = job(sessions, res.job_id)
    assert done.status == "confirmed"
    assert done.tx_hashes == [stored.tx_hash] and done.tx_hash == stored.tx_hash
    receipt = c.w3.eth.get_transaction_receipt(stored.tx_hash)
    assert receipt["status"] == 1
    assert c.w3.eth.get_transaction(stored.tx_hash)["nonce"] == n0
    assert relayer_nonce(c) == n0 + 1  # exactly one transaction
    assert state_of(c, eid) == 2  # PAID


def test_fee_bump_replaces_stuck_transaction(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    eid = c.open_native(make_ref(3))
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    r = make_relayer(c, sessions, fee_bump_after_s=30, now=lambda: clock[0])
    res = enqueue(r, sessions, signed_action(c, c.buyer, eid, ActionCode.MARK_PAID))
    c.anvil.rpc("evm_setAutomine", False)
    try:
        r.process_once()  # signed
        r.process_once()  # sent, stuck in the pool
        first = job(sessions, res.job_id)
        assert first.status == "sent"
        old = c.w3.eth.get_transaction(first.tx_hash)
        r.process_once()
        assert job(sessions, res.job_id).tx_hashes == [first.tx_hash]  # not yet: no bump
        clock[0] += timedelta(seconds=31)
        r.process_once()  # bump: replacement signed and committed
        r.process_once()  # replacement broadcast
        bumped = job(sessions, res.job_id)
        assert bumped.status == "sent" and len(bumped.tx_hashes) == 2
        assert bumped.tx_hashes[0] == first.tx_hash and bumped.tx_hash == bumped.tx_hashes[1]
        new = c.w3.eth.get_transaction(bumped.tx_hash)
        assert new["nonce"] == old["nonce"] == bumped.sender_nonce
        assert new["maxFeePerGas"] * 1000 >= old["maxFeePerGas"] * 1125
        assert new["maxPriorityFeePerGas"] * 1000 >= old["maxPriorityFeePerGas"] * 1125
        c.anvil.rpc("evm_mine")
    finally:
        c.anvil.rpc("evm_setAutomine", True)
    c.anvil.mine(1)
    r.process_until_idle()
    done = job(sessions, res.job_id)
    assert done.status == "confirmed" and done.tx_hash == bumped.tx_hashes[1]
    assert c.w3.eth.get_transaction_receipt(bumped.tx_hashes[1])["status"] == 1
    block = c.w3.eth.get_block(done.confirmed_block, full_transactions=True)
    mine = [t for t in block["transactions"] if t["from"] == c.relayer.address]
    assert len(mine) == 1  # the replacement, not both
    assert state_of(c, eid) == 2


def test_reverting_instruction_refused_before_submission(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    eid = c.open_native(make_ref(4))
    r = make_relayer(c, sessions)
    n0 = relayer_nonce(c)
    with pytest.raises(RelayRefusedError) as bad_signer:
        enqueue(r, sessions, signed_action(c, c.buyer, eid, ActionCode.RELEASE))
    assert bad_signer.value.fields["reason"] == "Escrow: caller is not the seller"
    with pytest.raises(RelayRefusedError) as wrong_state:
        enqueue(
            r, sessions, signed_action(c, c.arbitrator, eid, ActionCode.RESOLVE, buyer_bps=5000)
        )
    assert wrong_state.value.fields["reason"] == "Escrow: not disputed"
    with pytest.raises(RelayRefusedError) as expired:
        enqueue(r, sessions, signed_action(c, c.seller, eid, ActionCode.RELEASE, expiry_in=-10))
    assert "expired" in expired.value.fields["reason"]
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(RelayJob)).scalar_one() == 0
    assert relayer_nonce(c) == n0


def test_reverted_on_chain_marked_failed_with_reason(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    eid = c.open_native(make_ref(5))
    r = make_relayer(c, sessions, confirmations=1)
    cancel = enqueue(r, sessions, signed_action(c, c.buyer, eid, ActionCode.CANCEL))
    c.anvil.rpc("evm_setAutomine", False)
    try:
        r.process_once()  # signed (simulated fine: the escrow is FUNDED)
        r.process_once()  # sent
        # the seller releases from their own wallet, ahead in the same block
        # (the relayer itself sends one escrow's instructions one at a time)
        c.escrow.functions.release(eid).transact({
            "from": c.seller.address, "gas": 300_000,
            "maxPriorityFeePerGas": 500 * 10**9, "maxFeePerGas": 1000 * 10**9})
        c.anvil.rpc("evm_mine")
    finally:
        c.anvil.rpc("evm_setAutomine", True)
    r.process_until_idle()
    bad = job(sessions, cancel.job_id)
    assert bad.status == "failed" and bad.error is not None
    assert bad.error.startswith("reverted: Escrow: ")
    assert c.w3.eth.get_transaction_receipt(bad.tx_hash)["status"] == 0
    assert state_of(c, eid) == 4


def test_two_relayer_processes_submit_each_job_once(
    evm_chain: EvmChain, sessions: sessionmaker[Session]
) -> None:
    c = evm_chain
    ids = [c.open_native(make_ref(100 + i), amount=10**16) for i in range(6)]
    first = make_relayer(c, sessions)
    for eid in ids:
        enqueue(first, sessions, signed_action(c, c.buyer, eid, ActionCode.MARK_PAID))
    n0 = relayer_nonce(c)
    workers = [first, make_relayer(c, sessions)]
    errors: list[BaseException] = []

    def work(rel: EvmRelayer) -> None:
        try:
            for _ in range(6):
                rel.process_once()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    c.anvil.mine(1)
    first.process_until_idle()
    jobs = list(first.jobs())
    assert [j.status for j in jobs] == ["confirmed"] * 6
    assert all(len(j.tx_hashes) == 1 for j in jobs)
    assert sorted(j.sender_nonce for j in jobs) == list(range(n0, n0 + 6))  # type: ignore[type-var]
    assert relayer_nonce(c) == n0 + 6
    assert all(state_of(c, eid) == 2 for eid in ids)
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(ChainEvent)).scalar_one() == 0
