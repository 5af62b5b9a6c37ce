"""The relayer: submits signed EIP-712 instructions to the Escrow contract
from the node's gas wallet and follows them to their confirmations.

A ``RelayJob`` row per instruction; ``instruction_hash`` (keccak of the
calldata) is unique, so an instruction is never queued twice. A job moves
through one state per database transaction::

    queued --sign--> signed --broadcast--> sent --receipt--> mined --N confs--> confirmed
       \\                       ^             |                  \\
        `-> failed (simulation)  `-- bump ---'                    `-> failed (reverted)

- **queued -> signed**: simulate with ``eth_call`` (an instruction that would
  revert fails here, with the revert reason, and no transaction is made);
  allocate the sender nonce (a PostgreSQL advisory lock serialises
  allocation between processes), sign, and *commit the raw transaction and
  its nonce* before anything is broadcast.
- **signed -> sent**: broadcast the stored raw transaction. After a crash at
  any point the same bytes (same nonce, same hash) are sent again, never a
  new transaction.
- **sent**: look for a receipt of any of the job's transaction hashes; when
  none arrived for ``fee_bump_after_s``, sign a replacement with the same
  nonce and fees raised by at least 12.5% (both maxFeePerGas and
  maxPriorityFeePerGas), store it (status back to ``signed``, every hash kept
  in ``tx_hashes``), then broadcast it.
- **mined**: wait for ``confirmations``; a receipt that disappears (reorg)
  sends the job back to ``sent``. A reverted transaction marks the job
  ``failed`` with the revert reason.

Jobs are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of
relayer processes can run ``process_once`` on the same queue.

Crash points (node/crashpoints.py, for the crash tests): ``relay.nonce``
(nonce allocated, nothing signed), ``relay.signed`` (signed, not committed),
``relay.broadcast`` (broadcast, ``sent`` not committed), ``relay.followed``
(receipt seen, not committed) and ``relay.after_<status>`` right after a
transition to <status> is committed (``relay.after_signed``: stored but not
yet broadcast).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from node.chains.base import TxState
from node.chains.evm.adapter import EvmAdapter, revert_reason
from node.chains.evm.rpc import RpcError
from node.crashpoints import crashpoint
from node.db.models import RelayJob
from node.errors import BroadcastError, ChainError, EscrowStateError
from node.ops.logs import log_context
from wallets.evm.signer import EvmSigner

log = logging.getLogger(__name__)

QUEUED, SIGNED, SENT, MINED, CONFIRMED, FAILED = (
    "queued", "signed", "sent", "mined", "confirmed", "failed"
)
ACTIVE = (QUEUED, SIGNED, SENT, MINED)
BUMP_NUM, BUMP_DEN = 1125, 1000  # +12.5%

ACTION_NAMES = {1: "mark_paid", 2: "release", 3: "cancel", 4: "dispute", 5: "resolve",
                6: "reclaim", 7: "settle"}

_SIGS = {
    "execute": ("execute(bytes32,uint8,uint16,uint256,bytes)",
                ["bytes32", "uint8", "uint16", "uint256", "bytes"]),
    "settle": ("settle(bytes32,uint16,uint256,bytes,bytes)",
               ["bytes32", "uint16", "uint256", "bytes", "bytes"]),
    "open_relayed": (
        "open_relayed(address,bytes32,address,address,address,uint256,uint64,uint64,uint256,"
        "bytes,uint256,uint8,bytes32,bytes32)",
        ["address", "bytes32", "address", "address", "address", "uint256", "uint64", "uint64",
         "uint256", "bytes", "uint256", "uint8", "bytes32", "bytes32"],
    ),
}


class RelayRefusedError(EscrowStateError):
    """The instruction would revert (bad signature, wrong state, expired): it
    is not submitted. ``reason`` is the contract's revert string."""

    code = "relay_refused"


