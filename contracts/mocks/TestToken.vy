# pragma version 0.4.3
"""
@title TestToken
@custom:contract-name TestToken
@license MIT
@notice A standard ERC-20 with EIP-2612 permit (snekmate erc20) whose `mint`
        is open to anyone. For tests and the node's dev chain only.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.allowance,
    erc20.transfer,
    erc20.approve,
    erc20.transferFrom,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
)


@deploy
def __init__(name_: String[25], symbol_: String[5], decimals_: uint8):
    """
    @dev The EIP-712 domain of the permit is (name_, "1").
    @param name_ The token name.
    @param symbol_ The token symbol.
    @param decimals_ The token decimals.
    """
    ownable.__init__()
    erc20.__init__(name_, symbol_, decimals_, name_, "1")


@external
def mint(to: address, amount: uint256):
    """
    @notice Creates `amount` tokens for `to`; open to anyone (test token).
    @param to The receiver.
    @param amount The amount.
    """
    erc20._mint(to, amount)
