"""Account encodings as Solana's RPC serves them, and the SPL Token parsers
behind ``jsonParsed`` (agave's ``account-decoder``: token accounts, mints and
multisigs of SPL Token and Token-2022)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

from localchain.solana.b58 import b58encode
from localchain.solana.errors import invalid_params

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAMS = {TOKEN_PROGRAM_ID: "spl-token", TOKEN_2022_PROGRAM_ID: "spl-token-2022"}
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
NATIVE_MINT_2022 = Pubkey.from_string("9pan9bMn5HatX4EJdBwg9VgCa7Uz5HL8N1m5D3NdXejP")

ACCOUNT_LEN = 165
MINT_LEN = 82
MULTISIG_LEN = 355
_ACCOUNT_TYPE_MINT = 1
_ACCOUNT_TYPE_ACCOUNT = 2
_STATES = {1: "initialized", 2: "frozen"}


@dataclass(frozen=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    state: int
    is_native: int | None  # rent-exempt reserve of a wrapped-SOL account
    delegated_amount: int
    close_authority: Pubkey | None


@dataclass(frozen=True)
class Mint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None


@dataclass(frozen=True)
class Multisig:
    m: int
    n: int
    is_initialized: bool
    signers: tuple[Pubkey, ...]


def _opt_key(data: bytes, at: int) -> Pubkey | None:
    tag = struct.unpack_from("<I", data, at)[0]
    return Pubkey.from_bytes(data[at + 4 : at + 36]) if tag == 1 else None


def _kind(owner: Pubkey, data: bytes) -> str | None:
    """'account', 'mint', 'multisig' or None, from the layout rules of each program."""
    if owner not in TOKEN_PROGRAMS:
        return None
    n = len(data)
    if n == ACCOUNT_LEN:
        return "account"
    if n == MINT_LEN:
        return "mint"
    if n == MULTISIG_LEN:
        return "multisig"
    if owner == TOKEN_2022_PROGRAM_ID and n > ACCOUNT_LEN:
        if data[ACCOUNT_LEN] == _ACCOUNT_TYPE_ACCOUNT:
            return "account"
        if data[ACCOUNT_LEN] == _ACCOUNT_TYPE_MINT:
            return "mint"
    return None


def parse_token_account(owner: Pubkey, data: bytes) -> TokenAccount | None:
    """An initialized SPL token account, or None."""
    if _kind(owner, data) != "account":
        return None
    state = data[108]
    if state not in _STATES:
        return None
    native_tag = struct.unpack_from("<I", data, 109)[0]
    return TokenAccount(
        mint=Pubkey.from_bytes(data[0:32]),
        owner=Pubkey.from_bytes(data[32:64]),
        amount=struct.unpack_from("<Q", data, 64)[0],
        delegate=_opt_key(data, 72),
        state=state,
        is_native=struct.unpack_from("<Q", data, 113)[0] if native_tag == 1 else None,
        delegated_amount=struct.unpack_from("<Q", data, 121)[0],
        close_authority=_opt_key(data, 129),
    )


def parse_mint(owner: Pubkey, data: bytes) -> Mint | None:
    """An initialized SPL mint, or None."""
    if _kind(owner, data) != "mint":
        return None
    if not data[45]:
        return None
    return Mint(
        mint_authority=_opt_key(data, 0),
        supply=struct.unpack_from("<Q", data, 36)[0],
        decimals=data[44],
        is_initialized=True,
        freeze_authority=_opt_key(data, 46),
    )


def parse_multisig(owner: Pubkey, data: bytes) -> Multisig | None:
    if _kind(owner, data) != "multisig" or not data[2]:
        return None
    m, n = data[0], data[1]
    signers = tuple(Pubkey.from_bytes(data[3 + 32 * i : 35 + 32 * i]) for i in range(n))
    return Multisig(m=m, n=n, is_initialized=True, signers=signers)


def mint_account_data(decimals: int, supply: int = 0, authority: Pubkey | None = None) -> bytes:
    """The 82 bytes of an initialized mint (used for the native mint at genesis)."""
    auth = struct.pack("<I", 1) + bytes(authority) if authority else bytes(36)
    return auth + struct.pack("<QBB", supply, decimals, 1) + bytes(36)


def ui_amount_string(amount: int, decimals: int) -> str:
    """agave's ``real_number_string_trimmed``."""
    if decimals == 0:
        return str(amount)
    digits = str(amount).rjust(decimals + 1, "0")
    s = f"{digits[:-decimals]}.{digits[-decimals:]}".rstrip("0").rstrip(".")
    return s


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": float(amount) / (10.0**decimals),
        "uiAmountString": ui_amount_string(amount, decimals),
    }


