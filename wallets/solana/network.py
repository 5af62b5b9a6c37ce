"""Solana network parameters as immutable values, passed explicitly.

A cluster is identified by its genesis hash (``getGenesisHash``); the name is
for humans. Escrow account addresses are derived with the genesis hash in the
seed, so one trade ref gives different addresses on different clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.hash import Hash


@dataclass(frozen=True, slots=True)
class SolanaNetwork:
    """One Solana cluster: ``name`` (mainnet-beta, devnet, ...) and ``genesis_hash``."""

    name: str
    genesis_hash: Hash

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("network name must not be empty")


MAINNET_BETA = SolanaNetwork(
    "mainnet-beta", Hash.from_string("5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d")
)
DEVNET = SolanaNetwork("devnet", Hash.from_string("EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG"))
TESTNET = SolanaNetwork("testnet", Hash.from_string("4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY"))


def local_network(genesis_hash: Hash, name: str = "localnet") -> SolanaNetwork:
    """A local cluster (LiteSVM behind local-chain, solana-test-validator): its genesis
    hash is only known at run time, from the node's ``getGenesisHash``."""
    return SolanaNetwork(name, genesis_hash)
