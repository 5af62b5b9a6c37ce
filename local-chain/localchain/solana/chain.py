"""The ledger around LiteSVM: slots, blockhashes, commitment levels, history.

LiteSVM executes transactions and holds the latest account state; it has no
slots, forks, blockhash queue or lasting history. ``Chain`` adds them:

- one block per slot; each slot gets its own blockhash (random per chain, so a
  transaction signed for another local chain is refused) and the Clock sysvar
  follows wall time;
- a blockhash is valid for 150 slots (agave's ``MAX_PROCESSING_AGE``), for
  preflight and simulation 144 (minus ``MAX_TRANSACTION_FORWARDING_DELAY``), both
  counted against the bank of the requested commitment; durable-nonce
  transactions are accepted when the nonce account holds their blockhash;
- processed = the working slot, confirmed = one slot behind, finalized =
  ``finality_slots`` behind. Reads at confirmed/finalized see the account state
  as of that slot (pre-images of the accounts written since are kept);
- every committed transaction (failed ones too: they pay their fee) is kept for
  getTransaction, and indexed by every account key for getSignaturesForAddress.

Not thread-safe by itself any more than LiteSVM is: every public method takes
the chain's lock, so callers may come from any thread."""

from __future__ import annotations

import base64
import bisect
import hashlib
import os
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.clock import Clock
from solders.epoch_schedule import EpochSchedule
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0, MessageV1
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from localchain.solana.accounts import (
    MINT_LEN,
    NATIVE_MINT,
    NATIVE_MINT_2022,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    TOKEN_PROGRAMS,
    mint_account_data,
    parse_mint,
    parse_token_account,
    ui_token_amount,
)
from localchain.solana.b58 import b58encode
from localchain.solana.errors import tx_error_json

MAX_PROCESSING_AGE = 150
MAX_TRANSACTION_FORWARDING_DELAY = 6
STATUS_CACHE_SLOTS = 300
LAMPORTS_PER_SIGNATURE = 5000
DEFAULT_FINALITY_SLOTS = 32
FAUCET_LAMPORTS = 500_000_000 * 10**9
SLOT_HASHES_MAX = 512

SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
COMPUTE_BUDGET_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
ALT_PROGRAM_ID = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
PRECOMPILES = {
    Pubkey.from_string("Ed25519SigVerify111111111111111111111111111"),
    Pubkey.from_string("KeccakSecp256k11111111111111111111111111111"),
    Pubkey.from_string("Secp256r1SigVerify1111111111111111111111111"),
}
_ALT_META_SIZE = 56
_NONCE_ACCOUNT_LEN = 80

COMMITMENTS = ("processed", "confirmed", "finalized")


@dataclass
class Block:
    slot: int
    parent_slot: int
    blockhash: Hash
    block_height: int
    block_time: int
    txs: list[int] = field(default_factory=list)


@dataclass
class TxRecord:
    seq: int
    signature: Signature
    slot: int
    index: int  # position in its block
    tx: VersionedTransaction
    raw: bytes
    account_keys: list[Pubkey]
    err: Any  # Solana's JSON form, None on success
    meta: dict[str, Any]  # getTransaction's "meta", built once at commit
    block_time: int


@dataclass
class Simulation:
    err: Any
    logs: list[str]
    units: int
    return_data: dict[str, Any] | None
    inner: list[dict[str, Any]]
    post_accounts: dict[Pubkey, Account]


