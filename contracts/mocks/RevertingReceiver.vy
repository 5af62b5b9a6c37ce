# pragma version 0.4.3
"""
@title RevertingReceiver
@custom:contract-name RevertingReceiver
@license MIT
@notice A contract account that can act as an escrow party (its owner
        forwards calls through it) and that reverts on receiving the native
        coin while `rejecting` is set. Once armed, receiving the coin instead
        makes one call of its choosing (e.g. back into the escrow) and
        records whether it succeeded.
"""

owner: public(address)
rejecting: public(bool)
hook_target: public(address)
hook_data: public(Bytes[1024])
hook_armed: public(bool)
hook_calls: public(uint256)
hook_successes: public(uint256)


@deploy
def __init__():
    """
    @dev Starts rejecting the native coin.
    """
    self.owner = msg.sender
    self.rejecting = True


@external
def set_rejecting(rejecting: bool):
    """
    @notice Whether receiving the native coin reverts.
    @param rejecting The flag.
    """
    assert msg.sender == self.owner, "RevertingReceiver: not owner"
    self.rejecting = rejecting


@external
def arm(target: address, data: Bytes[1024]):
    """
    @notice The next receipt of the native coin calls `target` with `data`.
    @param target The contract to call back.
    @param data The calldata.
    """
    assert msg.sender == self.owner, "RevertingReceiver: not owner"
    self.hook_target = target
    self.hook_data = data
    self.hook_armed = True


@external
@payable
def forward(target: address, data: Bytes[2048]) -> Bytes[256]:
    """
    @notice Calls `target` with `data` (and the attached value) as this contract.
    @param target The contract to call.
    @param data The calldata.
    @return Bytes The call's return data.
    """
    assert msg.sender == self.owner, "RevertingReceiver: not owner"
    return raw_call(target, data, value=msg.value, max_outsize=256)


@external
@payable
def __default__():
    """
    @notice Reverts while `rejecting`; otherwise runs the armed call, if any.
    """
    assert not self.rejecting, "RevertingReceiver: rejected"
    if self.hook_armed:
        self.hook_armed = False
        self.hook_calls += 1
        if raw_call(self.hook_target, self.hook_data, revert_on_failure=False):
            self.hook_successes += 1
