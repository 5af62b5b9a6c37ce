"""Solana's JSON-RPC methods over a ``Chain``: params, defaults, result shapes
and error codes as agave's RPC service has them.

Non-standard methods are prefixed ``escrowd_`` (dev only): ``escrowd_warpSlots``
opens N new slots at once, ``escrowd_info`` tells the chain's settings."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any

import orjson
from solders.hash import Hash
from solders.message import MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Legacy, VersionedTransaction

from localchain.solana.accounts import (
    ENCODINGS,
    TOKEN_PROGRAMS,
    encode_account,
    parse_mint,
    parse_token_account,
    ui_token_amount,
)
from localchain.solana.b58 import b58decode, b58encode
from localchain.solana.chain import COMMITMENTS, MAX_PROCESSING_AGE, Chain, TxRecord
from localchain.solana.errors import (
    BLOCK_NOT_AVAILABLE,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    RpcError,
    below_confirmed,
    invalid_params,
    method_not_found,
    min_context_slot_not_reached,
    preflight_failure,
    signature_verification_failure,
    unsupported_transaction_version,
)

log = logging.getLogger("localchain.solana.rpc")

SOLANA_CORE_VERSION = "2.3.13"
FEATURE_SET = 3294202862
PACKET_DATA_SIZE = 1232
MAX_BASE58_SIZE = 1683
MAX_BASE64_SIZE = 1644
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_LIMIT = 1000
MAX_GET_BLOCKS_RANGE = 500_000

_LEGACY_COMMITMENTS = {
    "recent": "processed",
    "single": "confirmed",
    "singleGossip": "confirmed",
    "root": "finalized",
    "max": "finalized",
}

Handler = Callable[[list[Any]], Any]


def _arg(params: list[Any], index: int, what: str) -> Any:
    if len(params) <= index:
        raise invalid_params(f"Invalid params: invalid length {len(params)}, expected {what}.")
    return params[index]


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) <= index or params[index] is None:
        return {}
    cfg = params[index]
    if not isinstance(cfg, dict):
        raise invalid_params(f"Invalid params: invalid type: {type(cfg).__name__}, expected a map.")
    return cfg


def _commitment(cfg: dict[str, Any]) -> str:
    value = cfg.get("commitment") or "finalized"
    value = _LEGACY_COMMITMENTS.get(value, value)
    if value not in COMMITMENTS:
        raise invalid_params(
            f"Invalid params: unknown variant `{value}`, expected one of "
            "`processed`, `confirmed`, `finalized`."
        )
    return str(value)


def _pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (ValueError, TypeError):
        raise invalid_params("Invalid param: Invalid") from None


def _signature(value: Any) -> Signature:
    try:
        return Signature.from_string(value)
    except (ValueError, TypeError):
        raise invalid_params("Invalid param: Invalid") from None


def _hash(value: Any) -> Hash:
    try:
        return Hash.from_string(value)
    except (ValueError, TypeError):
        raise invalid_params("Invalid param: Invalid") from None


class SolanaRpc:
    """Dispatches JSON-RPC requests (single or batch) to ``Chain``."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.methods: dict[str, Handler] = {
            "getAccountInfo": self.get_account_info,
            "getBalance": self.get_balance,
            "getBlock": self.get_block,
            "getBlockHeight": self.get_block_height,
            "getBlockTime": self.get_block_time,
            "getBlocks": self.get_blocks,
            "getBlocksWithLimit": self.get_blocks_with_limit,
            "getEpochInfo": self.get_epoch_info,
            "getEpochSchedule": self.get_epoch_schedule,
            "getFeeForMessage": self.get_fee_for_message,
            "getFirstAvailableBlock": lambda _p: 0,
            "getGenesisHash": lambda _p: str(self.chain.genesis_hash),
            "getHealth": lambda _p: "ok",
            "getIdentity": lambda _p: {"identity": str(self.chain.identity.pubkey())},
            "getLatestBlockhash": self.get_latest_blockhash,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance_for_rent_exemption,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getProgramAccounts": self.get_program_accounts,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
            "getSignatureStatuses": self.get_signature_statuses,
            "getSignaturesForAddress": self.get_signatures_for_address,
            "getSlot": self.get_slot,
            "getSlotLeader": lambda _p: str(self.chain.identity.pubkey()),
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenSupply": self.get_token_supply,
            "getTransaction": self.get_transaction,
            "getTransactionCount": self.get_transaction_count,
            "getVersion": lambda _p: {
                "solana-core": SOLANA_CORE_VERSION,
                "feature-set": FEATURE_SET,
            },
            "isBlockhashValid": self.is_blockhash_valid,
            "minimumLedgerSlot": lambda _p: 0,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            # non-standard, dev only
            "escrowd_warpSlots": self.warp_slots,
            "escrowd_info": self.info,
        }

    # ------------------------------------------------------------- framing

    def handle_body(self, body: bytes) -> bytes:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "error": {"code": PARSE_ERROR, "message": "Parse error"},
                    "id": None,
                }
            )
        if isinstance(request, list):
            if not request:
                return orjson.dumps(
                    _error_reply(None, RpcError(INVALID_REQUEST, "Invalid request"))
                )
            return orjson.dumps([self.handle(r) for r in request])
        return orjson.dumps(self.handle(request))

    def handle(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error_reply(None, RpcError(INVALID_REQUEST, "Invalid request"))
        req_id = request.get("id")
        if request.get("jsonrpc") != "2.0":
            return _error_reply(req_id, RpcError(INVALID_REQUEST, "Invalid request"))
        method = self.methods.get(request["method"])
        if method is None:
            return _error_reply(req_id, method_not_found())
        params = request.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error_reply(
                req_id, invalid_params("Invalid params: invalid type: map, expected a tuple.")
            )
        try:
            with self.chain.lock():
                result = method(params)
        except RpcError as exc:
            return _error_reply(req_id, exc)
        except Exception:
            log.exception("internal error in %s", request["method"])
            return _error_reply(req_id, RpcError(INTERNAL_ERROR, "Internal error"))
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    # ------------------------------------------------------------- helpers

    def _bank(self, cfg: dict[str, Any]) -> int:
        slot = self.chain.slot_for(_commitment(cfg))
        min_slot = cfg.get("minContextSlot")
        if min_slot is not None and slot < int(min_slot):
            raise min_context_slot_not_reached(slot)
        return slot

    @staticmethod
    def _ctx(slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": SOLANA_CORE_VERSION, "slot": slot}, "value": value}

    def _encode(self, account: Any, cfg: dict[str, Any], default: str = "binary") -> Any:
        if account is None:
            return None
        encoding = cfg.get("encoding") or default
        if encoding not in ENCODINGS:
            raise invalid_params(f"Invalid params: unknown variant `{encoding}`.")
        return encode_account(account, encoding, cfg.get("dataSlice"), self.chain.mint_decimals)

    # ------------------------------------------------------------- accounts

    def get_account_info(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        cfg = _config(params, 1)
        slot = self._bank(cfg)
        acct = self.chain._account_at(key, slot)
        return self._ctx(slot, self._encode(acct, cfg))

    def get_multiple_accounts(self, params: list[Any]) -> Any:
        keys = _arg(params, 0, "pubkeys")
        if not isinstance(keys, list):
            raise invalid_params("Invalid params: invalid type, expected a sequence.")
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        pubkeys = [_pubkey(k) for k in keys]
        cfg = _config(params, 1)
        slot = self._bank(cfg)
        accounts = [self.chain._account_at(k, slot) for k in pubkeys]
        return self._ctx(slot, [self._encode(a, cfg, "base64") for a in accounts])

    def get_balance(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        slot = self._bank(_config(params, 1))
        acct = self.chain._account_at(key, slot)
        return self._ctx(slot, acct.lamports if acct is not None else 0)

    def get_minimum_balance_for_rent_exemption(self, params: list[Any]) -> Any:
        size = _arg(params, 0, "data length")
        if not isinstance(size, int) or size < 0:
            raise invalid_params("Invalid params: invalid type, expected usize.")
        return self.chain.minimum_balance_for_rent_exemption(size)

    def _token_account_at(self, key: Pubkey, slot: int) -> tuple[Any, int]:
        acct = self.chain._account_at(key, slot)
        if acct is None:
            raise invalid_params("Invalid param: could not find account")
        if acct.owner not in TOKEN_PROGRAMS:
            raise invalid_params("Invalid param: not a Token account")
        parsed = parse_token_account(acct.owner, bytes(acct.data))
        if parsed is None:
            raise invalid_params("Invalid param: not a Token account")
        decimals = self.chain.mint_decimals(parsed.mint)
        if decimals is None:
            raise invalid_params("Invalid param: could not find mint")
        return parsed, decimals

    def get_token_account_balance(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        slot = self._bank(_config(params, 1))
        parsed, decimals = self._token_account_at(key, slot)
        return self._ctx(slot, ui_token_amount(parsed.amount, decimals))

    def get_token_supply(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "mint"))
        slot = self._bank(_config(params, 1))
        acct = self.chain._account_at(key, slot)
        if acct is None or acct.owner not in TOKEN_PROGRAMS:
            raise invalid_params("Invalid param: not a Token mint")
        mint = parse_mint(acct.owner, bytes(acct.data))
        if mint is None:
            raise invalid_params("Invalid param: mint could not be unpacked")
        return self._ctx(slot, ui_token_amount(mint.supply, mint.decimals))

    def get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        owner = _pubkey(_arg(params, 0, "owner"))
        flt = _arg(params, 1, "filter")
        cfg = _config(params, 2)
        slot = self._bank(cfg)
        want_mint: Pubkey | None = None
        if isinstance(flt, dict) and "mint" in flt:
            want_mint = _pubkey(flt["mint"])
            mint_acct = self.chain._account_at(want_mint, slot)
            if mint_acct is None or mint_acct.owner not in TOKEN_PROGRAMS:
                raise invalid_params("Invalid param: could not find mint")
            program = mint_acct.owner
        elif isinstance(flt, dict) and "programId" in flt:
            program = _pubkey(flt["programId"])
            if program not in TOKEN_PROGRAMS:
                raise invalid_params("Invalid param: unrecognized Token program id")
        else:
            raise invalid_params("Invalid params: expected a mint or programId filter.")
        out = []
        for key in self.chain.token_accounts_of(owner):
            acct = self.chain._account_at(key, slot)
            if acct is None or acct.owner != program:
                continue
            parsed = parse_token_account(acct.owner, bytes(acct.data))
            if parsed is None or parsed.owner != owner:
                continue
            if want_mint is not None and parsed.mint != want_mint:
                continue
            out.append({"pubkey": str(key), "account": self._encode(acct, cfg)})
        return self._ctx(slot, out)

    def get_program_accounts(self, params: list[Any]) -> Any:
        program = _pubkey(_arg(params, 0, "program id"))
        cfg = _config(params, 1)
        slot = self._bank(cfg)
        filters = cfg.get("filters") or []
        out = []
        for key, acct in self.chain.program_accounts(program):
            data = bytes(acct.data)
            if all(_filter_matches(f, data) for f in filters):
                out.append({"pubkey": str(key), "account": self._encode(acct, cfg)})
        if cfg.get("withContext"):
            return self._ctx(slot, out)
        return out

    # ------------------------------------------------------- slots & hashes

    def get_slot(self, params: list[Any]) -> Any:
        return self._bank(_config(params, 0))

    def get_block_height(self, params: list[Any]) -> Any:
        return self.chain.block_height(self._bank(_config(params, 0)))

    def get_epoch_info(self, params: list[Any]) -> Any:
        return self.chain.epoch_info(self._bank(_config(params, 0)))

    def get_epoch_schedule(self, _params: list[Any]) -> Any:
        s = self.chain.epoch_schedule
        return {
            "firstNormalEpoch": s.first_normal_epoch,
            "firstNormalSlot": s.first_normal_slot,
            "leaderScheduleSlotOffset": s.leader_schedule_slot_offset,
            "slotsPerEpoch": s.slots_per_epoch,
            "warmup": s.warmup,
        }

    def get_transaction_count(self, params: list[Any]) -> Any:
        return self.chain.transaction_count(self._bank(_config(params, 0)))

    def get_latest_blockhash(self, params: list[Any]) -> Any:
        slot = self._bank(_config(params, 0))
        block = self.chain.blocks[slot]
        return self._ctx(
            slot,
            {
                "blockhash": str(block.blockhash),
                "lastValidBlockHeight": block.block_height + MAX_PROCESSING_AGE,
            },
        )

    def is_blockhash_valid(self, params: list[Any]) -> Any:
        blockhash = _hash(_arg(params, 0, "blockhash"))
        slot = self._bank(_config(params, 1))
        return self._ctx(slot, self.chain.blockhash_age_ok(blockhash, slot, MAX_PROCESSING_AGE))

    def get_fee_for_message(self, params: list[Any]) -> Any:
        encoded = _arg(params, 0, "message")
        slot = self._bank(_config(params, 1))
        try:
            msg = from_bytes_versioned(base64.b64decode(encoded, validate=True))
        except (ValueError, TypeError, binascii.Error):
            raise invalid_params("invalid message") from None
        if not self.chain.blockhash_age_ok(msg.recent_blockhash, slot, MAX_PROCESSING_AGE):
            return self._ctx(slot, None)
        return self._ctx(slot, self.chain.fee_for_message(msg))

    def get_recent_prioritization_fees(self, _params: list[Any]) -> Any:
        top = self.chain.slot
        return [
            {"slot": s, "prioritizationFee": 0}
            for s in range(max(top - MAX_PROCESSING_AGE + 1, 0), top + 1)
        ]

    # ------------------------------------------------------------- blocks

    def _block_available(self, slot: int, cfg: dict[str, Any]) -> int:
        commitment = _commitment(cfg)
        if commitment == "processed":
            raise below_confirmed()
        top = self.chain.slot_for(commitment)
        if slot > top or slot not in self.chain.blocks:
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        return top

    def get_block_time(self, params: list[Any]) -> Any:
        slot = _arg(params, 0, "slot")
        if not isinstance(slot, int) or slot not in self.chain.blocks or slot > self.chain.slot:
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        return self.chain.blocks[slot].block_time

    def get_block(self, params: list[Any]) -> Any:
        slot = _arg(params, 0, "slot")
        raw_cfg = params[1] if len(params) > 1 else None
        cfg = {"encoding": raw_cfg} if isinstance(raw_cfg, str) else _config(params, 1)
        if not isinstance(slot, int):
            raise invalid_params("Invalid params: invalid type, expected u64.")
        self._block_available(slot, cfg)
        block = self.chain.blocks[slot]
        parent = self.chain.blocks[block.parent_slot]
        out: dict[str, Any] = {
            "blockHeight": block.block_height,
            "blockTime": block.block_time,
            "blockhash": str(block.blockhash),
            "parentSlot": block.parent_slot,
            "previousBlockhash": str(parent.blockhash),
        }
        details = cfg.get("transactionDetails", "full")
        records = [self.chain.txs[seq] for seq in block.txs]
        if details == "full":
            out["transactions"] = [self._encoded_tx(r, cfg, with_slot=False) for r in records]
        elif details == "signatures":
            out["signatures"] = [str(r.signature) for r in records]
        elif details == "accounts":
            raise invalid_params(
                "transactionDetails `accounts` is not supported by this local chain"
            )
        elif details != "none":
            raise invalid_params(f"Invalid params: unknown variant `{details}`.")
        if cfg.get("rewards", True):
            out["rewards"] = []
        return out

    def _confirmed_slots(self, start: int, end: int, cfg: dict[str, Any]) -> list[int]:
        commitment = _commitment(cfg)
        if commitment == "processed":
            raise below_confirmed()
        top = self.chain.slot_for(commitment)
        return [s for s in range(start, min(end, top) + 1) if s in self.chain.blocks]

    def get_blocks(self, params: list[Any]) -> Any:
        start = _arg(params, 0, "start slot")
        end: Any = params[1] if len(params) > 1 and isinstance(params[1], int) else None
        cfg_index = 2 if len(params) > 1 and not isinstance(params[1], dict) else 1
        cfg = _config(params, cfg_index)
        if end is None:
            end = start + MAX_GET_BLOCKS_RANGE
        if end - start > MAX_GET_BLOCKS_RANGE:
            raise invalid_params(f"Slot range too large; max {MAX_GET_BLOCKS_RANGE}")
        return self._confirmed_slots(start, end, cfg)

    def get_blocks_with_limit(self, params: list[Any]) -> Any:
        start = _arg(params, 0, "start slot")
        limit = _arg(params, 1, "limit")
        if limit > MAX_GET_BLOCKS_RANGE:
            raise invalid_params(f"Limit too large; max {MAX_GET_BLOCKS_RANGE}")
        return self._confirmed_slots(start, start + limit - 1, _config(params, 2))

    # ------------------------------------------------------- transactions

    def _decode_tx(self, encoded: Any, encoding: str) -> tuple[VersionedTransaction, bytes]:
        if not isinstance(encoded, str):
            raise invalid_params("Invalid params: invalid type, expected a string.")
        name = "solana_transaction::versioned::VersionedTransaction"
        if encoding == "base58":
            if len(encoded) > MAX_BASE58_SIZE:
                raise invalid_params(
                    f"base58 encoded {name} too large: {len(encoded)} bytes "
                    f"(max: encoded/raw {MAX_BASE58_SIZE}/{PACKET_DATA_SIZE})"
                )
            try:
                raw = b58decode(encoded)
            except ValueError as exc:
                raise invalid_params(f"invalid base58 encoding: {exc}") from None
        elif encoding == "base64":
            if len(encoded) > MAX_BASE64_SIZE:
                raise invalid_params(
                    f"base64 encoded {name} too large: {len(encoded)} bytes "
                    f"(max: encoded/raw {MAX_BASE64_SIZE}/{PACKET_DATA_SIZE})"
                )
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (ValueError, binascii.Error) as exc:
                raise invalid_params(f"invalid base64 encoding: {exc}") from None
        else:
            raise invalid_params(
                f"unsupported encoding: {encoding}. Supported encodings: base58, base64"
            )
        if len(raw) > PACKET_DATA_SIZE:
            raise invalid_params(
                f"decoded {name} too large: {len(raw)} bytes (max: {PACKET_DATA_SIZE} bytes)"
            )
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except ValueError as exc:
            raise invalid_params(f"failed to deserialize {name}: {exc}") from None
        try:
            tx.sanitize()
        except Exception:  # noqa: BLE001 - solders raises its own SanitizeError
            raise invalid_params(
                "invalid transaction: Transaction failed to sanitize accounts offsets correctly"
            ) from None
        return tx, raw

    def send_transaction(self, params: list[Any]) -> Any:
        encoded = _arg(params, 0, "transaction")
        cfg = _config(params, 1)
        tx, raw = self._decode_tx(encoded, cfg.get("encoding") or "base58")
        skip = bool(cfg.get("skipPreflight", False))
        bank_cfg = {
            "commitment": "processed" if skip else cfg.get("preflightCommitment"),
            "minContextSlot": cfg.get("minContextSlot"),
        }
        bank = self._bank(bank_cfg)
        if not skip:
            if not all(tx.verify_with_results()):
                raise signature_verification_failure()
            sim = self.chain.simulate(tx, bank)
            if sim.err is not None:
                raise preflight_failure(
                    sim.err,
                    {
                        "err": sim.err,
                        "logs": sim.logs,
                        "accounts": None,
                        "unitsConsumed": sim.units,
                        "returnData": sim.return_data,
                        "innerInstructions": None,
                        "replacementBlockhash": None,
                    },
                )
        self.chain.process(tx, raw, signatures_verified=not skip)
        return str(tx.signatures[0])

    def simulate_transaction(self, params: list[Any]) -> Any:
        encoded = _arg(params, 0, "transaction")
        cfg = _config(params, 1)
        tx, _raw = self._decode_tx(encoded, cfg.get("encoding") or "base58")
        sig_verify = bool(cfg.get("sigVerify", False))
        replace = bool(cfg.get("replaceRecentBlockhash", False))
        if sig_verify and replace:
            raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        bank = self._bank(cfg)
        replacement = None
        if replace:
            block = self.chain.blocks[bank]
            tx = _with_blockhash(tx, block.blockhash)
            replacement = {
                "blockhash": str(block.blockhash),
                "lastValidBlockHeight": block.block_height + MAX_PROCESSING_AGE,
            }
        if sig_verify and not all(tx.verify_with_results()):
            raise signature_verification_failure()
        sim = self.chain.simulate(tx, bank)
        accounts = None
        accounts_cfg = cfg.get("accounts")
        if accounts_cfg:
            addresses = [_pubkey(a) for a in accounts_cfg.get("addresses", [])]
            enc_cfg = {"encoding": accounts_cfg.get("encoding") or "base64"}
            if enc_cfg["encoding"] in ("base58", "binary"):
                raise invalid_params("base58 encoding not supported")
            if sim.err is not None:
                accounts = [None] * len(addresses)
            else:
                accounts = [
                    self._encode(
                        sim.post_accounts.get(a) or self.chain._account_at(a, bank), enc_cfg
                    )
                    for a in addresses
                ]
        value = {
            "err": sim.err,
            "logs": sim.logs,
            "accounts": accounts,
            "unitsConsumed": sim.units,
            "returnData": sim.return_data,
            "innerInstructions": sim.inner if cfg.get("innerInstructions") else None,
            "replacementBlockhash": replacement,
        }
        return self._ctx(bank, value)

    def request_airdrop(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        lamports = _arg(params, 1, "lamports")
        if not isinstance(lamports, int) or lamports < 0:
            raise invalid_params("Invalid params: invalid type, expected u64.")
        signature, rec = self.chain.airdrop(key, lamports)
        if rec is None:
            raise RpcError(INTERNAL_ERROR, "Internal error")
        return str(signature)

    def _status(self, rec: TxRecord) -> dict[str, Any]:
        commitment = self.chain.commitment_of(rec.slot)
        return {
            "slot": rec.slot,
            "confirmations": None if commitment == "finalized" else self.chain.slot - rec.slot,
            "err": rec.err,
            "status": {"Err": rec.err} if rec.err is not None else {"Ok": None},
            "confirmationStatus": commitment,
        }

    def get_signature_statuses(self, params: list[Any]) -> Any:
        sigs = _arg(params, 0, "signatures")
        if not isinstance(sigs, list):
            raise invalid_params("Invalid params: invalid type, expected a sequence.")
        if len(sigs) > MAX_SIGNATURE_STATUSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        search = bool(_config(params, 1).get("searchTransactionHistory", False))
        out = []
        for s in sigs:
            rec = self.chain.status_of(_signature(s), search)
            out.append(self._status(rec) if rec is not None else None)
        return self._ctx(self.chain.slot, out)

    def get_signatures_for_address(self, params: list[Any]) -> Any:
        address = _pubkey(_arg(params, 0, "address"))
        cfg = _config(params, 1)
        if _commitment(cfg) == "processed":
            raise below_confirmed()
        top = self._bank(cfg)
        limit = cfg.get("limit") or MAX_SIGNATURES_LIMIT
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_LIMIT:
            raise invalid_params(f"Invalid limit; max {MAX_SIGNATURES_LIMIT}")
        before = _signature(cfg["before"]) if cfg.get("before") else None
        until = _signature(cfg["until"]) if cfg.get("until") else None
        records = self.chain.signatures_for(
            address, max_slot=top, before=before, until=until, limit=limit
        )
        return [
            {
                "signature": str(r.signature),
                "slot": r.slot,
                "err": r.err,
                "memo": None,
                "blockTime": r.block_time,
                "confirmationStatus": self.chain.commitment_of(r.slot),
            }
            for r in records
        ]

    def get_transaction(self, params: list[Any]) -> Any:
        signature = _signature(_arg(params, 0, "signature"))
        raw_cfg = params[1] if len(params) > 1 else None
        cfg = {"encoding": raw_cfg} if isinstance(raw_cfg, str) else _config(params, 1)
        commitment = _commitment(cfg)
        if commitment == "processed":
            raise below_confirmed()
        rec = self.chain.by_sig.get(signature)
        if rec is None or rec.slot > self.chain.slot_for(commitment):
            return None
        return self._encoded_tx(rec, cfg, with_slot=True)

    def _encoded_tx(self, rec: TxRecord, cfg: dict[str, Any], *, with_slot: bool) -> dict[str, Any]:
        max_version = cfg.get("maxSupportedTransactionVersion")
        version = rec.tx.version()
        is_legacy = version == Legacy.Legacy
        if not is_legacy and (max_version is None or int(version) > int(max_version)):
            raise unsupported_transaction_version(int(version))
        encoding = cfg.get("encoding") or "json"
        if encoding == "json":
            transaction: Any = _tx_json(rec.tx)
        elif encoding == "base64":
            transaction = [base64.b64encode(rec.raw).decode(), "base64"]
        elif encoding in ("base58", "binary"):
            text = b58encode(rec.raw)
            transaction = text if encoding == "binary" else [text, "base58"]
        elif encoding == "jsonParsed":
            raise invalid_params("jsonParsed transactions are not supported by this local chain")
        else:
            raise invalid_params(f"Invalid params: unknown variant `{encoding}`.")
        out: dict[str, Any] = {}
        if with_slot:
            out["slot"] = rec.slot
        out["transaction"] = transaction
        out["meta"] = rec.meta
        if max_version is not None:
            out["version"] = "legacy" if is_legacy else int(version)
        if with_slot:
            out["blockTime"] = rec.block_time
        return out

    # ------------------------------------------------------------- dev only

    def warp_slots(self, params: list[Any]) -> Any:
        """Non-standard: open ``n`` new slots at once; returns the new slot."""
        n = _arg(params, 0, "slot count")
        if not isinstance(n, int) or not 1 <= n <= 1_000_000:
            raise invalid_params("escrowd_warpSlots takes a slot count from 1 to 1000000")
        return self.chain.advance(n)

    def info(self, _params: list[Any]) -> Any:
        """Non-standard: the chain's settings and faucet."""
        return {
            "slot": self.chain.slot,
            "finalitySlots": self.chain.finality_slots,
            "faucet": str(self.chain.faucet.pubkey()),
            "genesisHash": str(self.chain.genesis_hash),
            "transactions": len(self.chain.txs),
        }


def _error_reply(req_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_obj(), "id": req_id}


def _filter_matches(flt: dict[str, Any], data: bytes) -> bool:
    if "dataSize" in flt:
        return len(data) == int(flt["dataSize"])
    if "memcmp" in flt:
        memcmp = flt["memcmp"]
        offset = int(memcmp.get("offset", 0))
        encoding = memcmp.get("encoding", "base58")
        want = (
            base64.b64decode(memcmp["bytes"])
            if encoding == "base64"
            else b58decode(memcmp["bytes"])
        )
        return data[offset : offset + len(want)] == want
    if "tokenAccountState" in flt:
        return len(data) >= 165
    raise invalid_params("Invalid params: unknown filter.")


def _with_blockhash(tx: VersionedTransaction, blockhash: Hash) -> VersionedTransaction:
    from solders.message import Message

    msg = tx.message
    new_msg: Any
    if isinstance(msg, MessageV0):
        new_msg = MessageV0(
            msg.header,
            list(msg.account_keys),
            blockhash,
            list(msg.instructions),
            list(msg.address_table_lookups),
        )
    else:
        h = msg.header
        new_msg = Message.new_with_compiled_instructions(
            h.num_required_signatures,
            h.num_readonly_signed_accounts,
            h.num_readonly_unsigned_accounts,
            list(msg.account_keys),
            blockhash,
            list(msg.instructions),
        )
    return VersionedTransaction.populate(new_msg, list(tx.signatures))


def _tx_json(tx: VersionedTransaction) -> dict[str, Any]:
    msg = tx.message
    h = msg.header
    message: dict[str, Any] = {
        "accountKeys": [str(k) for k in msg.account_keys],
        "header": {
            "numReadonlySignedAccounts": h.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": h.num_readonly_unsigned_accounts,
            "numRequiredSignatures": h.num_required_signatures,
        },
        "instructions": [
            {
                "accounts": list(bytes(ix.accounts)),
                "data": b58encode(bytes(ix.data)),
                "programIdIndex": ix.program_id_index,
                "stackHeight": None,
            }
            for ix in msg.instructions
        ],
        "recentBlockhash": str(msg.recent_blockhash),
    }
    if isinstance(msg, MessageV0):
        message["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
            }
            for lookup in msg.address_table_lookups
        ]
    return {"message": message, "signatures": [str(s) for s in tx.signatures]}
