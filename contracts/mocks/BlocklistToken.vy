# pragma version 0.4.3
"""
@title BlocklistToken
@custom:contract-name BlocklistToken
@license MIT
@notice A USDC-style ERC-20 whose owner can blocklist addresses; transfers
        from or to a blocklisted address revert.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    ownable.owner,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.allowance,
    erc20.approve,
)

blocked: public(HashMap[address, bool])


@deploy
def __init__():
    """
    @dev 6 decimals; the deployer is the owner.
    """
    ownable.__init__()
    erc20.__init__("Blocklist token", "BLOCK", 6, "Blocklist token", "1")


@external
def set_blocked(account: address, blocked: bool):
    """
    @notice Adds `account` to or removes it from the blocklist.
    @param account The account.
    @param blocked The flag.
    """
    ownable._check_owner()
    self.blocked[account] = blocked


@internal
def _move(owner: address, to: address, amount: uint256):
    assert not self.blocked[owner], "BlocklistToken: sender blocked"
    assert not self.blocked[to], "BlocklistToken: receiver blocked"
    erc20._transfer(owner, to, amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` to `to` unless either is blocklisted.
    @param to The receiver.
    @param amount The amount.
    @return bool True.
    """
    self._move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from `owner` to `to` unless either is blocklisted.
    @param owner The payer.
    @param to The receiver.
    @param amount The amount.
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
