# pragma version 0.4.3
"""
@title FeeOnTransferToken
@custom:contract-name FeeOnTransferToken
@license MIT
@notice An ERC-20 that burns 1% of every transfer, so the receiver gets
        less than `amount`.
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

FEE_BPS: constant(uint256) = 100


@deploy
def __init__():
    """
    @dev 18 decimals.
    """
    ownable.__init__()
    erc20.__init__("Fee token", "FEE", 18, "Fee token", "1")


@internal
def _move(owner: address, to: address, amount: uint256):
    fee: uint256 = amount * FEE_BPS // 10_000
    erc20._burn(owner, fee)
    erc20._transfer(owner, to, amount - fee)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` minus 1% to `to`; the 1% is burnt.
    @param to The receiver.
    @param amount The amount debited.
    @return bool True.
    """
    self._move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` minus 1% from `owner` to `to`; the 1% is burnt.
    @param owner The payer.
    @param to The receiver.
    @param amount The amount debited.
    @return bool True.
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    self._move(owner, to, amount)
    return True


@external
def mint(to: address, amount: uint256):
    """
    @notice Creates `amount` tokens for `to`; open to anyone (test token).
    @param to The receiver.
    @param amount The amount.
    """
    erc20._mint(to, amount)