def _b(hexstr: str | bytes) -> bytes:
    return bytes.fromhex(hexstr.removeprefix("0x")) if isinstance(hexstr, str) else hexstr


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


# --- instructions (JSON-safe dicts, stored in RelayJob.instruction) -------


def execute_instruction(
    *, escrow_id: str, action: int, buyer_bps: int = 0, expiry: int, signature: bytes | str
) -> dict[str, Any]:
    """``execute(id, action, buyer_bps, expiry, signature)``: one party's signed Action."""
    return {"kind": "execute", "id": _hex(_b(escrow_id)), "action": int(action),
            "buyer_bps": int(buyer_bps), "expiry": str(expiry),
            "signature": _hex(_b(signature))}


def settle_instruction(
    *, escrow_id: str, buyer_bps: int, expiry: int, buyer_sig: bytes | str,
    seller_sig: bytes | str,
) -> dict[str, Any]:
    """``settle(id, buyer_bps, expiry, buyer_sig, seller_sig)``: both parties' SETTLE."""
    return {"kind": "settle", "id": _hex(_b(escrow_id)), "buyer_bps": int(buyer_bps),
            "expiry": str(expiry), "buyer_sig": _hex(_b(buyer_sig)),
            "seller_sig": _hex(_b(seller_sig))}


def open_relayed_instruction(
    *, seller: str, ref: str | bytes, buyer: str, arbitrator: str, token: str, amount: int,
    payment_window: int, deadline: int, expiry: int, open_sig: bytes | str,
    permit_deadline: int = 0, v: int = 0, r: str | bytes = b"\0" * 32,
    s: str | bytes = b"\0" * 32,
) -> dict[str, Any]:
    """``open_relayed(...)``: the seller's signed Open (+ optional EIP-2612 permit)."""
    return {"kind": "open_relayed", "seller": to_checksum_address(seller), "ref": _hex(_b(ref)),
            "buyer": to_checksum_address(buyer), "arbitrator": to_checksum_address(arbitrator),
            "token": to_checksum_address(token), "amount": str(amount),
            "payment_window": int(payment_window), "deadline": int(deadline),
            "expiry": str(expiry), "open_sig": _hex(_b(open_sig)),
            "permit_deadline": str(permit_deadline), "v": int(v), "r": _hex(_b(r)),
            "s": _hex(_b(s))}


def encode_call(ins: dict[str, Any]) -> bytes:
    """The calldata of an instruction."""
    kind = ins["kind"]
    sig, types = _SIGS[kind]
    if kind == "execute":
        args: list[Any] = [_b(ins["id"]), ins["action"], ins["buyer_bps"], int(ins["expiry"]),
                           _b(ins["signature"])]
    elif kind == "settle":
        args = [_b(ins["id"]), ins["buyer_bps"], int(ins["expiry"]), _b(ins["buyer_sig"]),
                _b(ins["seller_sig"])]
    else:
        args = [ins["seller"], _b(ins["ref"]), ins["buyer"], ins["arbitrator"], ins["token"],
                int(ins["amount"]), ins["payment_window"], ins["deadline"], int(ins["expiry"]),
                _b(ins["open_sig"]), int(ins["permit_deadline"]), ins["v"], _b(ins["r"]),
                _b(ins["s"])]
    return function_signature_to_4byte_selector(sig) + abi_encode(types, args)


def instruction_hash(ins: dict[str, Any]) -> str:
    return _hex(keccak(encode_call(ins)))


def _action_name(ins: dict[str, Any]) -> str:
    if ins["kind"] == "execute":
        return ACTION_NAMES.get(int(ins["action"]), "execute")
    return "settle" if ins["kind"] == "settle" else "open"


def _escrow_key(ins: dict[str, Any]) -> str:
    if "id" in ins:
        return str(ins["id"])
    sel = to_checksum_address(ins["seller"])
    return _hex(keccak(abi_encode(["address", "bytes32"], [sel, _b(ins["ref"])])))