class Chain:
    """A LiteSVM-backed ledger; see the module docstring."""

    def __init__(
        self,
        *,
        finality_slots: int = DEFAULT_FINALITY_SLOTS,
        seed: bytes | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if finality_slots < 1:
            raise ValueError("finality_slots must be at least 1")
        self.finality_slots = finality_slots
        self._wall_clock = wall_clock
        self._seed = seed if seed is not None else os.urandom(32)
        self._lock = threading.RLock()
        svm = LiteSVM()
        # Signatures, blockhash age and duplicates are checked here, the way
        # agave's RPC and bank do; LiteSVM only executes.
        svm.with_sigverify(False)
        svm.with_blockhash_check(False)
        svm.with_transaction_history(0)
        self._schedule = EpochSchedule.without_warmup()
        svm.set_epoch_schedule(self._schedule)
        self.svm = svm
        self.slot = 0
        self.blocks: dict[int, Block] = {}
        self._blockhash_slot: dict[Hash, int] = {}
        self._slot_hashes: deque[tuple[int, Hash]] = deque(maxlen=SLOT_HASHES_MAX)
        self.txs: list[TxRecord] = []
        self._tx_slots: list[int] = []  # slot of each of self.txs (ascending)
        self.by_sig: dict[Signature, TxRecord] = {}
        self.by_address: dict[Pubkey, list[int]] = defaultdict(list)
        self._account_history: dict[Pubkey, list[tuple[int, Account | None]]] = {}
        self._history_queue: deque[tuple[int, Pubkey]] = deque()
        self._token_accounts_by_owner: dict[Pubkey, set[Pubkey]] = defaultdict(set)
        self._token_account_owner: dict[Pubkey, Pubkey] = {}
        self._mint_decimals: dict[Pubkey, int] = {}
        self._epoch_start_timestamp = int(self._wall_clock())
        self._airdrops = 0
        self.identity = Keypair.from_seed(hashlib.sha256(self._seed + b"identity").digest())
        self.faucet = Keypair.from_seed(hashlib.sha256(self._seed + b"faucet").digest())
        self._genesis_accounts()
        self._open_slot(0)
        self.genesis_hash = self.blocks[0].blockhash
        # Slot 0 is genesis, as on a cluster: transactions land from slot 1 on.
        self.advance(1)

    # ---------------------------------------------------------------- genesis

    def _genesis_accounts(self) -> None:
        rent = self.svm.minimum_balance_for_rent_exemption(MINT_LEN)
        for mint, program in (
            (NATIVE_MINT, TOKEN_PROGRAM_ID),
            (NATIVE_MINT_2022, TOKEN_2022_PROGRAM_ID),
        ):
            self.svm.set_account(mint, Account(rent, mint_account_data(9), program, False, 0))
        self.svm.set_account(
            self.faucet.pubkey(), Account(FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM_ID, False, 0)
        )

    # ------------------------------------------------------------------ slots

    def _blockhash_for(self, slot: int) -> Hash:
        return Hash(hashlib.sha256(self._seed + struct.pack("<Q", slot)).digest())

    def _open_slot(self, slot: int) -> None:
        self.slot = slot
        self.svm.warp_to_slot(slot)
        # LiteSVM's own blockhash only seeds durable nonces; move it each slot
        # so a nonce can advance once per slot, as on a cluster.
        self.svm.expire_blockhash()
        blockhash = self._blockhash_for(slot)
        now = int(self._wall_clock())
        epoch = self._schedule.get_epoch(slot)
        if slot and self._schedule.get_first_slot_in_epoch(epoch) == slot:
            self._epoch_start_timestamp = now
        self.svm.set_clock(
            Clock(
                slot,
                self._epoch_start_timestamp,
                epoch,
                self._schedule.get_leader_schedule_epoch(slot),
                now,
            )
        )
        self.blocks[slot] = Block(
            slot=slot,
            parent_slot=max(slot - 1, 0),
            blockhash=blockhash,
            block_height=slot,
            block_time=now,
        )
        self._blockhash_slot[blockhash] = slot
        self._slot_hashes.appendleft((slot, blockhash))

    def advance(self, slots: int = 1) -> int:
        """Close the working slot and open ``slots`` new ones; returns the slot."""
        with self._lock:
            for _ in range(slots):
                self._open_slot(self.slot + 1)
            self.svm.set_slot_hashes(list(self._slot_hashes))
            self._prune()
            return self.slot

    def _prune(self) -> None:
        final = self.slot_for("finalized")
        queue, history = self._history_queue, self._account_history
        while queue and queue[0][0] <= final:
            _, key = queue.popleft()
            entries = history.get(key)
            if entries:
                entries.pop(0)
                if not entries:
                    del history[key]
        old = self.slot - 4 * MAX_PROCESSING_AGE
        if old > 0 and old in self.blocks:
            self._blockhash_slot.pop(self.blocks[old].blockhash, None)

    def slot_for(self, commitment: str) -> int:
        if commitment == "processed":
            return self.slot
        if commitment == "confirmed":
            return max(self.slot - 1, 0)
        return max(self.slot - self.finality_slots, 0)

    def block_height(self, slot: int) -> int:
        return self.blocks[slot].block_height

    def epoch_info(self, slot: int) -> dict[str, int]:
        epoch, index = self._schedule.get_epoch_and_slot_index(slot)
        return {
            "absoluteSlot": slot,
            "blockHeight": self.block_height(slot),
            "epoch": epoch,
            "slotIndex": index,
            "slotsInEpoch": self._schedule.get_slots_in_epoch(epoch),
            "transactionCount": self.transaction_count(slot),
        }

    def transaction_count(self, slot: int) -> int:
        """Transactions committed in slots up to ``slot``."""
        return bisect.bisect_right(self._tx_slots, slot)

    @property
    def epoch_schedule(self) -> EpochSchedule:
        return self._schedule

    # ------------------------------------------------------------- blockhashes

    def blockhash_age_ok(self, blockhash: Hash, bank_slot: int, max_age: int) -> bool:
        slot = self._blockhash_slot.get(blockhash)
        return slot is not None and slot <= bank_slot and bank_slot - slot <= max_age

    def last_valid_block_height(self, blockhash: Hash, bank_slot: int) -> int | None:
        slot = self._blockhash_slot.get(blockhash)
        if slot is None or slot > bank_slot or bank_slot - slot > MAX_PROCESSING_AGE:
            return None
        return self.block_height(slot) + MAX_PROCESSING_AGE

    def _nonce_ok(self, tx: VersionedTransaction) -> bool:
        """A durable-nonce transaction is valid while its nonce account holds
        its recent_blockhash."""
        if not tx.uses_durable_nonce():
            return False
        msg = tx.message
        ix = msg.instructions[0]
        accounts = bytes(ix.accounts)
        if not accounts:
            return False
        nonce = self.svm.get_account(msg.account_keys[accounts[0]])
        if nonce is None or nonce.owner != SYSTEM_PROGRAM_ID:
            return False
        data = bytes(nonce.data)
        if len(data) != _NONCE_ACCOUNT_LEN or struct.unpack_from("<I", data, 4)[0] != 1:
            return False
        return data[40:72] == bytes(msg.recent_blockhash)

    def _age_ok(self, tx: VersionedTransaction, bank_slot: int, max_age: int) -> bool:
        return self.blockhash_age_ok(tx.message.recent_blockhash, bank_slot, max_age) or (
            self._nonce_ok(tx)
        )

    # --------------------------------------------------------------- accounts

    def get_account(self, key: Pubkey, commitment: str = "processed") -> Account | None:
        with self._lock:
            return self._account_at(key, self.slot_for(commitment))

    def _account_at(self, key: Pubkey, slot: int) -> Account | None:
        if slot < self.slot:
            for modified_slot, before in self._account_history.get(key, ()):
                if modified_slot > slot:
                    return before
        return self.svm.get_account(key)

    def mint_decimals(self, mint: Pubkey) -> int | None:
        cached = self._mint_decimals.get(mint)
        if cached is not None:
            return cached
        acct = self.svm.get_account(mint)
        if acct is None:
            return None
        parsed = parse_mint(acct.owner, bytes(acct.data))
        if parsed is None:
            return None
        self._mint_decimals[mint] = parsed.decimals
        return parsed.decimals

    def token_accounts_of(self, owner: Pubkey) -> list[Pubkey]:
        with self._lock:
            return sorted(self._token_accounts_by_owner.get(owner, ()), key=bytes)

    def program_accounts(self, program: Pubkey) -> list[tuple[Pubkey, Account]]:
        with self._lock:
            return list(self.svm.get_program_accounts(program))

    def minimum_balance_for_rent_exemption(self, size: int) -> int:
        with self._lock:
            return int(self.svm.minimum_balance_for_rent_exemption(size))

    # ----------------------------------------------------------- transactions

    def _resolve_keys(
        self, tx: VersionedTransaction
    ) -> tuple[list[Pubkey], list[Pubkey], list[Pubkey]] | None:
        msg = tx.message
        static = list(msg.account_keys)
        if not isinstance(msg, MessageV0) or not msg.address_table_lookups:
            return static, [], []
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in msg.address_table_lookups:
            table = self.svm.get_account(lookup.account_key)
            if table is None or table.owner != ALT_PROGRAM_ID:
                return None
            addresses = bytes(table.data)[_ALT_META_SIZE:]
            count = len(addresses) // 32
            for indexes, out in (
                (lookup.writable_indexes, writable),
                (lookup.readonly_indexes, readonly),
            ):
                for i in bytes(indexes):
                    if i >= count:
                        return None
                    out.append(Pubkey.from_bytes(addresses[32 * i : 32 * i + 32]))
        return static, writable, readonly

    @staticmethod
    def _writable_static(msg: Message | MessageV0 | MessageV1) -> list[bool]:
        header = msg.header
        n = len(msg.account_keys)
        signed = header.num_required_signatures
        signed_writable = signed - header.num_readonly_signed_accounts
        unsigned_writable_end = n - header.num_readonly_unsigned_accounts
        return [i < signed_writable or signed <= i < unsigned_writable_end for i in range(n)]

    def _token_balances(self, accounts: list[Account | None]) -> list[dict[str, Any]]:
        out = []
        for i, acct in enumerate(accounts):
            if acct is None or acct.owner not in TOKEN_PROGRAMS:
                continue
            parsed = parse_token_account(acct.owner, bytes(acct.data))
            if parsed is None:
                continue
            decimals = self.mint_decimals(parsed.mint)
            if decimals is None:
                continue
            out.append(
                {
                    "accountIndex": i,
                    "mint": str(parsed.mint),
                    "uiTokenAmount": ui_token_amount(parsed.amount, decimals),
                    "owner": str(parsed.owner),
                    "programId": str(acct.owner),
                }
            )
        return out

    @staticmethod
    def _inner_json(meta: TransactionMetadata) -> list[dict[str, Any]]:
        out = []
        for index, inner in enumerate(meta.inner_instructions()):
            if not inner:
                continue
            out.append(
                {
                    "index": index,
                    "instructions": [
                        _inner_ix_json(ii.instruction(), ii.stack_height()) for ii in inner
                    ],
                }
            )
        return out

    @staticmethod
    def _return_data_json(meta: TransactionMetadata) -> dict[str, Any] | None:
        rd = meta.return_data()
        if rd is None or (not bytes(rd.data) and rd.program_id == Pubkey.default()):
            return None
        return {
            "programId": str(rd.program_id),
            "data": [base64.b64encode(bytes(rd.data)).decode(), "base64"],
        }

    def fee_for_message(self, msg: Message | MessageV0 | MessageV1) -> int:
        """Signature fees (precompile signatures included) plus the priority fee."""
        keys = msg.account_keys
        signatures = msg.header.num_required_signatures
        limit: int | None = None
        price = 0
        other = 0
        for ix in msg.instructions:
            program = keys[ix.program_id_index]
            data = bytes(ix.data)
            if program in PRECOMPILES and data:
                signatures += data[0]
            if program == COMPUTE_BUDGET_ID and data:
                if data[0] == 2 and len(data) >= 5:
                    limit = struct.unpack_from("<I", data, 1)[0]
                elif data[0] == 3 and len(data) >= 9:
                    price = struct.unpack_from("<Q", data, 1)[0]
            else:
                other += 1
        if limit is None:
            limit = min(200_000 * other, 1_400_000)
        return LAMPORTS_PER_SIGNATURE * signatures + (price * limit + 999_999) // 1_000_000

    def is_duplicate(self, signature: Signature, bank_slot: int) -> bool:
        rec = self.by_sig.get(signature)
        return rec is not None and rec.slot <= bank_slot

    def simulate(self, tx: VersionedTransaction, bank_slot: int) -> Simulation:
        """Run ``tx`` against the latest state without committing; blockhash
        age and duplicates are judged against the bank at ``bank_slot``."""
        with self._lock:
            max_age = MAX_PROCESSING_AGE - MAX_TRANSACTION_FORWARDING_DELAY
            if not self._age_ok(tx, bank_slot, max_age):
                return Simulation("BlockhashNotFound", [], 0, None, [], {})
            if self.is_duplicate(tx.signatures[0], bank_slot):
                return Simulation("AlreadyProcessed", [], 0, None, [], {})
            res = self.svm.simulate_transaction(tx)
            if isinstance(res, FailedTransactionMetadata):
                meta = res.meta()
                return Simulation(
                    tx_error_json(res.err()),
                    list(meta.logs()),
                    meta.compute_units_consumed(),
                    self._return_data_json(meta),
                    self._inner_json(meta),
                    {},
                )
            meta = res.meta()
            return Simulation(
                None,
                list(meta.logs()),
                meta.compute_units_consumed(),
                self._return_data_json(meta),
                self._inner_json(meta),
                dict(res.post_accounts()),
            )

    def process(
        self, tx: VersionedTransaction, raw: bytes, *, signatures_verified: bool = False
    ) -> TxRecord | None:
        """Execute ``tx`` in the working slot, as the leader would: a
        transaction that fails signature, blockhash or duplicate checks, or
        cannot pay its fee, is dropped (None); one that fails in execution is
        committed with its error and pays its fee."""
        with self._lock:
            if not signatures_verified and not all(tx.verify_with_results()):
                return None
            if not self._age_ok(tx, self.slot, MAX_PROCESSING_AGE):
                return None
            signature = tx.signatures[0]
            if signature in self.by_sig:
                return None
            return self._execute(tx, raw, signature)

    def _execute(
        self, tx: VersionedTransaction, raw: bytes, signature: Signature
    ) -> TxRecord | None:
        svm = self.svm
        resolved = self._resolve_keys(tx)
        if resolved is None:
            return None  # address lookup table missing or index out of range: load error
        static, loaded_w, loaded_r = resolved
        keys = static + loaded_w + loaded_r
        writable = (
            self._writable_static(tx.message) + [True] * len(loaded_w) + [False] * len(loaded_r)
        )
        pre = [svm.get_account(k) for k in keys]
        pre_token = self._token_balances(pre)
        res = svm.send_transaction(tx)
        failed = isinstance(res, FailedTransactionMetadata)
        meta: TransactionMetadata = res.meta() if failed else res  # type: ignore[union-attr,assignment]
        post = [svm.get_account(k) if w else a for k, w, a in zip(keys, writable, pre, strict=True)]
        pre_payer = pre[0].lamports if pre[0] is not None else 0
        post_payer = post[0].lamports if post[0] is not None else 0
        if failed and post_payer >= pre_payer:
            return None  # not committed: nothing was charged
        slot = self.slot
        block = self.blocks[slot]
        for key, w, before in zip(keys, writable, pre, strict=True):
            if not w:
                continue
            self._mint_decimals.pop(key, None)
            entries = self._account_history.setdefault(key, [])
            if not entries or entries[-1][0] != slot:
                entries.append((slot, before))
                self._history_queue.append((slot, key))
        for key, w, after in zip(keys, writable, post, strict=True):
            if w:
                self._index_token_account(key, after)
        err = tx_error_json(res.err()) if failed else None  # type: ignore[union-attr]
        meta_json: dict[str, Any] = {
            "err": err,
            "status": {"Err": err} if failed else {"Ok": None},
            "fee": meta.fee(),
            "preBalances": [a.lamports if a is not None else 0 for a in pre],
            "postBalances": [a.lamports if a is not None else 0 for a in post],
            "innerInstructions": self._inner_json(meta),
            "logMessages": list(meta.logs()),
            "preTokenBalances": pre_token,
            "postTokenBalances": self._token_balances(post),
            "rewards": [],
            "loadedAddresses": {
                "writable": [str(k) for k in loaded_w],
                "readonly": [str(k) for k in loaded_r],
            },
            "computeUnitsConsumed": meta.compute_units_consumed(),
        }
        return_data = self._return_data_json(meta)
        if return_data is not None:
            meta_json["returnData"] = return_data
        rec = TxRecord(
            seq=len(self.txs),
            signature=signature,
            slot=slot,
            index=len(block.txs),
            tx=tx,
            raw=raw,
            account_keys=keys,
            err=err,
            meta=meta_json,
            block_time=block.block_time,
        )
        self.txs.append(rec)
        self._tx_slots.append(slot)
        self.by_sig[signature] = rec
        block.txs.append(rec.seq)
        for key in dict.fromkeys(keys):
            self.by_address[key].append(rec.seq)
        return rec

    def _index_token_account(self, key: Pubkey, acct: Account | None) -> None:
        parsed = (
            parse_token_account(acct.owner, bytes(acct.data))
            if acct is not None and acct.owner in TOKEN_PROGRAMS
            else None
        )
        old_owner = self._token_account_owner.get(key)
        new_owner = parsed.owner if parsed is not None else None
        if old_owner == new_owner:
            return
        if old_owner is not None:
            self._token_accounts_by_owner[old_owner].discard(key)
            del self._token_account_owner[key]
        if new_owner is not None:
            self._token_accounts_by_owner[new_owner].add(key)
            self._token_account_owner[key] = new_owner

    # ----------------------------------------------------------------- faucet

    def airdrop(self, to: Pubkey, lamports: int) -> tuple[Signature, TxRecord | None]:
        """A transfer from the faucet, sent like any transaction (no preflight)."""
        with self._lock:
            blockhash = self.blocks[self.slot].blockhash
            ixs = [
                transfer(
                    TransferParams(
                        from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports
                    )
                )
            ]
            msg = Message.new_with_blockhash(ixs, self.faucet.pubkey(), blockhash)
            tx = VersionedTransaction(msg, [self.faucet])
            if tx.signatures[0] in self.by_sig:
                # The same airdrop twice in one slot: vary the message so it is
                # a new transaction (a compute-unit limit that changes nothing).
                self._airdrops += 1
                limit = 10_000 + self._airdrops % 1_000_000
                cu = _set_compute_unit_limit(limit)
                msg = Message.new_with_blockhash([cu, *ixs], self.faucet.pubkey(), blockhash)
                tx = VersionedTransaction(msg, [self.faucet])
            return tx.signatures[0], self.process(tx, bytes(tx))

    # ---------------------------------------------------------------- queries

    def status_of(self, signature: Signature, search_history: bool) -> TxRecord | None:
        with self._lock:
            rec = self.by_sig.get(signature)
            if rec is None:
                return None
            if not search_history and rec.slot < self.slot - STATUS_CACHE_SLOTS:
                return None
            return rec

    def commitment_of(self, slot: int) -> str:
        if slot <= self.slot_for("finalized"):
            return "finalized"
        if slot <= self.slot_for("confirmed"):
            return "confirmed"
        return "processed"

    def signatures_for(
        self,
        address: Pubkey,
        *,
        max_slot: int,
        before: Signature | None,
        until: Signature | None,
        limit: int,
    ) -> list[TxRecord]:
        """Newest first, as agave's blockstore answers (``before`` and ``until``
        excluded; an unknown ``before`` gives nothing, an unknown ``until`` no bound)."""
        with self._lock:
            seqs = self.by_address.get(address, [])
            start = len(seqs)
            if before is not None:
                rec = self.by_sig.get(before)
                if rec is None:
                    return []
                start = bisect.bisect_left(seqs, rec.seq)
            stop_seq = -1
            if until is not None:
                rec = self.by_sig.get(until)
                if rec is not None:
                    stop_seq = rec.seq
            out: list[TxRecord] = []
            for i in range(start - 1, -1, -1):
                seq = seqs[i]
                if seq <= stop_seq:
                    break
                rec = self.txs[seq]
                if rec.slot > max_slot:
                    continue
                out.append(rec)
                if len(out) >= limit:
                    break
            return out

    def lock(self) -> threading.RLock:
        return self._lock


def _inner_ix_json(ix: Any, stack_height: int | None) -> dict[str, Any]:
    return {
        "accounts": list(bytes(ix.accounts)),
        "data": b58encode(bytes(ix.data)),
        "programIdIndex": ix.program_id_index,
        "stackHeight": stack_height,
    }


def _set_compute_unit_limit(units: int) -> Any:
    from solders.compute_budget import set_compute_unit_limit

    return set_compute_unit_limit(units)
