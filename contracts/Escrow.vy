# pragma version 0.4.3
"""
@title escrowd escrow
@custom:contract-name Escrow
@license MIT
@notice One contract per chain holding many escrows of the native coin and
        ERC-20 tokens between a seller, a buyer and an arbitrator. The
        interface (functions, state and action codes, EIP-712 types, events)
        is specified in contracts/README.md; keep both in step.
@dev Invariants (see DESIGN.md):
     I1 no single key moves escrowed funds: every payout needs the seller
        (release, reclaim), the buyer acting against their own interest
        (cancel), the arbitrator on a dispute the parties opened (resolve),
        or both parties together (settle).
     I2 funds leave only to the buyer, the seller, the fee recipient (a share
        of what goes to the buyer) or, deferred, to one of them via claim.
     I4 every signature binds the escrow id, a per-escrow nonce, the expiry,
        this contract and the chain id (EIP-712 domain).
     The balance of each asset held equals the sum of the open escrows in it
     plus what is owed in it.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from snekmate.utils import eip712_domain_separator as eip712

initializes: ownable
initializes: ownable_2step[ownable := ownable]
initializes: eip712

exports: (
    ownable.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
    eip712.eip712Domain,
)


interface IERC20Permit:
    def permit(
        owner: address,
        spender: address,
        amount: uint256,
        deadline: uint256,
        v: uint8,
        r: bytes32,
        s: bytes32,
    ): nonpayable


# ---------------------------------------------------------------- constants

STATE_NONE: constant(uint8) = 0
FUNDED: constant(uint8) = 1
PAID: constant(uint8) = 2
DISPUTED: constant(uint8) = 3
RELEASED: constant(uint8) = 4
REFUNDED: constant(uint8) = 5
RESOLVED: constant(uint8) = 6

ACTION_MARK_PAID: constant(uint8) = 1
ACTION_RELEASE: constant(uint8) = 2
ACTION_CANCEL: constant(uint8) = 3
ACTION_DISPUTE: constant(uint8) = 4
ACTION_RESOLVE: constant(uint8) = 5
ACTION_RECLAIM: constant(uint8) = 6
ACTION_SETTLE: constant(uint8) = 7

REASON_CANCEL: constant(uint8) = 1
REASON_RECLAIM: constant(uint8) = 2

BPS: constant(uint256) = 10_000
MAX_FEE_BPS: public(constant(uint16)) = 500

# Gas forwarded to a native-coin recipient: enough for smart-contract wallets,
# too little for a hostile receiver to starve the rest of the payout.
NATIVE_PAYOUT_GAS: constant(uint256) = 100_000

# secp256k1n / 2: signatures with a higher s are malleable copies.
HALF_N: constant(uint256) = (
    57_896_044_618_658_097_711_785_492_504_343_953_926_418_782_139_537_452_191_302_581_570_759_080_747_168
)

ACTION_TYPEHASH: constant(bytes32) = keccak256(
    "Action(bytes32 id,uint8 action,uint16 buyerBps,uint256 nonce,uint256 expiry)"
)
OPEN_TYPEHASH: constant(bytes32) = keccak256(
    "Open(address seller,bytes32 ref,address buyer,address arbitrator,address token,uint256 amount,uint64 paymentWindow,uint64 deadline,uint256 expiry)"
)


# -------------------------------------------------------------------- state

struct Escrow:
    seller: address
    buyer: address
    arbitrator: address
    token: address
    amount: uint256
    fee_bps: uint16
    fee_recipient: address
    state: uint8
    funded_at: uint64
    payment_deadline: uint64
    deadline: uint64
    nonce: uint256


escrows: public(HashMap[bytes32, Escrow])
owed: public(HashMap[address, HashMap[address, uint256]])
fee_bps: public(uint16)
fee_recipient: public(address)


# ------------------------------------------------------------------- events

event Opened:
    id: indexed(bytes32)
    seller: indexed(address)
    buyer: indexed(address)
    arbitrator: address
    token: address
    amount: uint256
    fee_bps: uint16
    payment_deadline: uint64
    deadline: uint64
    ref: bytes32

event MarkedPaid:
    id: indexed(bytes32)
    buyer: indexed(address)

event Released:
    id: indexed(bytes32)
    buyer: indexed(address)
    amount: uint256
    fee: uint256

event Refunded:
    id: indexed(bytes32)
    seller: indexed(address)
    amount: uint256
    reason: uint8

event Disputed:
    id: indexed(bytes32)
    by: indexed(address)

event Resolved:
    id: indexed(bytes32)
    arbitrator: indexed(address)
    buyer_bps: uint16
    buyer_amount: uint256
    seller_amount: uint256
    fee: uint256

event PayoutDeferred:
    id: indexed(bytes32)
    to: indexed(address)
    token: address
    amount: uint256

event Claimed:
    to: indexed(address)
    token: indexed(address)
    amount: uint256

event FeeChanged:
    fee_bps: uint16
    recipient: address


@deploy
def __init__():
    """
    @dev The deployer becomes the owner. The protocol fee starts at zero.
    """
    ownable.__init__()
    ownable_2step.__init__()
    eip712.__init__("escrowd", "1")


# ------------------------------------------------------------------- opening

@external
@payable
@nonreentrant
def open(
    ref: bytes32,
    buyer: address,
    arbitrator: address,
    token: address,
    amount: uint256,
    payment_window: uint64,
    deadline: uint64,
) -> bytes32:
    """
    @notice Opens and funds an escrow; the caller is the seller.
    @dev Native coin: token = empty(address) and msg.value == amount.
         ERC-20: the seller approved this contract for `amount` beforehand.
    @param ref The node's trade reference; id = keccak256(abi_encode(seller, ref)).
    @param buyer The buyer, who receives on release.
    @param arbitrator The arbitrator, who rules on a dispute.
    @param token The ERC-20 token, or empty(address) for the native coin.
    @param amount The amount escrowed, in base units.
    @param payment_window Seconds the buyer has to mark the payment sent.
    @param deadline Absolute unix time after which no dispute can be opened.
    @return bytes32 The escrow id.
    """
    return self._open(
        msg.sender, ref, buyer, arbitrator, token, amount, payment_window, deadline, msg.value
    )


@external
@nonreentrant
def open_with_permit(
    ref: bytes32,
    buyer: address,
    arbitrator: address,
    token: address,
    amount: uint256,
    payment_window: uint64,
    deadline: uint64,
    permit_deadline: uint256,
    v: uint8,
    r: bytes32,
    s: bytes32,
) -> bytes32:
    """
    @notice Opens an ERC-20 escrow funded through an EIP-2612 permit signed
            by the caller (the seller) for this contract.
    @dev The permit is applied only if the allowance is short, so a permit
         front-run by someone else does not make the opening fail.
    @param ref The node's trade reference.
    @param buyer The buyer.
    @param arbitrator The arbitrator.
    @param token The ERC-20 token (must support EIP-2612).
    @param amount The amount escrowed.
    @param payment_window Seconds the buyer has to mark paid.
    @param deadline Absolute unix time after which no dispute can be opened.
    @param permit_deadline The permit's deadline.
    @param v The permit signature's v.
    @param r The permit signature's r.
    @param s The permit signature's s.
    @return bytes32 The escrow id.
    """
    assert token != empty(address), "Escrow: permit needs a token"
    self._permit_if_short(token, msg.sender, amount, permit_deadline, v, r, s)
    return self._open(msg.sender, ref, buyer, arbitrator, token, amount, payment_window, deadline, 0)


@external
@nonreentrant
def open_relayed(
    seller: address,
    ref: bytes32,
    buyer: address,
    arbitrator: address,
    token: address,
    amount: uint256,
    payment_window: uint64,
    deadline: uint64,
    expiry: uint256,
    open_sig: Bytes[65],
    permit_deadline: uint256,
    v: uint8,
    r: bytes32,
    s: bytes32,
) -> bytes32:
    """
    @notice Opens an ERC-20 escrow on the seller's signed EIP-712 `Open`
            instruction; anyone may submit it and pay the gas.
    @dev Funds come from the seller (transferFrom), never from the submitter.
         The EIP-2612 permit (v, r, s) is applied only if the seller's
         allowance is short; pass zeros when the seller approved already.
         The signature cannot be replayed: the id is taken after first use.
    @param seller The seller who signed `Open` and funds the escrow.
    @param ref The node's trade reference.
    @param buyer The buyer.
    @param arbitrator The arbitrator.
    @param token The ERC-20 token (the native coin cannot be relayed).
    @param amount The amount escrowed.
    @param payment_window Seconds the buyer has to mark paid.
    @param deadline Absolute unix time after which no dispute can be opened.
    @param expiry Unix time after which the `Open` signature is void.
    @param open_sig The seller's 65-byte signature over the `Open` digest.
    @param permit_deadline The permit's deadline.
    @param v The permit signature's v.
    @param r The permit signature's r.
    @param s The permit signature's s.
    @return bytes32 The escrow id.
    """
    assert token != empty(address), "Escrow: relayed open needs a token"
    assert block.timestamp <= expiry, "Escrow: signature expired"
    digest: bytes32 = self._open_digest(
        seller, ref, buyer, arbitrator, token, amount, payment_window, deadline, expiry
    )
    assert self._recover(digest, open_sig) == seller, "Escrow: bad signer"
    self._permit_if_short(token, seller, amount, permit_deadline, v, r, s)
    return self._open(seller, ref, buyer, arbitrator, token, amount, payment_window, deadline, 0)


# ------------------------------------------------------------ direct actions

@external
@nonreentrant
def mark_paid(id: bytes32):
    """
    @notice The buyer marks the off-chain payment as sent (FUNDED -> PAID),
            before the payment deadline.
    @param id The escrow id.
    """
    self._mark_paid(id, msg.sender)


@external
@nonreentrant
def release(id: bytes32):
    """
    @notice The seller releases the escrow to the buyer, minus the fee
            (FUNDED, PAID or DISPUTED -> RELEASED).
    @param id The escrow id.
    """
    self._release(id, msg.sender)


@external
@nonreentrant
def cancel(id: bytes32):
    """
    @notice The buyer cancels; the seller gets the full amount back
            (FUNDED or PAID -> REFUNDED).
    @param id The escrow id.
    """
    self._cancel(id, msg.sender)


@external
@nonreentrant
def dispute(id: bytes32):
    """
    @notice The buyer or the seller opens a dispute before the deadline
            (FUNDED or PAID -> DISPUTED).
    @param id The escrow id.
    """
    self._dispute(id, msg.sender)


@external
@nonreentrant
def resolve(id: bytes32, buyer_bps: uint16):
    """
    @notice The arbitrator rules on a dispute: `buyer_bps` of the amount
            goes to the buyer (minus the fee), the rest to the seller
            (DISPUTED -> RESOLVED).
    @param id The escrow id.
    @param buyer_bps The buyer's share in basis points, 0..10000.
    """
    self._resolve(id, msg.sender, buyer_bps)


@external
@nonreentrant
def reclaim(id: bytes32):
    """
    @notice The seller takes the escrow back alone: when FUNDED after the
            payment deadline, when PAID after the deadline (-> REFUNDED).
    @param id The escrow id.
    """
    self._reclaim(id, msg.sender)


@external
@nonreentrant
def settle(
    id: bytes32, buyer_bps: uint16, expiry: uint256, buyer_sig: Bytes[65], seller_sig: Bytes[65]
):
    """
    @notice Ends a dispute with a split both parties signed (EIP-712 Action
            with action SETTLE), without the arbitrator. Anyone may submit.
    @dev Consumes the escrow's nonce.
    @param id The escrow id.
    @param buyer_bps The buyer's share in basis points, 0..10000.
    @param expiry Unix time after which the signatures are void.
    @param buyer_sig The buyer's 65-byte signature.
    @param seller_sig The seller's 65-byte signature.
    """
    e: Escrow = self.escrows[id]
    assert e.state == DISPUTED, "Escrow: not disputed"
    assert block.timestamp <= expiry, "Escrow: signature expired"
    digest: bytes32 = self._action_digest(id, ACTION_SETTLE, buyer_bps, e.nonce, expiry)
    assert self._recover(digest, buyer_sig) == e.buyer, "Escrow: bad buyer signature"
    assert self._recover(digest, seller_sig) == e.seller, "Escrow: bad seller signature"
    self.escrows[id].nonce = e.nonce + 1
    self._split(id, empty(address), buyer_bps)


@external
@nonreentrant
def execute(id: bytes32, action: uint8, buyer_bps: uint16, expiry: uint256, signature: Bytes[65]):
    """
    @notice Relays an action a party signed (EIP-712 Action); anyone may
            submit and pay the gas.
    @dev The signed nonce is the escrow's current nonce, which this call
         consumes. Codes: 1 MARK_PAID (buyer), 2 RELEASE (seller), 3 CANCEL
         (buyer), 4 DISPUTE (buyer or seller), 5 RESOLVE (arbitrator, uses
         buyer_bps), 6 RECLAIM (seller). SETTLE goes through `settle`.
    @param id The escrow id.
    @param action The action code.
    @param buyer_bps The buyer's share for RESOLVE, 0 for the others.
    @param expiry Unix time after which the signature is void.
    @param signature The signer's 65-byte signature.
    """
    assert block.timestamp <= expiry, "Escrow: signature expired"
    assert action >= ACTION_MARK_PAID and action <= ACTION_RECLAIM, "Escrow: bad action"
    assert action == ACTION_RESOLVE or buyer_bps == 0, "Escrow: buyer_bps unused"
    nonce: uint256 = self.escrows[id].nonce
    digest: bytes32 = self._action_digest(id, action, buyer_bps, nonce, expiry)
    signer: address = self._recover(digest, signature)
    self.escrows[id].nonce = nonce + 1

    if action == ACTION_MARK_PAID:
        self._mark_paid(id, signer)
    elif action == ACTION_RELEASE:
        self._release(id, signer)
    elif action == ACTION_CANCEL:
        self._cancel(id, signer)
    elif action == ACTION_DISPUTE:
        self._dispute(id, signer)
    elif action == ACTION_RESOLVE:
        self._resolve(id, signer, buyer_bps)
    else:
        self._reclaim(id, signer)


@external
@nonreentrant
def claim(token: address):
    """
    @notice Takes a deferred payout owed to the caller in `token`.
    @param token The ERC-20 token, or empty(address) for the native coin.
    """
    amount: uint256 = self.owed[msg.sender][token]
    assert amount > 0, "Escrow: nothing owed"
    self.owed[msg.sender][token] = 0
    if token == empty(address):
        raw_call(msg.sender, b"", value=amount)
    else:
        assert token.is_contract, "Escrow: token has no code"
        assert extcall IERC20(token).transfer(msg.sender, amount, default_return_value=True), "Escrow: transfer failed"
    log Claimed(to=msg.sender, token=token, amount=amount)


# ----------------------------------------------------------------- owner

@external
@nonreentrant
def set_fee(fee_bps: uint16, recipient: address):
    """
    @notice Sets the protocol fee for escrows opened from now on; open
            escrows keep the fee they were opened with.
    @param fee_bps The fee in basis points of what goes to the buyer, <= MAX_FEE_BPS.
    @param recipient The fee recipient (non-zero when fee_bps > 0).
    """
    assert msg.sender == ownable.owner, "Escrow: caller is not the owner"
    assert fee_bps <= MAX_FEE_BPS, "Escrow: fee too high"
    assert fee_bps == 0 or recipient != empty(address), "Escrow: zero fee recipient"
    self.fee_bps = fee_bps
    self.fee_recipient = recipient
    log FeeChanged(fee_bps=fee_bps, recipient=recipient)


# ----------------------------------------------------------------- views

@external
@view
def escrow_id(seller: address, ref: bytes32) -> bytes32:
    """
    @notice The id of the escrow `seller` opens (or opened) with `ref`.
    @param seller The seller.
    @param ref The node's trade reference.
    @return bytes32 keccak256(abi_encode(seller, ref)).
    """
    return keccak256(abi_encode(seller, ref))


@external
@view
def domain_separator() -> bytes32:
    """
    @notice The EIP-712 domain separator (name "escrowd", version "1",
            this chain id, this contract).
    @return bytes32 The domain separator.
    """
    return eip712._domain_separator_v4()


@external
@view
def action_digest(id: bytes32, action: uint8, buyer_bps: uint16, nonce: uint256, expiry: uint256) -> bytes32:
    """
    @notice The EIP-712 digest a party signs for a relayed Action.
    @param id The escrow id.
    @param action The action code.
    @param buyer_bps The buyer's share (RESOLVE, SETTLE) or 0.
    @param nonce The escrow's nonce the signature is for.
    @param expiry Unix time after which the signature is void.
    @return bytes32 The digest.
    """
    return self._action_digest(id, action, buyer_bps, nonce, expiry)


@external
@view
def open_digest(
    seller: address,
    ref: bytes32,
    buyer: address,
    arbitrator: address,
    token: address,
    amount: uint256,
    payment_window: uint64,
    deadline: uint64,
    expiry: uint256,
) -> bytes32:
    """
    @notice The EIP-712 digest a seller signs for `open_relayed`.
    @param seller The seller.
    @param ref The node's trade reference.
    @param buyer The buyer.
    @param arbitrator The arbitrator.
    @param token The ERC-20 token.
    @param amount The amount escrowed.
    @param payment_window Seconds the buyer has to mark paid.
    @param deadline Absolute unix time after which no dispute can be opened.
    @param expiry Unix time after which the signature is void.
    @return bytes32 The digest.
    """
    return self._open_digest(
        seller, ref, buyer, arbitrator, token, amount, payment_window, deadline, expiry
    )


# -------------------------------------------------------------- internals

@internal
def _open(
    seller: address,
    ref: bytes32,
    buyer: address,
    arbitrator: address,
    token: address,
    amount: uint256,
    payment_window: uint64,
    deadline: uint64,
    paid_value: uint256,
) -> bytes32:
    id: bytes32 = keccak256(abi_encode(seller, ref))
    assert self.escrows[id].state == STATE_NONE, "Escrow: id taken"
    assert buyer != empty(address), "Escrow: zero buyer"
    assert arbitrator != empty(address), "Escrow: zero arbitrator"
    assert seller != buyer and seller != arbitrator and buyer != arbitrator, "Escrow: parties not distinct"
    assert amount > 0, "Escrow: zero amount"
    assert payment_window > 0, "Escrow: zero payment window"
    now: uint64 = convert(block.timestamp, uint64)
    payment_deadline: uint64 = now + payment_window
    assert deadline > payment_deadline, "Escrow: deadline before payment deadline"

    fee_bps: uint16 = self.fee_bps
    self.escrows[id] = Escrow(
        seller=seller,
        buyer=buyer,
        arbitrator=arbitrator,
        token=token,
        amount=amount,
        fee_bps=fee_bps,
        fee_recipient=self.fee_recipient,
        state=FUNDED,
        funded_at=now,
        payment_deadline=payment_deadline,
        deadline=deadline,
        nonce=0,
    )

    if token == empty(address):
        assert paid_value == amount, "Escrow: wrong value"
    else:
        assert paid_value == 0, "Escrow: value with token"
        assert token.is_contract, "Escrow: token is not a contract"
        before: uint256 = staticcall IERC20(token).balanceOf(self)
        assert extcall IERC20(token).transferFrom(seller, self, amount, default_return_value=True), "Escrow: transferFrom failed"
        after: uint256 = staticcall IERC20(token).balanceOf(self)
        assert after >= before and after - before == amount, "Escrow: fee-on-transfer"

    log Opened(
        id=id,
        seller=seller,
        buyer=buyer,
        arbitrator=arbitrator,
        token=token,
        amount=amount,
        fee_bps=fee_bps,
        payment_deadline=payment_deadline,
        deadline=deadline,
        ref=ref,
    )
    return id


@internal
def _permit_if_short(
    token: address, owner: address, amount: uint256, permit_deadline: uint256, v: uint8, r: bytes32, s: bytes32
):
    if staticcall IERC20(token).allowance(owner, self) < amount:
        extcall IERC20Permit(token).permit(owner, self, amount, permit_deadline, v, r, s)


@internal
def _mark_paid(id: bytes32, caller: address):
    e: Escrow = self.escrows[id]
    assert e.state == FUNDED, "Escrow: not funded"
    assert caller == e.buyer, "Escrow: caller is not the buyer"
    assert block.timestamp < convert(e.payment_deadline, uint256), "Escrow: payment deadline passed"
    self.escrows[id].state = PAID
    log MarkedPaid(id=id, buyer=caller)


@internal
def _release(id: bytes32, caller: address):
    e: Escrow = self.escrows[id]
    assert e.state == FUNDED or e.state == PAID or e.state == DISPUTED, "Escrow: not releasable"
    assert caller == e.seller, "Escrow: caller is not the seller"
    self.escrows[id].state = RELEASED
    fee: uint256 = e.amount * convert(e.fee_bps, uint256) // BPS
    self._pay(id, e.token, e.buyer, e.amount - fee)
    self._pay(id, e.token, e.fee_recipient, fee)
    log Released(id=id, buyer=e.buyer, amount=e.amount - fee, fee=fee)


@internal
def _cancel(id: bytes32, caller: address):
    e: Escrow = self.escrows[id]
    assert e.state == FUNDED or e.state == PAID, "Escrow: not cancellable"
    assert caller == e.buyer, "Escrow: caller is not the buyer"
    self.escrows[id].state = REFUNDED
    self._pay(id, e.token, e.seller, e.amount)
    log Refunded(id=id, seller=e.seller, amount=e.amount, reason=REASON_CANCEL)


@internal
def _dispute(id: bytes32, caller: address):
    e: Escrow = self.escrows[id]
    assert e.state == FUNDED or e.state == PAID, "Escrow: not disputable"
    assert caller == e.buyer or caller == e.seller, "Escrow: caller is not a party"
    assert block.timestamp < convert(e.deadline, uint256), "Escrow: deadline passed"
    self.escrows[id].state = DISPUTED
    log Disputed(id=id, by=caller)


@internal
def _resolve(id: bytes32, caller: address, buyer_bps: uint16):
    e: Escrow = self.escrows[id]
    assert e.state == DISPUTED, "Escrow: not disputed"
    assert caller == e.arbitrator, "Escrow: caller is not the arbitrator"
    self._split(id, caller, buyer_bps)


@internal
def _reclaim(id: bytes32, caller: address):
    e: Escrow = self.escrows[id]
    assert e.state == FUNDED or e.state == PAID, "Escrow: not reclaimable"
    assert caller == e.seller, "Escrow: caller is not the seller"
    if e.state == FUNDED:
        assert block.timestamp >= convert(e.payment_deadline, uint256), "Escrow: payment deadline not passed"
    else:
        assert block.timestamp >= convert(e.deadline, uint256), "Escrow: deadline not passed"
    self.escrows[id].state = REFUNDED
    self._pay(id, e.token, e.seller, e.amount)
    log Refunded(id=id, seller=e.seller, amount=e.amount, reason=REASON_RECLAIM)


@internal
def _split(id: bytes32, arbitrator: address, buyer_bps: uint16):
    assert convert(buyer_bps, uint256) <= BPS, "Escrow: buyer_bps above 10000"
    e: Escrow = self.escrows[id]
    self.escrows[id].state = RESOLVED
    buyer_gross: uint256 = e.amount * convert(buyer_bps, uint256) // BPS
    fee: uint256 = buyer_gross * convert(e.fee_bps, uint256) // BPS
    seller_amount: uint256 = e.amount - buyer_gross
    self._pay(id, e.token, e.buyer, buyer_gross - fee)
    self._pay(id, e.token, e.fee_recipient, fee)
    self._pay(id, e.token, e.seller, seller_amount)
    log Resolved(
        id=id,
        arbitrator=arbitrator,
        buyer_bps=buyer_bps,
        buyer_amount=buyer_gross - fee,
        seller_amount=seller_amount,
        fee=fee,
    )


@internal
def _pay(id: bytes32, token: address, to: address, amount: uint256):
    """
    @dev Pushes a payout; if the push fails the amount is owed to `to`
         (claim) instead, so a hostile recipient cannot block a ruling.
    """
    if amount == 0:
        return
    ok: bool = False
    if token == empty(address):
        ok = raw_call(to, b"", value=amount, gas=NATIVE_PAYOUT_GAS, revert_on_failure=False)
    else:
        response: Bytes[32] = b""
        ok, response = raw_call(
            token,
            abi_encode(to, amount, method_id=method_id("transfer(address,uint256)")),
            max_outsize=32,
            revert_on_failure=False,
        )
        if ok and len(response) > 0:
            ok = len(response) == 32 and convert(response, uint256) == 1
        elif ok:
            # No return data: a USDT-style token, or no code at all (a call to
            # an empty account "succeeds" without moving anything).
            ok = token.is_contract
    if not ok:
        self.owed[to][token] += amount
        log PayoutDeferred(id=id, to=to, token=token, amount=amount)


@internal
@view
def _action_digest(id: bytes32, action: uint8, buyer_bps: uint16, nonce: uint256, expiry: uint256) -> bytes32:
    return eip712._hash_typed_data_v4(
        keccak256(abi_encode(ACTION_TYPEHASH, id, action, buyer_bps, nonce, expiry))
    )


@internal
@view
def _open_digest(
    seller: address,
    ref: bytes32,
    buyer: address,
    arbitrator: address,
    token: address,
    amount: uint256,
    payment_window: uint64,
    deadline: uint64,
    expiry: uint256,
) -> bytes32:
    return eip712._hash_typed_data_v4(
        keccak256(
            abi_encode(
                OPEN_TYPEHASH, seller, ref, buyer, arbitrator, token, amount, payment_window, deadline, expiry
            )
        )
    )


@internal
@pure
def _recover(digest: bytes32, signature: Bytes[65]) -> address:
    """
    @dev ecrecover of a 65-byte (r, s, v) signature, refusing high s,
         v other than 27/28, and a zero recovered address.
    """
    assert len(signature) == 65, "Escrow: bad signature length"
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    assert s <= HALF_N, "Escrow: high s"
    assert v == 27 or v == 28, "Escrow: bad v"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "Escrow: bad signature"
    return signer
