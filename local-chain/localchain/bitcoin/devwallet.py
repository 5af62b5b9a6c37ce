"""A tiny P2WPKH wallet for tests and demos (a trader's own wallet: the node
never holds its key). embit builds and signs; coins are found with
``scantxoutset``, as a watch-only client of bitcoind would.

Never use these keys anywhere real: the key is sha256 of a public seed."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from embit import ec
from embit.networks import NETWORKS
from embit.script import Script, Witness, p2pkh, p2wpkh, p2wsh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from localchain.bitcoin import scripts as S

COIN = 100_000_000
COINBASE_MATURITY = 100
SEQUENCE_RBF = 0xFFFFFFFD


class RPCClient(Protocol):
    def rpc(self, method: str, *params: Any) -> Any: ...


@dataclass(frozen=True)
class Utxo:
    txid: str
    vout: int
    value: int  # sat
    script_pubkey: bytes
    height: int = 0  # 0 when unconfirmed
    coinbase: bool = False
    confirmations: int = 0


def sats(btc: Decimal | float | str) -> int:
    return int(Decimal(str(btc)) * COIN)


class DevWallet:
    def __init__(self, node: RPCClient, seed: str | bytes) -> None:
        self.node = node
        secret = hashlib.sha256(seed.encode() if isinstance(seed, str) else seed).digest()
        self.key = ec.PrivateKey(secret)
        self.pubkey = self.key.get_public_key()
        self.script_pubkey = bytes(p2wpkh(self.pubkey).data)
        self.address = str(p2wpkh(self.pubkey).address(NETWORKS["regtest"]))

    # coins --------------------------------------------------------------------
    def utxos(self, *, spendable_only: bool = True) -> list[Utxo]:
        res = self.node.rpc("scantxoutset", "start", [f"addr({self.address})"])
        out = []
        for u in res["unspents"]:
            utxo = Utxo(
                txid=u["txid"],
                vout=u["vout"],
                value=sats(u["amount"]),
                script_pubkey=bytes.fromhex(u["scriptPubKey"]),
                height=u["height"],
                coinbase=u["coinbase"],
                confirmations=u.get("confirmations", 0),
            )
            if spendable_only and utxo.coinbase and utxo.confirmations < COINBASE_MATURITY:
                continue
            out.append(utxo)
        return out

    def balance(self) -> int:
        return sum(u.value for u in self.utxos())

    # building -----------------------------------------------------------------
    def build(
        self,
        outputs: Sequence[tuple[str | bytes, int]],
        *,
        feerate: float = 2.0,
        inputs: Sequence[Utxo] | None = None,
        sequence: int = SEQUENCE_RBF,
        locktime: int = 0,
        version: int = 2,
        fee: int | None = None,
    ) -> Transaction:
        """A signed transaction paying ``outputs`` ((address or script, sat));
        change above dust returns to this wallet. ``feerate`` is sat/vB."""
        outs = [
            TransactionOutput(
                value, Script(S.address_to_spk(dest) if isinstance(dest, str) else dest)
            )
            for dest, value in outputs
        ]
        target = sum(o.value for o in outs)
        chosen: list[Utxo] = []
        if inputs is not None:
            chosen = list(inputs)  # exactly these
        else:
            for u in sorted(self.utxos(), key=lambda u: -u.value):
                chosen.append(u)
                need = (
                    fee if fee is not None else self._fee(len(chosen), outs, feerate, change=True)
                )
                if sum(c.value for c in chosen) >= target + need:
                    break
        total_in = sum(c.value for c in chosen)
        fee_with_change = (
            fee if fee is not None else self._fee(len(chosen), outs, feerate, change=True)
        )
        change = total_in - target - fee_with_change
        if change >= S.dust_threshold(self.script_pubkey):
            outs.append(TransactionOutput(change, Script(self.script_pubkey)))
        else:
            no_change_fee = (
                fee if fee is not None else self._fee(len(chosen), outs, feerate, change=False)
            )
            if total_in < target + no_change_fee:
                raise ValueError(
                    f"insufficient funds: have {total_in} sat, need {target + no_change_fee} sat"
                )
        vin = [TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=sequence) for c in chosen]
        tx = Transaction(version=version, vin=vin, vout=outs, locktime=locktime)
        for i, c in enumerate(chosen):
            self.sign_input(tx, i, c.value)
        return tx

    @staticmethod
    def _fee(
        n_inputs: int, outs: Sequence[TransactionOutput], feerate: float, *, change: bool
    ) -> int:
        # P2WPKH input: 41 bytes + (1+1+72+1+33)/4 witness -> 68 vB (upper bound)
        size = 10.75 + 68.5 * n_inputs + sum(9 + len(o.script_pubkey.data) for o in outs)
        if change:
            size += 31
        return math.ceil(size * feerate)

    def sign_input(
        self,
        tx: Transaction,
        index: int,
        value: int,
        witness_script: bytes | None = None,
        extra_witness: Sequence[bytes] = (),
    ) -> None:
        """Sign input ``index`` spending ``value`` sat: P2WPKH of this key, or a
        P2WSH ``witness_script`` whose single signature is this key's."""
        tx.clear_cache()  # embit caches the BIP143 hashes: the tx may have changed
        script_code = p2pkh(self.pubkey) if witness_script is None else Script(witness_script)
        digest = tx.sighash_segwit(index, script_code, value)
        sig = self.key.sign(digest).serialize() + b"\x01"
        if witness_script is None:
            tx.vin[index].witness = Witness([sig, self.pubkey.sec()])
        else:
            tx.vin[index].witness = Witness([sig, *extra_witness, witness_script])

    def p2wsh_address(self, witness_script: bytes) -> str:
        return str(p2wsh(Script(witness_script)).address(NETWORKS["regtest"]))

    # broadcasting -------------------------------------------------------------
    def broadcast(self, tx: Transaction) -> str:
        return str(self.node.rpc("sendrawtransaction", bytes(tx.serialize()).hex()))

    def send(self, address: str, amount: int, feerate: float = 2.0) -> str:
        """Pay ``amount`` sat to ``address`` at ``feerate`` sat/vB; returns the txid."""
        return self.broadcast(self.build([(address, amount)], feerate=feerate))


def output_utxo(tx: Transaction, vout: int) -> Utxo:
    """An (unconfirmed) output of ``tx`` as a Utxo, to spend it before it confirms."""
    out = tx.vout[vout]
    return Utxo(tx.txid().hex(), vout, out.value, bytes(out.script_pubkey.data))
