"""Which mints can be escrowed: inspect a mint account as ``getAccountInfo`` returns it.

Decision (Token-2022): **supported, default-deny on extensions.** A mint owned by
SPL Token is accepted. A mint owned by Token-2022 is accepted only if it has no
extension or only the purely descriptive ones in :data:`HARMLESS_EXTENSIONS`
(metadata / group pointers and data). Everything else is refused with a specific
code, in particular:

* ``mint_transfer_fee`` — TransferFeeConfig: the escrow would receive less than
  the seller sent, and payouts would deliver less than ruled (we never credit
  net: the amount is refused, not adjusted). Refused even at 0 bps, since the
  fee authority can raise it while the escrow is open.
* ``mint_transfer_hook`` — TransferHook: a third-party program runs on every
  transfer and can block payouts; it also needs extra accounts in the payout.
* ``mint_permanent_delegate`` — PermanentDelegate: the delegate can move the
  escrowed tokens without the multisig (breaks I1/I2).
* ``mint_non_transferable``, ``mint_default_frozen`` (DefaultAccountState),
  ``mint_confidential_transfer``, ``mint_pausable``, ``mint_close_authority``,
  ``mint_interest_bearing``/``mint_scaled_ui_amount`` (the displayed amount
  drifts from the raw amount), and any unknown extension: ``mint_unsupported_extension``.

A freeze authority (USDC and USDT have one) is reported in the verdict, not
refused by default: the issuer can freeze the escrow account, as it can any
holder's. Pass ``refuse_freeze_authority=True`` to refuse such mints.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from wallets.solana.errors import UnsupportedMintError

MINT_LEN = 82
_ACCOUNT_LEN = 165  # Token-2022 pads a mint with extensions to this, then the account type
_ACCOUNT_TYPE_MINT = 1
_TLV_HEADER = 4
TRANSFER_FEE_CONFIG_LEN = 108


class MintExtension(enum.IntEnum):
    """Token-2022 ``ExtensionType`` numbers (spl-token-2022)."""

    UNINITIALIZED = 0
    TRANSFER_FEE_CONFIG = 1
    TRANSFER_FEE_AMOUNT = 2
    MINT_CLOSE_AUTHORITY = 3
    CONFIDENTIAL_TRANSFER_MINT = 4
    CONFIDENTIAL_TRANSFER_ACCOUNT = 5
    DEFAULT_ACCOUNT_STATE = 6
    IMMUTABLE_OWNER = 7
    MEMO_TRANSFER = 8
    NON_TRANSFERABLE = 9
    INTEREST_BEARING_CONFIG = 10
    CPI_GUARD = 11
    PERMANENT_DELEGATE = 12
    NON_TRANSFERABLE_ACCOUNT = 13
    TRANSFER_HOOK = 14
    TRANSFER_HOOK_ACCOUNT = 15
    CONFIDENTIAL_TRANSFER_FEE_CONFIG = 16
    CONFIDENTIAL_TRANSFER_FEE_AMOUNT = 17
    METADATA_POINTER = 18
    TOKEN_METADATA = 19
    GROUP_POINTER = 20
    TOKEN_GROUP = 21
    GROUP_MEMBER_POINTER = 22
    TOKEN_GROUP_MEMBER = 23
    CONFIDENTIAL_MINT_BURN = 24
    SCALED_UI_AMOUNT = 25
    PAUSABLE = 26
    PAUSABLE_ACCOUNT = 27


HARMLESS_EXTENSIONS = frozenset(
    {
        MintExtension.METADATA_POINTER,
        MintExtension.TOKEN_METADATA,
        MintExtension.GROUP_POINTER,
        MintExtension.TOKEN_GROUP,
        MintExtension.GROUP_MEMBER_POINTER,
        MintExtension.TOKEN_GROUP_MEMBER,
    }
)
"""Extensions that change nothing about transfers or who can move tokens."""

_REFUSAL_CODES: dict[int, str] = {
    MintExtension.TRANSFER_FEE_CONFIG: "mint_transfer_fee",
    MintExtension.TRANSFER_HOOK: "mint_transfer_hook",
    MintExtension.PERMANENT_DELEGATE: "mint_permanent_delegate",
    MintExtension.NON_TRANSFERABLE: "mint_non_transferable",
    MintExtension.DEFAULT_ACCOUNT_STATE: "mint_default_frozen",
    MintExtension.CONFIDENTIAL_TRANSFER_MINT: "mint_confidential_transfer",
    MintExtension.CONFIDENTIAL_TRANSFER_FEE_CONFIG: "mint_confidential_transfer",
    MintExtension.CONFIDENTIAL_MINT_BURN: "mint_confidential_transfer",
    MintExtension.PAUSABLE: "mint_pausable",
    MintExtension.MINT_CLOSE_AUTHORITY: "mint_close_authority",
    MintExtension.INTEREST_BEARING_CONFIG: "mint_interest_bearing",
    MintExtension.SCALED_UI_AMOUNT: "mint_scaled_ui_amount",
}
# Refusal precedence when a mint has several bad extensions: the most dangerous first.
_PRECEDENCE = (
    "mint_permanent_delegate",
    "mint_transfer_fee",
    "mint_transfer_hook",
)


@dataclass(frozen=True, slots=True)
class MintVerdict:
    accepted: bool
    code: str | None
    """``None`` when accepted, else the refusal code (``mint_transfer_fee``, ...)."""
    reason: str
    token_program: Pubkey | None
    decimals: int | None
    extensions: tuple[int, ...]
    """Token-2022 extension type numbers found (see :class:`MintExtension`)."""
    mint_authority: Pubkey | None
    freeze_authority: Pubkey | None


def _refuse(code: str, reason: str, **kw: object) -> MintVerdict:
    base: dict[str, object] = {
        "token_program": None,
        "decimals": None,
        "extensions": (),
        "mint_authority": None,
        "freeze_authority": None,
    }
    base.update(kw)
    return MintVerdict(accepted=False, code=code, reason=reason, **base)  # type: ignore[arg-type]


def _coption_pubkey(data: bytes, offset: int) -> Pubkey | None:
    (tag,) = struct.unpack_from("<I", data, offset)
    return Pubkey.from_bytes(data[offset + 4 : offset + 36]) if tag == 1 else None


def _extension_types(data: bytes) -> list[int] | None:
    """TLV extension types after the padded base mint; ``None`` if malformed."""
    if len(data) == MINT_LEN:
        return []
    if len(data) <= _ACCOUNT_LEN or data[_ACCOUNT_LEN] != _ACCOUNT_TYPE_MINT:
        return None
    if any(data[MINT_LEN:_ACCOUNT_LEN]):
        return None
    types = []
    offset = _ACCOUNT_LEN + 1
    while offset + _TLV_HEADER <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, offset)
        if ext_type == MintExtension.UNINITIALIZED:
            break  # the rest is unallocated space
        if offset + _TLV_HEADER + length > len(data):
            return None
        types.append(ext_type)
        offset += _TLV_HEADER + length
    return types


def inspect_mint(
    data: bytes, owner: Pubkey, *, refuse_freeze_authority: bool = False
) -> MintVerdict:
    """Decide whether a mint can be escrowed, from its account data and owner program
    (both from ``getAccountInfo``). Never raises on bad input: returns a refusal."""
    if owner not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
        return _refuse("mint_not_token_program", "account is not owned by a token program")
    if owner == TOKEN_PROGRAM_ID and len(data) != MINT_LEN:
        return _refuse("mint_malformed", "not an SPL Token mint account", token_program=owner)
    if len(data) < MINT_LEN:
        return _refuse("mint_malformed", "account data too short for a mint", token_program=owner)
    mint_authority = _coption_pubkey(data, 0)
    freeze_authority = _coption_pubkey(data, 46)
    decimals = data[44]
    common: dict[str, object] = {
        "token_program": owner,
        "decimals": decimals,
        "mint_authority": mint_authority,
        "freeze_authority": freeze_authority,
    }
    if data[45] != 1:
        return _refuse("mint_not_initialized", "mint is not initialized", **common)
    types = _extension_types(data) if owner == TOKEN_2022_PROGRAM_ID else []
    if types is None:
        return _refuse("mint_malformed", "Token-2022 extension data is malformed", **common)
    common["extensions"] = tuple(types)
    codes = set()
    for ext in types:
        if ext in HARMLESS_EXTENSIONS:
            continue
        codes.add(_REFUSAL_CODES.get(ext, "mint_unsupported_extension"))
    if codes:
        code = next((c for c in _PRECEDENCE if c in codes), min(codes))
        names = ", ".join(
            MintExtension(t).name if t in MintExtension._value2member_map_ else str(t)
            for t in types
        )
        return _refuse(code, f"mint has extensions that cannot be escrowed: {names}", **common)
    if refuse_freeze_authority and freeze_authority is not None:
        return _refuse("mint_freeze_authority", "mint has a freeze authority", **common)
    return MintVerdict(accepted=True, code=None, reason="ok", **common)  # type: ignore[arg-type]


def require_supported_mint(
    data: bytes, owner: Pubkey, *, refuse_freeze_authority: bool = False
) -> MintVerdict:
    """:func:`inspect_mint`, raising :class:`UnsupportedMintError` (``code`` = the
    verdict's code) on refusal."""
    verdict = inspect_mint(data, owner, refuse_freeze_authority=refuse_freeze_authority)
    if not verdict.accepted:
        assert verdict.code is not None
        raise UnsupportedMintError(
            verdict.reason,
            code=verdict.code,
            extensions=list(verdict.extensions),
            token_program=str(owner),
        )
    return verdict
