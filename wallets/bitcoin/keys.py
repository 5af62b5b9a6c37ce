"""Traders' public keys and payout addresses: parsing and validation.

Traders bring their own keys.  A key is either

* an extended public key with its origin and a fixed (non-wildcard, unhardened)
  derivation suffix, as wallets export it:
  ``[d34db33f/84h/1h/0h]tpubD.../0/5``; or
* a plain compressed public key in hex, optionally with an origin:
  ``[d34db33f/84h/1h/0h/0/5]02ab...`` or ``02ab...``.

Private keys (xprv/tprv, WIF) are refused: no trader's private key ever reaches
the node.  Every error names the input field and never echoes the value.
"""

from __future__ import annotations

from dataclasses import dataclass

from embit import bip32, ec, hashes
from embit.descriptor.arguments import Key
from embit.script import Script, address_to_scriptpubkey

from wallets.bitcoin.errors import AddressValidationError, KeyValidationError
from wallets.bitcoin.network import BitcoinNetwork

HARDENED = 0x80000000

__all__ = [
    "HARDENED",
    "PartyKey",
    "format_path",
    "parse_party_key",
    "payout_script_pubkey",
]


def format_path(path: tuple[int, ...]) -> str:
    """``(84|H, 1|H, 0|H, 0, 5)`` -> ``"84h/1h/0h/0/5"``."""
    return "/".join(f"{i - HARDENED}h" if i >= HARDENED else str(i) for i in path)


@dataclass(frozen=True, slots=True)
class PartyKey:
    """A validated public key of one escrow party.

    ``pubkey`` is the 33-byte compressed key that goes into the script;
    ``fingerprint``/``path`` are its full BIP-32 origin (master fingerprint and
    path from the master), which PSBTs carry so wallets find their key.  For a
    plain key without origin the fingerprint is the key's own (hash160[:4]) and
    the path is empty, as Bitcoin Core does.  ``expression`` is the canonical
    descriptor key expression.
    """

    pubkey: bytes
    fingerprint: bytes
    path: tuple[int, ...]
    expression: str

    @property
    def hex(self) -> str:
        return self.pubkey.hex()


def _fail(field: str, reason: str) -> KeyValidationError:
    return KeyValidationError(f"{field}: {reason}", field=field, reason=reason)


def parse_party_key(text: str, *, field: str, network: BitcoinNetwork) -> PartyKey:
    """Parse and validate one party's public key for ``network``.

    Raises :class:`KeyValidationError` naming ``field`` on any problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise _fail(field, "empty key")
    text = text.strip()
    if any(c in text for c in "*<>;{}(), \t\n"):
        raise _fail(field, "wildcards, multipath and descriptor syntax are not allowed")
    try:
        key = Key.from_string(text)
    except Exception:  # embit raises many types; the value is never echoed
        raise _fail(field, "not a valid public key or extended public key") from None
    if key.is_private:
        raise _fail(field, "a private key was given; only public keys are accepted")
    if key.origin is not None and len(key.origin.fingerprint) != 4:
        raise _fail(field, "key origin fingerprint must be 4 bytes")

    if key.is_extended:
        xkey = key.key
        if xkey.version != network.xpub_version:
            raise _fail(field, f"extended key is not for {network.name}")
        suffix: list[int] = []
        if key.allowed_derivation is not None:
            for idx in key.allowed_derivation.indexes:
                if not isinstance(idx, int):
                    raise _fail(field, "wildcard or multipath derivation is not allowed")
                if idx >= HARDENED:
                    raise _fail(field, "hardened derivation after an xpub is impossible")
                suffix.append(idx)
        if key.origin is not None:
            if len(key.origin.derivation) != xkey.depth:
                raise _fail(field, "key origin path length does not match the xpub depth")
            fingerprint = bytes(key.origin.fingerprint)
            origin_path = tuple(int(i) for i in key.origin.derivation)
        else:
            fingerprint = bytes(xkey.my_fingerprint)
            origin_path = ()
        try:
            derived = xkey.derive(suffix) if suffix else xkey
        except Exception:
            raise _fail(field, "cannot derive the public key") from None
        pub = derived.get_public_key()
        path = origin_path + tuple(suffix)
        prefix = f"[{fingerprint.hex()}{'/' if origin_path else ''}{format_path(origin_path)}]"
        expression = (
            prefix
            + xkey.to_base58(network.xpub_version)
            + "".join(f"/{i}" for i in suffix)
        )
    else:
        pub = key.key
        if not isinstance(pub, ec.PublicKey):
            raise _fail(field, "not a public key")
        if not pub.compressed:
            raise _fail(field, "uncompressed public keys are not allowed in segwit scripts")
        if key.origin is not None:
            fingerprint = bytes(key.origin.fingerprint)
            path = tuple(int(i) for i in key.origin.derivation)
            expression = f"[{fingerprint.hex()}{'/' if path else ''}{format_path(path)}]"
            expression += pub.sec().hex()
        else:
            fingerprint = hashes.hash160(pub.sec())[:4]
            path = ()
            expression = pub.sec().hex()
    sec = pub.sec()
    if len(sec) != 33 or sec[0] not in (2, 3):
        raise _fail(field, "public key must be 33-byte compressed")
    return PartyKey(pubkey=sec, fingerprint=fingerprint, path=path, expression=expression)


def xpub_key_expression(
    xpub: bip32.HDKey, *, fingerprint: bytes, origin: tuple[int, ...], suffix: tuple[int, ...],
    network: BitcoinNetwork,
) -> str:
    """Build a key expression ``[fp/origin]xpub/suffix`` (used by signers)."""
    prefix = f"[{fingerprint.hex()}{'/' if origin else ''}{format_path(origin)}]"
    encoded: str = xpub.to_base58(network.xpub_version)
    return prefix + encoded + "".join(f"/{i}" for i in suffix)


def payout_script_pubkey(address: str, *, field: str, network: BitcoinNetwork) -> bytes:
    """Validate a payout address for ``network`` and return its scriptPubKey.

    Accepts P2PKH, P2SH, P2WPKH, P2WSH and P2TR; refuses other networks
    (including regtest ``bcrt`` vs testnet ``tb``), bad checksums and unknown
    witness versions.
    """
    if not isinstance(address, str) or not address.strip():
        raise AddressValidationError(f"{field}: empty address", field=field, reason="empty")
    address = address.strip()
    normalized = address
    if address.lower().startswith(network.bech32_hrp + "1"):
        if address not in (address.lower(), address.upper()):  # BIP-173: no mixed case
            raise AddressValidationError(
                f"{field}: mixed-case bech32 address", field=field, reason="unparseable"
            )
        normalized = address.lower()
    try:
        spk = address_to_scriptpubkey(normalized)
        rebuilt = Script(spk.data).address(network.embit_params)
    except Exception:
        raise AddressValidationError(
            f"{field}: not a valid address", field=field, reason="unparseable"
        ) from None
    if rebuilt != normalized:
        raise AddressValidationError(
            f"{field}: address is not for {network.name}", field=field, reason="wrong_network"
        )
    data: bytes = spk.data
    return data