def parsed_token_data(owner: Pubkey, data: bytes, mint_decimals: Any) -> dict[str, Any] | None:
    """The ``{"program", "parsed", "space"}`` object of jsonParsed, or None when
    agave's parser would give up (then the caller falls back to base64).
    ``mint_decimals(mint) -> int | None`` looks up the decimals of a mint."""
    program = TOKEN_PROGRAMS.get(owner)
    if program is None:
        return None
    kind = _kind(owner, data)
    parsed: dict[str, Any]
    if kind == "account":
        acct = parse_token_account(owner, data)
        if acct is None:
            return None
        decimals = mint_decimals(acct.mint)
        if decimals is None:
            return None
        info: dict[str, Any] = {
            "isNative": acct.is_native is not None,
            "mint": str(acct.mint),
            "owner": str(acct.owner),
            "state": _STATES[acct.state],
            "tokenAmount": ui_token_amount(acct.amount, decimals),
        }
        if acct.delegate is not None:
            info["delegate"] = str(acct.delegate)
            info["delegatedAmount"] = ui_token_amount(acct.delegated_amount, decimals)
        if acct.is_native is not None:
            info["rentExemptReserve"] = ui_token_amount(acct.is_native, decimals)
        if acct.close_authority is not None:
            info["closeAuthority"] = str(acct.close_authority)
        parsed = {"info": info, "type": "account"}
    elif kind == "mint":
        mint = parse_mint(owner, data)
        if mint is None:
            return None
        parsed = {
            "info": {
                "decimals": mint.decimals,
                "freezeAuthority": str(mint.freeze_authority) if mint.freeze_authority else None,
                "isInitialized": mint.is_initialized,
                "mintAuthority": str(mint.mint_authority) if mint.mint_authority else None,
                "supply": str(mint.supply),
            },
            "type": "mint",
        }
    elif kind == "multisig":
        ms = parse_multisig(owner, data)
        if ms is None:
            return None
        parsed = {
            "info": {
                "isInitialized": ms.is_initialized,
                "numRequiredSigners": ms.m,
                "numValidSigners": ms.n,
                "signers": [str(s) for s in ms.signers],
            },
            "type": "multisig",
        }
    else:
        return None
    if owner == TOKEN_2022_PROGRAM_ID and len(data) > ACCOUNT_LEN:
        extensions = token_2022_extensions(data)
        if extensions:
            parsed["info"]["extensions"] = extensions
    return {"program": program, "parsed": parsed, "space": len(data)}


# Token-2022 extensions that carry no data render as just their name; the
# contents of the others are not parsed here (agave would), they render as
# "unparseableExtension".
_DATALESS_EXTENSIONS = {7: "immutableOwner", 9: "nonTransferable", 13: "nonTransferableAccount"}


def token_2022_extensions(data: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    at = ACCOUNT_LEN + 1
    while at + 4 <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, at)
        if ext_type == 0:
            break
        name = _DATALESS_EXTENSIONS.get(ext_type, "unparseableExtension")
        out.append({"extension": name})
        at += 4 + length
    return out


ENCODINGS = ("base64", "base58", "binary", "jsonParsed", "base64+zstd")


def encode_data(data: bytes, encoding: str, data_slice: dict[str, Any] | None) -> Any:
    if data_slice is not None:
        offset = int(data_slice.get("offset", 0))
        length = int(data_slice.get("length", 0))
        data = data[offset : offset + length]
    if encoding in ("base64", "jsonParsed"):
        return [base64.b64encode(data).decode(), "base64"]
    if encoding in ("base58", "binary"):
        if len(data) > 128:
            raise invalid_params(
                "Encoded binary (base 58) data should be less than 128 bytes, "
                "please use Base64 encoding."
            )
        text = b58encode(data)
        return text if encoding == "binary" else [text, "base58"]
    raise invalid_params(f"Invalid params: unsupported account encoding `{encoding}`")


def encode_account(
    account: Account,
    encoding: str,
    data_slice: dict[str, Any] | None,
    mint_decimals: Any,
) -> dict[str, Any]:
    """An account as ``getAccountInfo`` renders it."""
    data = bytes(account.data)
    rendered: Any = None
    if encoding == "jsonParsed" and data_slice is None:
        rendered = parsed_token_data(account.owner, data, mint_decimals)
    if rendered is None:
        rendered = encode_data(data, encoding, data_slice)
    return {
        "data": rendered,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(data),
    }
