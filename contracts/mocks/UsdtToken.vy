# pragma version 0.4.3
"""
@title UsdtToken
@custom:contract-name UsdtToken
@license MIT
@notice A USDT-style ERC-20: transfer, transferFrom and approve return
        nothing (and revert on failure). `mint` is open to anyone.
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
)


@deploy
def __init__():
    """
    @dev Tether USD look-alike with 6 decimals.
    """
    ownable.__init__()
    erc20.__init__("Tether USD (test)", "USDT", 6, "Tether USD (test)", "1")


@external
def transfer(to: address, amount: uint256):
    """
    @notice Moves `amount` to `to`; returns nothing like USDT.
    @param to The receiver.
    @param amount The amount.
    """
    erc20._transfer(msg.sender, to, amount)


@external
def transferFrom(owner: address, to: address, amount: uint256):
    """
    @notice Moves `amount` from `owner` to `to` on allowance; returns nothing.
    @param owner The payer.
    @param to The receiver.
    @param amount The amount.
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)


@external
def approve(spender: address, amount: uint256):
    """
    @notice Sets the allowance of `spender`; returns nothing.
    @param spender The spender.
    @param amount The allowance.
    """
    erc20._approve(msg.sender, spender, amount)


@external
def mint(to: address, amount: uint256):
    """
    @notice Creates `amount` tokens for `to`; open to anyone (test token).
    @param to The receiver.
    @param amount The amount.
    """
    erc20._mint(to, amount)
