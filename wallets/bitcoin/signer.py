"""Signers: the only code that touches Bitcoin private keys.

:class:`Signer` is the interface (software, hardware, remote signers);
:class:`SoftwareSigner` holds a BIP-32 root key in memory (the node's
arbitration agent key, and tests).  Traders sign in their own wallets; the node
never holds their keys.  A signer signs only SIGHASH_ALL and only inputs whose
BIP-32 derivations name its master fingerprint.  It does *not* judge what the
PSBT pays: the node runs the policy checker before asking a signer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from embit import bip32, bip39
from embit.psbt import PSBT
from embit.transaction import SIGHASH

from wallets.bitcoin.keys import HARDENED, xpub_key_expression
from wallets.bitcoin.network import BitcoinNetwork
from wallets.errors import SigningError

__all__ = ["Signer", "SoftwareSigner"]


@runtime_checkable
class Signer(Protocol):
    """Signs PSBTs for the keys it holds."""

    @property
    def fingerprint(self) -> bytes:
        """Master key fingerprint (4 bytes) that PSBT derivations refer to."""
        ...

    def sign_psbt(self, psbt_b64: str) -> str:
        """Add partial signatures (SIGHASH_ALL) for every input it can sign.

        Raises :class:`SigningError` if it can sign nothing.
        """
        ...


def _parse_path(path: str) -> tuple[int, ...]:
    parts = path.strip().split("/")
    if parts and parts[0] == "m":
        parts = parts[1:]
    out = []
    for p in parts:
        if not p:
            raise ValueError("empty path element")
        hardened = p[-1] in "h'H"
        idx = int(p[:-1] if hardened else p)
        if not 0 <= idx < HARDENED:
            raise ValueError("path index out of range")
        out.append(idx + (HARDENED if hardened else 0))
    return tuple(out)


class SoftwareSigner:
    """A BIP-32 root key held in memory."""

    __slots__ = ("_network", "_root")

    def __init__(self, root: bip32.HDKey, *, network: BitcoinNetwork) -> None:
        if not root.is_private or root.depth != 0:
            raise SigningError("SoftwareSigner needs a master private key", reason="not_root")
        self._root = root
        self._network = network

    @classmethod
    def from_seed(cls, seed: bytes, *, network: BitcoinNetwork) -> SoftwareSigner:
        if not 16 <= len(seed) <= 64:
            raise SigningError("seed must be 16..64 bytes", reason="bad_seed")
        return cls(bip32.HDKey.from_seed(seed, version=network.xprv_version), network=network)

    @classmethod
    def from_mnemonic(
        cls, mnemonic: str, *, network: BitcoinNetwork, passphrase: str = ""
    ) -> SoftwareSigner:
        try:
            seed = bip39.mnemonic_to_seed(mnemonic, password=passphrase)
        except Exception:
            raise SigningError("invalid mnemonic", reason="bad_mnemonic") from None
        return cls.from_seed(seed, network=network)

    def __repr__(self) -> str:  # never show key material
        return f"SoftwareSigner(fingerprint={self.fingerprint.hex()}, network={self._network})"

    @property
    def fingerprint(self) -> bytes:
        fp: bytes = self._root.my_fingerprint
        return bytes(fp)

    def key_expression(self, account_path: str, child: tuple[int, ...] = ()) -> str:
        """Public key expression ``[fp/account]xpub/child...`` for an escrow.

        E.g. ``key_expression("m/84h/1h/0h", (0, 5))``.  ``child`` must be unhardened.
        """
        origin = _parse_path(account_path)
        if any(c >= HARDENED or c < 0 for c in child):
            raise ValueError("child indexes must be unhardened")
        xpub = self._root.derive(list(origin)).to_public()
        return xpub_key_expression(
            xpub, fingerprint=self.fingerprint, origin=origin, suffix=child,
            network=self._network,
        )

    def sign_psbt(self, psbt_b64: str) -> str:
        try:
            psbt = PSBT.from_string(psbt_b64.strip())
        except Exception:
            raise SigningError("PSBT does not parse", reason="malformed") from None
        for i, inp in enumerate(psbt.inputs):
            if inp.sighash_type is not None and inp.sighash_type != SIGHASH.ALL:
                raise SigningError(
                    "refusing to sign with a sighash other than ALL",
                    reason="sighash_not_all", input_index=i,
                )
        try:
            count = psbt.sign_with(self._root, sighash=SIGHASH.ALL)
        except Exception:
            raise SigningError("signing failed", reason="sign_failed") from None
        if count == 0:
            raise SigningError("no input is for this signer's keys", reason="nothing_to_sign")
        return str(psbt.to_string())
