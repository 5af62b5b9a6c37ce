"""The per-trade escrow script as an output descriptor.

Policy: funds move with any 2 of {buyer, seller, arbitrator}, or with the
seller's *refund key* alone once the funding output is ``csv_blocks`` deep
(BIP-68/112 relative timelock)::

    wsh(or_d(multi(2,K1,K2,K3),and_v(v:pk(R),older(N))))#checksum

K1..K3 are the three party keys sorted by their compressed public key
(BIP-67 order), so the same keys give the same descriptor whatever order they
were handed in.  R is a **separate seller key** for the timelock branch: a
miniscript that repeats a key is not "sane" and Bitcoin Core, rust-miniscript
and hence BDK refuse it (the 2-of-3-or-seller-after-N policy cannot be written
without repeating the seller key), so the seller brings two keys - typically
the same xpub at two child indexes, e.g. ``.../0/5`` and ``.../1/5``.

The descriptor is a standard miniscript descriptor (BIP-379).  ``sortedmulti``
is not a miniscript fragment, hence ``multi`` over keys sorted here.  BDK parses
and derives it (tested); Bitcoin Core imports miniscript ``wsh()`` descriptors
since v25 (not run here: no bitcoind).  Wallets that only know ``sortedmulti``
(Sparrow, Electrum) cannot import the timelock branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum, checksum

from wallets.bitcoin.errors import DescriptorMismatchError, KeyValidationError
from wallets.bitcoin.keys import PartyKey, parse_party_key
from wallets.bitcoin.network import BitcoinNetwork

__all__ = [
    "MAX_CSV_BLOCKS",
    "Escrow",
    "EscrowScript",
    "descriptor_checksum",
]

MAX_CSV_BLOCKS = 0xFFFF  # BIP-68 block-based relative locktime

_TEMPLATE = re.compile(
    r"^wsh\(or_d\(multi\(2,([^,()]+),([^,()]+),([^,()]+)\),"
    r"and_v\(v:pk\(([^,()]+)\),older\(([0-9]+)\)\)\)\)$"
)


def descriptor_checksum(descriptor: str) -> str:
    """The 8-character BIP-380 checksum of ``descriptor`` (without ``#...``)."""
    result: str = checksum(descriptor)
    return result


@dataclass(frozen=True)
class EscrowScript:
    """What the chain sees: the three multisig keys (sorted), the refund key and N.

    Derived values (``descriptor``, ``witness_script``, ``script_pubkey``,
    ``address``) are computed once, by embit, from the descriptor text.
    """

    network: BitcoinNetwork
    multisig_keys: tuple[PartyKey, PartyKey, PartyKey]
    refund_key: PartyKey
    csv_blocks: int
    descriptor: str = field(init=False)
    witness_script: bytes = field(init=False)
    script_pubkey: bytes = field(init=False)
    address: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.csv_blocks, int) or not 1 <= self.csv_blocks <= MAX_CSV_BLOCKS:
            raise DescriptorMismatchError(
                f"csv_blocks must be 1..{MAX_CSV_BLOCKS}", reason="csv_out_of_range"
            )
        keys = [*self.multisig_keys, self.refund_key]
        if len({k.pubkey for k in keys}) != 4:
            raise KeyValidationError(
                "escrow keys must be four distinct public keys",
                field="keys",
                reason="duplicate_key",
            )
        if list(self.multisig_keys) != sorted(self.multisig_keys, key=lambda k: k.pubkey):
            raise DescriptorMismatchError(
                "multisig keys are not sorted", reason="keys_not_sorted"
            )
        k1, k2, k3 = (k.expression for k in self.multisig_keys)
        body = (
            f"wsh(or_d(multi(2,{k1},{k2},{k3}),"
            f"and_v(v:pk({self.refund_key.expression}),older({self.csv_blocks}))))"
        )
        # Keys carry a fixed (non-wildcard) derivation: derive(0) applies it.
        compiled = Descriptor.from_string(body).derive(0)
        object.__setattr__(self, "descriptor", add_checksum(body))
        object.__setattr__(self, "witness_script", bytes(compiled.witness_script().data))
        object.__setattr__(self, "script_pubkey", bytes(compiled.script_pubkey().data))
        object.__setattr__(self, "address", str(compiled.address(self.network.embit_params)))

    @property
    def all_keys(self) -> tuple[PartyKey, ...]:
        return (*self.multisig_keys, self.refund_key)

    @property
    def multisig_pubkeys(self) -> frozenset[bytes]:
        return frozenset(k.pubkey for k in self.multisig_keys)

    @classmethod
    def from_keys(
        cls,
        keys: tuple[PartyKey, PartyKey, PartyKey],
        refund_key: PartyKey,
        csv_blocks: int,
        *,
        network: BitcoinNetwork,
    ) -> EscrowScript:
        """Build from unsorted multisig keys (sorted here, BIP-67 style)."""
        ordered = sorted(keys, key=lambda k: k.pubkey)
        return cls(network, (ordered[0], ordered[1], ordered[2]), refund_key, csv_blocks)

    @classmethod
    def from_descriptor(cls, text: str, *, network: BitcoinNetwork) -> EscrowScript:
        """Rebuild and check an escrow from its descriptor text.

        The checksum is required and verified; the descriptor must be exactly the
        escrow template in canonical form (sorted keys), so that the rebuilt
        ``descriptor`` equals ``text``.
        """
        text = text.strip()
        body, sep, given = text.partition("#")
        if not sep:
            raise DescriptorMismatchError("descriptor checksum missing", reason="no_checksum")
        try:
            expected = descriptor_checksum(body)
        except Exception:
            raise DescriptorMismatchError(
                "descriptor has invalid characters", reason="unparseable"
            ) from None
        if given != expected:
            raise DescriptorMismatchError("descriptor checksum mismatch", reason="bad_checksum")
        match = _TEMPLATE.match(body)
        if match is None:
            raise DescriptorMismatchError(
                "not an escrow descriptor", reason="not_escrow_template"
            )
        k1, k2, k3, refund, older = match.groups()
        parsed = tuple(
            parse_party_key(k, field=f"descriptor.key{i}", network=network)
            for i, k in enumerate((k1, k2, k3), start=1)
        )
        refund_key = parse_party_key(refund, field="descriptor.refund_key", network=network)
        if len(older) > 5:
            raise DescriptorMismatchError("csv out of range", reason="csv_out_of_range")
        script = cls(network, (parsed[0], parsed[1], parsed[2]), refund_key, int(older))
        if script.descriptor != text:
            raise DescriptorMismatchError(
                "descriptor is not in canonical form", reason="not_canonical"
            )
        return script


