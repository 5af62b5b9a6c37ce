# pragma version 0.4.3
"""
@title FalseToken
@custom:contract-name FalseToken
@license MIT
@notice An ERC-20 that returns `false` instead of reverting: on a short
        balance or allowance, and on every transfer while `failing` is set.
        Nothing moves when it returns `false`.
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
    erc20.approve,
)

failing: public(bool)


@deploy
def __init__():
    """
    @dev 18 decimals.
    """
    ownable.__init__()
    erc20.__init__("False token", "FALSE", 18, "False token", "1")


@external
def set_failing(failing: bool):
    """
    @notice While set, every transfer returns false and moves nothing.
    @param failing The flag.
    """
    self.failing = failing


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` to `to`, or returns false.
    @param to The receiver.
    @param amount The amount.
    @return bool Whether it moved.
    """
    if self.failing or erc20.balanceOf[msg.sender] < amount:
        return False
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from `owner` to `to` on allowance, or returns false.
    @param owner The payer.
    @param to The receiver.
    @param amount The amount.
    @return bool Whether it moved.
    """
    if self.failing or erc20.balanceOf[owner] < amount:
        return False
    if erc20.allowance[owner][msg.sender] < amount:
        return False
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True


@external
def mint(to: address, amount: uint256):
    """
    @notice Creates `amount` tokens for `to`; open to anyone (test token).
    @param to The receiver.
    @param amount The amount.
    """
    erc20._mint(to, amount)
