# pragma version 0.4.3
"""
@title ReentrantToken
@custom:contract-name ReentrantToken
@license MIT
@notice A standard ERC-20 that, once armed, makes one call of its choosing
        (e.g. back into the escrow) from inside transfer / transferFrom,
        before moving the tokens. The call's success is recorded and does
        not stop the transfer, so a test sees whether the re-entry got in.
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

hook_target: public(address)
hook_data: public(Bytes[1024])
hook_armed: public(bool)
hook_calls: public(uint256)
hook_successes: public(uint256)


@deploy
def __init__():
    """
    @dev 18 decimals.
    """
    ownable.__init__()
    erc20.__init__("Reentrant token", "REENT", 18, "Reentrant token", "1")


@external
def arm(target: address, data: Bytes[1024]):
    """
    @notice The next transfer calls `target` with `data` (once).
    @param target The contract to call back.
    @param data The calldata.
    """
    self.hook_target = target
    self.hook_data = data
    self.hook_armed = True


@internal
def _hook():
    if not self.hook_armed:
        return
    self.hook_armed = False
    self.hook_calls += 1
    ok: bool = raw_call(self.hook_target, self.hook_data, revert_on_failure=False)
    if ok:
        self.hook_successes += 1


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Runs the armed call, then moves `amount` to `to`.
    @param to The receiver.
    @param amount The amount.
    @return bool True.
    """
    self._hook()
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Runs the armed call, then moves `amount` from `owner` to `to`.
    @param owner The payer.
    @param to The receiver.
    @param amount The amount.
    @return bool True.
    """
    self._hook()
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
