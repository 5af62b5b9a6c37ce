"""Script classification and rendering the way bitcoind shows them.

Addresses and descriptor checksums come from embit; the output type names,
``asm`` text and standardness rules follow Bitcoin Core (``Solver``,
``ScriptToAsmStr``, ``IsStandard``, ``GetDustThreshold``)."""

from __future__ import annotations

from functools import lru_cache

from embit import bech32
from embit.descriptor.checksum import add_checksum
from embit.networks import NETWORKS
from embit.script import Script, address_to_scriptpubkey

NET = NETWORKS["regtest"]

_OPS = {
    0x00: "0",
    0x4F: "-1",
    0x50: "OP_RESERVED",
    0x61: "OP_NOP",
    0x62: "OP_VER",
    0x63: "OP_IF",
    0x64: "OP_NOTIF",
    0x65: "OP_VERIF",
    0x66: "OP_VERNOTIF",
    0x67: "OP_ELSE",
    0x68: "OP_ENDIF",
    0x69: "OP_VERIFY",
    0x6A: "OP_RETURN",
    0x6B: "OP_TOALTSTACK",
    0x6C: "OP_FROMALTSTACK",
    0x6D: "OP_2DROP",
    0x6E: "OP_2DUP",
    0x6F: "OP_3DUP",
    0x70: "OP_2OVER",
    0x71: "OP_2ROT",
    0x72: "OP_2SWAP",
    0x73: "OP_IFDUP",
    0x74: "OP_DEPTH",
    0x75: "OP_DROP",
    0x76: "OP_DUP",
    0x77: "OP_NIP",
    0x78: "OP_OVER",
    0x79: "OP_PICK",
    0x7A: "OP_ROLL",
    0x7B: "OP_ROT",
    0x7C: "OP_SWAP",
    0x7D: "OP_TUCK",
    0x7E: "OP_CAT",
    0x7F: "OP_SUBSTR",
    0x80: "OP_LEFT",
    0x81: "OP_RIGHT",
    0x82: "OP_SIZE",
    0x83: "OP_INVERT",
    0x84: "OP_AND",
    0x85: "OP_OR",
    0x86: "OP_XOR",
    0x87: "OP_EQUAL",
    0x88: "OP_EQUALVERIFY",
    0x89: "OP_RESERVED1",
    0x8A: "OP_RESERVED2",
    0x8B: "OP_1ADD",
    0x8C: "OP_1SUB",
    0x8D: "OP_2MUL",
    0x8E: "OP_2DIV",
    0x8F: "OP_NEGATE",
    0x90: "OP_ABS",
    0x91: "OP_NOT",
    0x92: "OP_0NOTEQUAL",
    0x93: "OP_ADD",
    0x94: "OP_SUB",
    0x95: "OP_MUL",
    0x96: "OP_DIV",
    0x97: "OP_MOD",
    0x98: "OP_LSHIFT",
    0x99: "OP_RSHIFT",
    0x9A: "OP_BOOLAND",
    0x9B: "OP_BOOLOR",
    0x9C: "OP_NUMEQUAL",
    0x9D: "OP_NUMEQUALVERIFY",
    0x9E: "OP_NUMNOTEQUAL",
    0x9F: "OP_LESSTHAN",
    0xA0: "OP_GREATERTHAN",
    0xA1: "OP_LESSTHANOREQUAL",
    0xA2: "OP_GREATERTHANOREQUAL",
    0xA3: "OP_MIN",
    0xA4: "OP_MAX",
    0xA5: "OP_WITHIN",
    0xA6: "OP_RIPEMD160",
    0xA7: "OP_SHA1",
    0xA8: "OP_SHA256",
    0xA9: "OP_HASH160",
    0xAA: "OP_HASH256",
    0xAB: "OP_CODESEPARATOR",
    0xAC: "OP_CHECKSIG",
    0xAD: "OP_CHECKSIGVERIFY",
    0xAE: "OP_CHECKMULTISIG",
    0xAF: "OP_CHECKMULTISIGVERIFY",
    0xB0: "OP_NOP1",
    0xB1: "OP_CHECKLOCKTIMEVERIFY",
    0xB2: "OP_CHECKSEQUENCEVERIFY",
    0xB3: "OP_NOP4",
    0xB4: "OP_NOP5",
    0xB5: "OP_NOP6",
    0xB6: "OP_NOP7",
    0xB7: "OP_NOP8",
    0xB8: "OP_NOP9",
    0xB9: "OP_NOP10",
    0xBA: "OP_CHECKSIGADD",
}
for _n in range(1, 17):
    _OPS[0x50 + _n] = str(_n)