def is_revert(exc: RpcError) -> bool:
    """Whether a call failed because the EVM reverted (not the node)."""
    return exc.rpc_code == 3 or "revert" in exc.rpc_message.lower()


def _bumped(value: Any) -> int:
    """``value`` raised by 12.5%, rounded up."""
    return (int(value) * BUMP_NUM + BUMP_DEN - 1) // BUMP_DEN


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    instruction_hash: str
    created: bool  # False: the same instruction was queued before


class EvmRelayer:
    def __init__(
        self,
        adapter: EvmAdapter,
        sessions: sessionmaker[Session],
        signer: EvmSigner,
        *,
        confirmations: int = 2,
        fee_bump_after_s: float = 30.0,
        gas_headroom: float = 1.25,
        now: Callable[[], datetime] = utcnow,
        after_commit: Callable[[str, int], None] | None = None,
    ) -> None:
        self.adapter = adapter
        self.sessions = sessions
        self.signer = signer
        self.chain = adapter.chain_key
        self.confirmations = confirmations
        self.fee_bump_after_s = fee_bump_after_s
        self.gas_headroom = gas_headroom
        self.now = now
        # test hook: called after each committed transition (status, job id)
        self.after_commit = after_commit

    # --- queueing -----------------------------------------------------

    def simulate(self, ins: dict[str, Any]) -> int:
        """eth_call the instruction from the gas wallet; the gas it needs.
        Raises RelayRefusedError with the revert reason if it would revert."""
        tx = {"from": self.signer.address, "to": self.adapter.escrow_address,
              "data": _hex(encode_call(ins))}
        try:
            self.adapter.call(tx)
            return self.adapter.estimate_gas(tx)
        except RpcError as exc:
            if not is_revert(exc):
                raise  # the node failed, not the instruction: retried later
            reason = revert_reason(exc)
            raise RelayRefusedError(
                f"instruction refused: it would revert ({reason})", reason=reason,
                action=_action_name(ins),
            ) from exc

    def enqueue(self, session: Session, instruction: dict[str, Any]) -> EnqueueResult:
        """Queue an instruction in the caller's transaction, after simulating
        it (RelayRefusedError if it would revert). Queuing the same
        instruction again returns the existing job."""
        ihash = instruction_hash(instruction)
        existing = session.execute(
            select(RelayJob.id).where(RelayJob.instruction_hash == ihash)
        ).scalar_one_or_none()
        if existing is not None:
            return EnqueueResult(existing, ihash, False)
        self.simulate(instruction)
        job = RelayJob(chain=self.chain, escrow_key=_escrow_key(instruction),
                       action=_action_name(instruction), instruction_hash=ihash,
                       instruction=instruction, status=QUEUED, tx_hashes=[], attempts=0)
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError:  # queued concurrently by another request
            other = session.execute(
                select(RelayJob.id).where(RelayJob.instruction_hash == ihash)
            ).scalar_one()
            return EnqueueResult(other, ihash, False)
        return EnqueueResult(job.id, ihash, True)

    # --- processing ---------------------------------------------------

    def _claim(self, s: Session, after_id: int) -> RelayJob | None:
        return s.execute(
            select(RelayJob)
            .where(RelayJob.chain == self.chain, RelayJob.status.in_(ACTIVE),
                   RelayJob.id > after_id)
            .order_by(RelayJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()

    def process_once(self) -> int:
        """One pass over the active jobs, one transition each (each in its own
        transaction, the job row locked, jobs locked by another process
        skipped). Returns the number of jobs whose status changed."""
        changed = 0
        last_id = 0
        while True:
            with self.sessions() as s, s.begin():
                job = self._claim(s, last_id)
                if job is None:
                    break
                last_id = job.id
                before = job.status
                with log_context(escrow_key=job.escrow_key, job_id=f"relay:{job.id}"):
                    self._advance(s, job)
                after = job.status
            if after != before:
                crashpoint(f"relay.after_{after}")
                changed += 1
                if self.after_commit is not None:
                    self.after_commit(after, last_id)
        return changed

    def process_until_idle(self, max_rounds: int = 50) -> None:
        """Process until a pass changes nothing (tests, CLI)."""
        for _ in range(max_rounds):
            if self.process_once() == 0:
                return

    def jobs(self) -> Iterator[RelayJob]:
        with self.sessions() as s:
            yield from s.execute(
                select(RelayJob).where(RelayJob.chain == self.chain).order_by(RelayJob.id)
            ).scalars()

    def _waits_for_earlier(self, s: Session, job: RelayJob) -> bool:
        """Whether an earlier instruction for the same escrow is not mined
        yet: instructions for one escrow are signed one after the other, each
        simulated on the state the previous one left, so of a release racing
        a dispute only the first is sent and the second is refused before any
        transaction is made (instead of reverting on chain, gas paid)."""
        ahead = s.scalar(
            select(func.count()).select_from(RelayJob).where(
                RelayJob.chain == self.chain, RelayJob.escrow_key == job.escrow_key,
                RelayJob.id < job.id, RelayJob.status.in_((QUEUED, SIGNED, SENT)),
            )
        )
        return bool(ahead)

    def _advance(self, s: Session, job: RelayJob) -> None:
        try:
            if job.status == QUEUED:
                if self._waits_for_earlier(s, job):
                    return
                self._sign_new(s, job)
            elif job.status == SIGNED:
                self._broadcast(job)
            elif job.status in (SENT, MINED):
                self._follow(job)
        except ChainError as exc:  # the node or the chain refused: retried next pass
            job.error = str(exc)[:2000]
            log.warning("relay job %d (%s): %s", job.id, job.status, exc)

    def _sign_new(self, s: Session, job: RelayJob) -> None:
        try:
            gas = self.simulate(job.instruction)
        except RelayRefusedError as exc:
            job.status = FAILED
            job.error = exc.message
            return
        sender = self.signer.address
        if s.get_bind().dialect.name == "postgresql":
            # one nonce allocator per (chain, sender) at a time, across processes
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                      {"k": f"relayer-nonce:{self.chain}:{sender}"})
        used = s.execute(
            select(func.max(RelayJob.sender_nonce)).where(
                RelayJob.chain == self.chain, RelayJob.sender == sender
            )
        ).scalar_one_or_none()
        nonce = max(self.adapter.nonce(sender, "pending"), (used + 1) if used is not None else 0)
        crashpoint("relay.nonce")
        quote = self.adapter.fee_quote()
        tip = max(quote.max_priority_fee, 1)
        tx: dict[str, Any] = {
            "type": 2, "chainId": self.adapter.chain_id, "nonce": nonce,
            "to": to_checksum_address(self.adapter.escrow_address), "value": 0,
            "data": _hex(encode_call(job.instruction)), "gas": int(gas * self.gas_headroom),
            "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * quote.base_fee + tip,
        }
        signed = self.signer.sign_transaction(tx)
        job.sender = sender
        job.sender_nonce = nonce
        job.raw_tx = _hex(signed.raw)
        job.tx_hash = signed.hash
        job.tx_hashes = [signed.hash]
        job.max_fee_per_gas = tx["maxFeePerGas"]
        job.status = SIGNED
        job.error = None
        crashpoint("relay.signed")

    def _broadcast(self, job: RelayJob) -> None:
        assert job.raw_tx is not None
        try:
            self.adapter.broadcast(_b(job.raw_tx))
        except RpcError as exc:
            msg = exc.rpc_message.lower()
            if "nonce too low" in msg or "nonce has already been used" in msg:
                # one of this job's transactions (or a foreign one) took the
                # nonce: the receipts tell which
                job.status = SENT
                job.error = str(exc)
                return
            raise BroadcastError(f"broadcast of job {job.id} refused: {exc.rpc_message}",
                                 txid=job.tx_hash) from exc
        crashpoint("relay.broadcast")
        job.status = SENT
        job.attempts = (job.attempts or 0) + 1
        job.last_sent_at = self.now()

    def _follow(self, job: RelayJob) -> None:
        for h in reversed(job.tx_hashes):
            st = self.adapter.tx_status(h)
            if st.state in (TxState.CONFIRMED, TxState.FAILED):
                job.tx_hash = h
                job.confirmed_block = st.block_number
                if st.state == TxState.FAILED:
                    job.status = FAILED
                    job.error = "reverted: " + self._revert_reason(job, st.block_number)
                elif st.confirmations >= self.confirmations:
                    job.status = CONFIRMED
                else:
                    job.status = MINED
                crashpoint("relay.followed")
                return
        if job.status == MINED:  # its receipt vanished: a reorg
            log.warning("relay job %d: receipt gone (reorg); following again", job.id)
            job.status = SENT
            job.confirmed_block = None
        assert job.sender is not None and job.sender_nonce is not None
        if self.adapter.nonce(job.sender, "latest") > job.sender_nonce:
            # The nonce is used but none of our hashes had a receipt: either
            # one was mined just now (seen next pass) or a foreign
            # transaction took the nonce (none of ours is known at all).
            if all(self.adapter.tx_status(h).state == TxState.UNKNOWN for h in job.tx_hashes):
                job.status = FAILED
                job.error = f"nonce {job.sender_nonce} was used by another transaction"
            return
        sent_at = job.last_sent_at
        waited = (self.now() - sent_at).total_seconds() if sent_at else float("inf")
        if waited >= self.fee_bump_after_s:
            self._bump(job)
        elif self.adapter.tx_status(job.tx_hashes[-1]).state == TxState.UNKNOWN:
            assert job.raw_tx is not None
            self.adapter.broadcast(_b(job.raw_tx))  # dropped from the pool: send again

    def _bump(self, job: RelayJob) -> None:
        from eth_account.typed_transactions.typed_transaction import TypedTransaction
        from hexbytes import HexBytes

        assert job.raw_tx is not None
        old = TypedTransaction.from_bytes(HexBytes(_b(job.raw_tx))).as_dict()
        quote = self.adapter.fee_quote()
        tip = max(_bumped(old["maxPriorityFeePerGas"]), quote.max_priority_fee)
        max_fee = max(_bumped(old["maxFeePerGas"]), 2 * quote.base_fee + tip)
        tx: dict[str, Any] = {
            "type": 2, "chainId": int(old["chainId"]), "nonce": int(old["nonce"]),
            "to": to_checksum_address(_hex(bytes(old["to"]))), "value": int(old["value"]),
            "data": _hex(bytes(old["data"])), "gas": int(old["gas"]),
            "maxPriorityFeePerGas": tip, "maxFeePerGas": max_fee,
        }
        signed = self.signer.sign_transaction(tx)
        log.info("relay job %d: fee bump to %d/%d wei (nonce %d): %s", job.id, max_fee, tip,
                 tx["nonce"], signed.hash)
        job.raw_tx = _hex(signed.raw)
        job.tx_hash = signed.hash
        job.tx_hashes = [*job.tx_hashes, signed.hash]
        job.max_fee_per_gas = max_fee
        job.status = SIGNED  # committed before it is broadcast

    def _revert_reason(self, job: RelayJob, block: int | None) -> str:
        """Replay the call at the block it failed in (the state after that
        block: good enough to name the reason)."""
        tx = {"from": job.sender, "to": self.adapter.escrow_address,
              "data": _hex(encode_call(job.instruction))}
        try:
            self.adapter.call(tx, hex(block) if block is not None else "latest")
        except RpcError as exc:
            return revert_reason(exc)
        return "unknown (the call succeeds when replayed)"
