"""Bitcoin network parameters as immutable values, passed explicitly.

There is no "current network" global: every function that needs to know the
network takes a :class:`BitcoinNetwork` argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embit.networks import NETWORKS


@dataclass(frozen=True, slots=True)
class BitcoinNetwork:
    """Parameters of one Bitcoin network."""

    name: str
    bech32_hrp: str
    p2pkh_version: int
    p2sh_version: int
    xpub_version: bytes
    xprv_version: bytes
    bip44_coin_type: int
    embit_key: str
    bdk_network_name: str
    is_mainnet: bool

    @property
    def embit_params(self) -> dict[str, Any]:
        """The matching embit network dictionary (for embit calls only)."""
        params: dict[str, Any] = NETWORKS[self.embit_key]
        return params

    def __str__(self) -> str:
        return self.name


_TEST_XPUB = bytes.fromhex("043587cf")
_TEST_XPRV = bytes.fromhex("04358394")

MAINNET = BitcoinNetwork(
    name="mainnet",
    bech32_hrp="bc",
    p2pkh_version=0x00,
    p2sh_version=0x05,
    xpub_version=bytes.fromhex("0488b21e"),
    xprv_version=bytes.fromhex("0488ade4"),
    bip44_coin_type=0,
    embit_key="main",
    bdk_network_name="BITCOIN",
    is_mainnet=True,
)
TESTNET = BitcoinNetwork(
    name="testnet",
    bech32_hrp="tb",
    p2pkh_version=0x6F,
    p2sh_version=0xC4,
    xpub_version=_TEST_XPUB,
    xprv_version=_TEST_XPRV,
    bip44_coin_type=1,
    embit_key="test",
    bdk_network_name="TESTNET",
    is_mainnet=False,
)
SIGNET = BitcoinNetwork(
    name="signet",
    bech32_hrp="tb",
    p2pkh_version=0x6F,
    p2sh_version=0xC4,
    xpub_version=_TEST_XPUB,
    xprv_version=_TEST_XPRV,
    bip44_coin_type=1,
    embit_key="signet",
    bdk_network_name="SIGNET",
    is_mainnet=False,
)
REGTEST = BitcoinNetwork(
    name="regtest",
    bech32_hrp="bcrt",
    p2pkh_version=0x6F,
    p2sh_version=0xC4,
    xpub_version=_TEST_XPUB,
    xprv_version=_TEST_XPRV,
    bip44_coin_type=1,
    embit_key="regtest",
    bdk_network_name="REGTEST",
    is_mainnet=False,
)

NETWORKS_BY_NAME: dict[str, BitcoinNetwork] = {
    n.name: n for n in (MAINNET, TESTNET, SIGNET, REGTEST)
}


def network_by_name(name: str) -> BitcoinNetwork:
    """Look a network up by its name (``mainnet``, ``testnet``, ``signet``, ``regtest``)."""
    try:
        return NETWORKS_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown Bitcoin network {name!r}") from None