_SIGHASH_NAMES = {
    0x01: "ALL",
    0x02: "NONE",
    0x03: "SINGLE",
    0x81: "ALL|ANYONECANPAY",
    0x82: "NONE|ANYONECANPAY",
    0x83: "SINGLE|ANYONECANPAY",
}

MAX_OP_RETURN_RELAY = 83
DUST_RELAY_FEE = 3000  # sat/kvB


def parse_ops(script: bytes) -> tuple[list[tuple[int, bytes | None]], bool]:
    """(opcode, pushed data) pairs, and whether a truncated push ended the script."""
    ops: list[tuple[int, bytes | None]] = []
    i = 0
    n = len(script)
    while i < n:
        op = script[i]
        i += 1
        if op > 0x4E:
            ops.append((op, None))
            continue
        width = {0x4C: 1, 0x4D: 2, 0x4E: 4}.get(op, 0)
        if i + width > n:
            return ops, True
        size = int.from_bytes(script[i : i + width], "little") if width else op
        i += width
        if i + size > n:
            return ops, True
        ops.append((op, script[i : i + size]))
        i += size
    return ops, False


def iter_ops(script: bytes) -> list[tuple[int, bytes | None]]:
    """(opcode, pushed data) pairs; raises ValueError on a truncated push."""
    ops, bad = parse_ops(script)
    if bad:
        raise ValueError("truncated push")
    return ops


def _decode_sig_suffix(data: bytes) -> str:
    # Core's fAttemptSighashDecode: a DER signature shown with [SIGHASH] name
    if len(data) > 8 and data[0] == 0x30 and data[-1] in _SIGHASH_NAMES:
        body = data[:-1]
        if len(body) >= 8 and body[1] == len(body) - 2:
            return body.hex() + "[" + _SIGHASH_NAMES[data[-1]] + "]"
    return data.hex()


@lru_cache(maxsize=65536)
def script_asm(script: bytes, *, sighash_decode: bool = False) -> str:
    """Core's ScriptToAsmStr."""
    ops, bad = parse_ops(script)
    out: list[str] = []
    for op, data in ops:
        if data is None:
            out.append(_OPS.get(op, "OP_UNKNOWN"))
        elif len(data) <= 4:
            val = int.from_bytes(data, "little") if data else 0
            if data and data[-1] & 0x80:
                val = -int.from_bytes(data[:-1] + bytes([data[-1] & 0x7F]), "little")
            out.append(str(val))
        elif sighash_decode:
            out.append(_decode_sig_suffix(data))
        else:
            out.append(data.hex())
    if bad:
        out.append("[error]")
    return " ".join(out)


def _is_pubkey(data: bytes | None) -> bool:
    if data is None:
        return False
    return (len(data) == 33 and data[0] in (2, 3)) or (len(data) == 65 and data[0] == 4)


def witness_program(spk: bytes) -> tuple[int, bytes] | None:
    if len(spk) < 4 or len(spk) > 42:
        return None
    if spk[0] != 0 and not 0x51 <= spk[0] <= 0x60:
        return None
    if spk[1] + 2 == len(spk):
        return (0 if spk[0] == 0 else spk[0] - 0x50), spk[2:]
    return None


@lru_cache(maxsize=65536)
def solve(spk: bytes) -> str:
    """Core's TxoutType names as getblock/decoderawtransaction show them."""
    if len(spk) == 23 and spk[0] == 0xA9 and spk[1] == 0x14 and spk[22] == 0x87:
        return "scripthash"
    wp = witness_program(spk)
    if wp is not None:
        ver, prog = wp
        if ver == 0 and len(prog) == 20:
            return "witness_v0_keyhash"
        if ver == 0 and len(prog) == 32:
            return "witness_v0_scripthash"
        if ver == 1 and len(prog) == 32:
            return "witness_v1_taproot"
        if ver == 1 and prog == b"\x4e\x73":
            return "anchor"
        if ver != 0:
            return "witness_unknown"
        return "nonstandard"
    if spk[:1] == b"\x6a":
        try:
            ops = iter_ops(spk[1:])
        except ValueError:
            return "nonstandard"
        if all(op <= 0x60 for op, _ in ops):
            return "nulldata"
        return "nonstandard"
    try:
        ops = iter_ops(spk)
    except ValueError:
        return "nonstandard"
    if len(ops) == 2 and _is_pubkey(ops[0][1]) and ops[1][0] == 0xAC:
        return "pubkey"
    if len(spk) == 25 and spk[:3] == b"\x76\xa9\x14" and spk[23:] == b"\x88\xac":
        return "pubkeyhash"
    if len(ops) >= 4 and ops[-1][0] == 0xAE:
        m_op, n_op = ops[0][0], ops[-2][0]
        keys = ops[1:-2]
        if (
            0x51 <= m_op <= 0x60
            and 0x51 <= n_op <= 0x60
            and all(_is_pubkey(d) for _, d in keys)
            and len(keys) == n_op - 0x50
            and 1 <= m_op - 0x50 <= n_op - 0x50
        ):
            return "multisig"
    return "nonstandard"


