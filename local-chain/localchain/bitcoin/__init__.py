"""A local Bitcoin regtest node whose blocks are validated by Bitcoin Core's
consensus engine (libbitcoinkernel via py-bitcoinkernel), serving bitcoind's
JSON-RPC. See ``node.py`` for how it is put together and ``harness.py`` for
running it from tests.

The harness (and httpx) is imported lazily so that the node process itself
starts fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from localchain.bitcoin.errors import RPCError

if TYPE_CHECKING:
    from localchain.bitcoin.harness import BURN_ADDRESS, BitcoinRegtest

__all__ = ["BURN_ADDRESS", "BitcoinRegtest", "RPCError"]


def __getattr__(name: str) -> Any:
    if name in ("BitcoinRegtest", "BURN_ADDRESS"):
        from localchain.bitcoin import harness

        return getattr(harness, name)
    raise AttributeError(name)
