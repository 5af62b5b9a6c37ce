"""Custody key derivation agrees with independent implementations: eth-account's
HD wallet (BIP-44), embit's descriptors (BIP-84, checked against the BIP-84
test vector), and solders' SLIP-0010 derivation; the seed never prints."""

from __future__ import annotations

import pytest
from eth_account import Account

from wallets.bitcoin.network import MAINNET, REGTEST
from wallets.custody_keys import CustodyKeys, new_mnemonic, sol_token_account

# the BIP-84 test vector's mnemonic
VECTOR = "abandon " * 11 + "about"


def test_btc_bip84_vector() -> None:
    keys = CustodyKeys(VECTOR)
    # BIP-84: first receiving address of m/84'/0'/0'
    assert keys.btc_deposit(MAINNET, 0).address == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert keys.btc_deposit(MAINNET, 1).address == "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
    a = keys.btc_deposit(REGTEST, 5)
    assert a.address.startswith("bcrt1q") and a.path == "m/84h/1h/0h/0/5"
    assert a.script_hex is not None and a.script_hex.startswith("0014")
    assert keys.btc_hot(REGTEST).address != keys.btc_deposit(REGTEST, 0).address


def test_evm_bip44_matches_eth_account() -> None:
    Account.enable_unaudited_hdwallet_features()
    keys = CustodyKeys(VECTOR)
    for i in (0, 1, 42):
        want = Account.from_mnemonic(VECTOR, account_path=f"m/44'/60'/0'/0/{i}").address
        assert keys.evm_deposit(i).address == want
    assert (
        keys.evm_hot().address
        == Account.from_mnemonic(VECTOR, account_path="m/44'/60'/1'/0/0").address
    )


def test_evm_signing_recovers_to_the_address() -> None:
    keys = CustodyKeys(new_mnemonic())
    hot = keys.evm_hot()
    tx = {
        "to": hot.address,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 10**9,
        "maxPriorityFeePerGas": 1,
        "nonce": 0,
        "chainId": 31337,
        "type": 2,
    }
    raw = keys.evm_sign(hot.path, tx)
    assert Account.recover_transaction(raw) == hot.address


def test_sol_slip10_and_token_accounts() -> None:
    from embit import bip39
    from solders.keypair import Keypair

    keys = CustodyKeys(VECTOR)
    seed = bip39.mnemonic_to_seed(VECTOR)
    want = Keypair.from_seed_and_derivation_path(seed, "m/44'/501'/3'/0'").pubkey()
    assert keys.sol_deposit(3).address == str(want)
    assert keys.sol_hot().address != keys.sol_deposit(1).address
    with pytest.raises(ValueError):
        keys.sol_deposit(0)
    usdc = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    ata = sol_token_account(keys.sol_deposit(3).address, usdc)
    assert ata == sol_token_account(keys.sol_deposit(3).address, usdc)
    assert ata != sol_token_account(keys.sol_deposit(4).address, usdc)


def test_bad_seed_and_repr() -> None:
    with pytest.raises(ValueError):
        CustodyKeys("not a mnemonic")
    keys = CustodyKeys(VECTOR)
    assert "abandon" not in repr(keys)
    with pytest.raises(ValueError):
        keys.evm_deposit(-1)