@lru_cache(maxsize=65536)
def address_of(spk: bytes) -> str | None:
    kind = solve(spk)
    if kind == "pubkeyhash" or kind == "scripthash":
        return str(Script(spk).address(NET))
    wp = witness_program(spk)
    if wp is not None and kind != "nonstandard":
        ver, prog = wp
        return str(bech32.encode(NET["bech32"], ver, list(prog)))
    return None


@lru_cache(maxsize=65536)
def descriptor_of(spk: bytes) -> str:
    addr = address_of(spk)
    if addr is not None:
        return str(add_checksum(f"addr({addr})"))
    kind = solve(spk)
    if kind == "pubkey":
        return str(add_checksum(f"pk({spk[1:-1].hex()})"))
    return str(add_checksum(f"raw({spk.hex()})"))


def script_pubkey_json(spk: bytes) -> dict[str, object]:
    out: dict[str, object] = {
        "asm": script_asm(spk),
        "desc": descriptor_of(spk),
        "hex": spk.hex(),
    }
    addr = address_of(spk)
    if addr is not None:
        out["address"] = addr
    out["type"] = solve(spk)
    return out


class InvalidAddress(ValueError):
    pass


def address_to_spk(addr: str) -> bytes:
    """Decode a regtest address (bcrt1..., m/n..., 2...); anything else is invalid."""
    try:
        if addr.lower().startswith("bcrt1"):
            ver, prog = bech32.decode("bcrt", addr)
            if ver is None or prog is None:
                raise InvalidAddress(addr)
            if ver == 0 and len(prog) not in (20, 32):
                raise InvalidAddress(addr)
            return bytes([0 if ver == 0 else ver + 0x50, len(prog)]) + bytes(prog)
        spk = bytes(address_to_scriptpubkey(addr).data)
    except InvalidAddress:
        raise
    except Exception as exc:
        raise InvalidAddress(addr) from exc
    # base58: only testnet/regtest version bytes
    if spk[:3] == b"\x76\xa9\x14" or spk[:2] == b"\xa9\x14":
        from embit import base58

        prefix = base58.decode_check(addr)[:1]
        if prefix not in (NET["p2pkh"], NET["p2sh"]):
            raise InvalidAddress(addr)
        return spk
    raise InvalidAddress(addr)


def is_unspendable(spk: bytes) -> bool:
    return (len(spk) > 0 and spk[0] == 0x6A) or len(spk) > 10_000


def dust_threshold(spk: bytes, dust_relay_fee: int = DUST_RELAY_FEE) -> int:
    """Core's GetDustThreshold."""
    if is_unspendable(spk):
        return 0
    size = 8 + len(_compact(len(spk))) + len(spk)
    if witness_program(spk) is not None:
        size += 32 + 4 + 1 + (107 // 4) + 4
    else:
        size += 32 + 4 + 1 + 107 + 4
    return dust_relay_fee * size // 1000


def _compact(n: int) -> bytes:
    from embit import compact

    return bytes(compact.to_bytes(n))


def is_standard_output(spk: bytes) -> bool:
    kind = solve(spk)
    if kind == "nonstandard":
        return False
    if kind == "nulldata":
        return len(spk) <= MAX_OP_RETURN_RELAY
    if kind == "multisig":
        n = spk[-2] - 0x50
        m = spk[0] - 0x50
        return 1 <= n <= 3 and 1 <= m <= n
    return True


def is_push_only(script: bytes) -> bool:
    try:
        return all(op <= 0x60 for op, _ in iter_ops(script))
    except ValueError:
        return False