@dataclass(frozen=True)
class Escrow:
    """An escrow: its script plus which key belongs to whom."""

    script: EscrowScript
    buyer: PartyKey
    seller: PartyKey
    arbitrator: PartyKey

    @property
    def seller_refund(self) -> PartyKey:
        return self.script.refund_key

    @property
    def network(self) -> BitcoinNetwork:
        return self.script.network

    @property
    def descriptor(self) -> str:
        return self.script.descriptor

    @property
    def address(self) -> str:
        return self.script.address

    @classmethod
    def create(
        cls,
        *,
        buyer_key: str,
        seller_key: str,
        arbitrator_key: str,
        seller_refund_key: str,
        csv_blocks: int,
        network: BitcoinNetwork,
    ) -> Escrow:
        """Validate the parties' keys and build the escrow.

        Each ``*_key`` is a key expression (see :mod:`wallets.bitcoin.keys`);
        errors name the field (``buyer_key``...).
        """
        buyer = parse_party_key(buyer_key, field="buyer_key", network=network)
        seller = parse_party_key(seller_key, field="seller_key", network=network)
        arbitrator = parse_party_key(arbitrator_key, field="arbitrator_key", network=network)
        refund = parse_party_key(seller_refund_key, field="seller_refund_key", network=network)
        named = {
            "buyer_key": buyer,
            "seller_key": seller,
            "arbitrator_key": arbitrator,
            "seller_refund_key": refund,
        }
        seen: dict[bytes, str] = {}
        for name, key in named.items():
            if key.pubkey in seen:
                raise KeyValidationError(
                    f"{name}: same public key as {seen[key.pubkey]}",
                    field=name,
                    reason="duplicate_key",
                )
            seen[key.pubkey] = name
        script = EscrowScript.from_keys((buyer, seller, arbitrator), refund, csv_blocks,
                                        network=network)
        return cls(script=script, buyer=buyer, seller=seller, arbitrator=arbitrator)
