"""Withdrawal address validation: canonical forms per chain, and any other
input is a 422 ``invalid_address`` (never an unexpected exception)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.custody.withdrawals import canonical_address
from node.errors import ValidationError
from wallets.bitcoin.network import MAINNET, REGTEST
from wallets.custody_keys import CustodyKeys

KEYS = CustodyKeys("abandon " * 11 + "about")


def test_canonical_forms() -> None:
    evm = KEYS.evm_deposit(1).address
    assert canonical_address("evm", evm.lower(), btc_network=REGTEST) == evm
    btc = KEYS.btc_deposit(REGTEST, 1).address
    assert canonical_address("btc", btc, btc_network=REGTEST) == btc
    sol = KEYS.sol_deposit(1).address
    assert canonical_address("sol", sol, btc_network=REGTEST) == sol


@pytest.mark.parametrize(
    ("chain", "address"),
    [
        ("evm", "0x123"),
        ("evm", ""),
        ("btc", KEYS.btc_deposit(MAINNET, 1).address),  # another network
        ("btc", "bcrt1qxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("sol", "0OIl"),
        ("doge", "D8vFz4p1L37jdg47HXKtSHA5uYLYxbGgPD"),
    ],
)
def test_refused(chain: str, address: str) -> None:
    with pytest.raises(ValidationError):
        canonical_address(chain, address, btc_network=REGTEST)


@given(st.sampled_from(["evm", "btc", "sol"]), st.text(max_size=130))
def test_any_text_is_valid_or_a_validation_error(chain: str, text: str) -> None:
    try:
        canonical_address(chain, text, btc_network=REGTEST)
    except ValidationError as exc:
        assert exc.http_status == 422
