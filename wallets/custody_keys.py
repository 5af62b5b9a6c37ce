"""The node's custody keys: one BIP-39 seed, every deposit address and hot
wallet derived from it. Nothing else in escrowd touches this key material:
callers get addresses, and ask this keystore to sign.

Derivation paths (``i`` = the user's id, so a user's address never changes
and is re-derivable from the seed and the id alone):

==========  =================================  ===========================
chain       deposit address of user ``i``       hot wallet
==========  =================================  ===========================
Bitcoin     BIP-84 ``m/84'/c'/0'/0/i`` (P2WPKH)  ``m/84'/c'/1'/0/0``
EVM         BIP-44 ``m/44'/60'/0'/0/i``          ``m/44'/60'/1'/0/0``
Solana      SLIP-0010 ``m/44'/501'/i'/0'``       ``m/44'/501'/0'/0'``
==========  =================================  ===========================

``c`` is 0 on Bitcoin mainnet, 1 elsewhere (BIP-44 coin types). The Solana
paths are the ones Phantom and the Solana CLI use (ed25519, hardened only);
user ids start at 1, so account 0 is free for the hot wallet. A Solana deposit
address is a wallet (owner) address; SPL deposits go to its associated token
account per mint (``sol_token_account``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from embit import bip32, bip39
from embit.ec import PrivateKey
from embit.script import p2wpkh
from eth_account import Account

from wallets.bitcoin.network import BitcoinNetwork

MAX_INDEX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class DerivedAddress:
    chain: str  # "btc" | "evm" | "sol"
    address: str
    path: str
    index: int
    script_hex: str | None = None  # Bitcoin: the output script (scriptPubKey) hex


def new_mnemonic() -> str:
    """A fresh 24-word BIP-39 mnemonic (256 bits from the OS CSPRNG)."""
    import secrets

    return str(bip39.mnemonic_from_bytes(secrets.token_bytes(32)))


def _index(i: int) -> int:
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= MAX_INDEX:
        raise ValueError(f"derivation index must be in [0, {MAX_INDEX}]")
    return i


class CustodyKeys:
    """The keystore of the node's custody seed."""

    def __init__(self, mnemonic: str, passphrase: str = "") -> None:
        words = " ".join(mnemonic.split())
        if not bip39.mnemonic_is_valid(words):
            raise ValueError("the custody seed is not a valid BIP-39 mnemonic")
        self._seed = bip39.mnemonic_to_seed(words, passphrase)
        self._root = bip32.HDKey.from_seed(self._seed)

    def __repr__(self) -> str:  # never print key material
        return "CustodyKeys(<seed>)"

    # --- Bitcoin --------------------------------------------------------

    @staticmethod
    def btc_path(network: BitcoinNetwork, account: int, index: int) -> str:
        return f"m/84h/{network.bip44_coin_type}h/{account}h/0/{_index(index)}"

    def _btc_key(self, path: str) -> bip32.HDKey:
        return self._root.derive(path)

    def _btc(self, network: BitcoinNetwork, path: str, index: int) -> DerivedAddress:
        key = self._btc_key(path)
        script = p2wpkh(key.get_public_key())
        return DerivedAddress(
            "btc", script.address(network.embit_params), path, index, script.data.hex()
        )

    def btc_deposit(self, network: BitcoinNetwork, index: int) -> DerivedAddress:
        return self._btc(network, self.btc_path(network, 0, index), index)

    def btc_hot(self, network: BitcoinNetwork) -> DerivedAddress:
        return self._btc(network, self.btc_path(network, 1, 0), 0)

    def btc_sign(self, tx: Any, inputs: Sequence[Any]) -> bytes:
        """Sign every input of ``tx`` (an embit Transaction spending P2WPKH
        outputs; ``inputs[i]`` has the ``amount`` and key ``path`` of input
        ``i``) with SIGHASH_ALL; the signed transaction's bytes."""
        from embit.script import Witness, p2pkh

        for i, coin in enumerate(inputs):
            key = self._btc_key(coin.path).key
            assert isinstance(key, PrivateKey)
            pub = key.get_public_key()
            digest = tx.sighash_segwit(i, p2pkh(pub), coin.amount)
            sig = key.sign(digest).serialize() + b"\x01"
            tx.vin[i].witness = Witness([sig, pub.sec()])
        return bytes(tx.serialize())

    # --- EVM ------------------------------------------------------------

    @staticmethod
    def evm_path(account: int, index: int) -> str:
        return f"m/44'/60'/{account}'/0/{_index(index)}"

    def _evm_secret(self, path: str) -> bytes:
        key = self._root.derive(path.replace("'", "h")).key
        assert isinstance(key, PrivateKey)
        return bytes(key.secret)

    def _evm(self, path: str, index: int) -> DerivedAddress:
        address = Account.from_key(self._evm_secret(path)).address
        return DerivedAddress("evm", address, path, index)

    def evm_deposit(self, index: int) -> DerivedAddress:
        return self._evm(self.evm_path(0, index), index)

    def evm_hot(self) -> DerivedAddress:
        return self._evm(self.evm_path(1, 0), 0)

    def evm_sign(self, path: str, tx: dict[str, Any]) -> bytes:
        """Sign an EVM transaction dict with the key at ``path``; the raw bytes."""
        signed = Account.sign_transaction(tx, self._evm_secret(path))
        return bytes(signed.raw_transaction)

    # --- Solana ---------------------------------------------------------

    @staticmethod
    def sol_path(account: int) -> str:
        return f"m/44'/501'/{_index(account)}'/0'"

    def _sol_keypair(self, path: str) -> Any:
        from solders.keypair import Keypair

        return Keypair.from_seed_and_derivation_path(self._seed, path)

    def sol_deposit(self, index: int) -> DerivedAddress:
        if index == 0:
            raise ValueError("Solana account 0 is the hot wallet")
        path = self.sol_path(index)
        return DerivedAddress("sol", str(self._sol_keypair(path).pubkey()), path, index)

    def sol_sign(self, path: str | Sequence[str], message: Any) -> bytes:
        """A transaction of ``message`` (a solders Message) signed by the keys
        at ``path`` (one path, or one per required signer, in any order); its
        wire bytes."""
        from solders.transaction import VersionedTransaction

        paths = [path] if isinstance(path, str) else list(path)
        by_key = {kp.pubkey(): kp for kp in (self._sol_keypair(p) for p in paths)}
        signers = message.account_keys[: message.header.num_required_signatures]
        return bytes(VersionedTransaction(message, [by_key[k] for k in signers]))

    def sol_hot(self) -> DerivedAddress:
        path = self.sol_path(0)
        return DerivedAddress("sol", str(self._sol_keypair(path).pubkey()), path, 0)


def sol_token_account(owner: str, mint: str, *, token_program: str | None = None) -> str:
    """The associated token account of ``owner`` for ``mint`` (SPL Token, or
    ``token_program`` for Token-2022)."""
    from solders.pubkey import Pubkey
    from spl.token.constants import TOKEN_PROGRAM_ID
    from spl.token.instructions import get_associated_token_address

    program = Pubkey.from_string(token_program) if token_program else TOKEN_PROGRAM_ID
    return str(
        get_associated_token_address(
            Pubkey.from_string(owner), Pubkey.from_string(mint), token_program_id=program
        )
    )
