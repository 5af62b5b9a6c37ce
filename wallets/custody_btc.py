"""Bitcoin transactions of the custody wallet: P2WPKH inputs (deposit
addresses, hot wallet) to any outputs. Pure: sizes, fees, the unsigned
transaction; signing is the keystore's (``CustodyKeys.btc_sign``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from embit.script import Script, address_to_scriptpubkey
from embit.transaction import Transaction, TransactionInput, TransactionOutput

P2WPKH_INPUT_VB = 68  # 41 bytes + a 107-byte witness / 4, rounded up
OVERHEAD_VB = 11  # version, locktime, counts, segwit marker (10.5, rounded up)
P2WPKH_DUST = 294
RBF_SEQUENCE = 0xFFFFFFFD


@dataclass(frozen=True, slots=True)
class SpendableOutput:
    txid: str  # display hex
    vout: int
    amount: int  # sat
    path: str  # derivation path of the key that spends it


def output_vsize(script: bytes) -> int:
    return 8 + 1 + len(script)


def vsize(n_inputs: int, output_scripts: Sequence[bytes]) -> int:
    """An upper bound of the signed transaction's virtual size."""
    return OVERHEAD_VB + P2WPKH_INPUT_VB * n_inputs + sum(output_vsize(s) for s in output_scripts)


def script_of(address: str) -> bytes:
    return bytes(address_to_scriptpubkey(address).data)


def unsigned(
    inputs: Sequence[SpendableOutput], outputs: Sequence[tuple[bytes, int]]
) -> Transaction:
    if not inputs or not outputs:
        raise ValueError("a transaction has inputs and outputs")
    if sum(a for _s, a in outputs) > sum(i.amount for i in inputs):
        raise ValueError("outputs exceed inputs")
    return Transaction(
        version=2,
        vin=[
            TransactionInput(bytes.fromhex(i.txid), i.vout, sequence=RBF_SEQUENCE) for i in inputs
        ],
        vout=[TransactionOutput(a, Script(s)) for s, a in outputs],
        locktime=0,
    )


def select(
    coins: Sequence[SpendableOutput], amount: int, *, dest: bytes, change: bytes, feerate: int
) -> tuple[list[SpendableOutput], list[tuple[bytes, int]], int]:
    """Largest coins first until ``amount`` and the fee are covered; change
    back to ``change`` unless it would be dust (then it goes to the fee).
    Returns (inputs, outputs, fee); ValueError when the coins do not suffice."""
    chosen: list[SpendableOutput] = []
    total = 0
    for coin in sorted(coins, key=lambda c: (-c.amount, c.txid, c.vout)):
        chosen.append(coin)
        total += coin.amount
        fee = vsize(len(chosen), [dest, change]) * feerate
        if total >= amount + fee:
            rest = total - amount - fee
            if rest >= P2WPKH_DUST:
                return chosen, [(dest, amount), (change, rest)], fee
            return chosen, [(dest, amount)], total - amount
    raise ValueError("not enough coins")
