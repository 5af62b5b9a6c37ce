"""The EVM half of a trade: escrow ids, funding calldata, EIP-712 actions,
relayed submission, and the arbitration agent's rulings.

The seller funds from their own wallet: the API returns the exact
transactions (approve + open, or open with value) and the EIP-712 ``Open``
payload for a gasless relayed opening. Every party action is an EIP-712
``Action`` the party signs in their wallet; the node queues it for the relayer.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from node.chain_trades import SignRequest, Submitted
from node.chains.evm.artifacts import load as load_artifact
from node.db.models import CryptoCurrency, P2PEscrow, P2POrder, RelayJob, User
from node.domain.escrow import Action, ChainState, EscrowView, decision_of
from node.errors import ChainError, ValidationError
from node.signing import sign_once

NATIVE = "0x0000000000000000000000000000000000000000"
ACTION_EXPIRY_S = 3600

EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
ACTION_TYPE = [
    {"name": "id", "type": "bytes32"},
    {"name": "action", "type": "uint8"},
    {"name": "buyerBps", "type": "uint16"},
    {"name": "nonce", "type": "uint256"},
    {"name": "expiry", "type": "uint256"},
]
OPEN_TYPE = [
    {"name": "seller", "type": "address"},
    {"name": "ref", "type": "bytes32"},
    {"name": "buyer", "type": "address"},
    {"name": "arbitrator", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "paymentWindow", "type": "uint64"},
    {"name": "deadline", "type": "uint64"},
    {"name": "expiry", "type": "uint256"},
]


@dataclass(frozen=True)
class TokenInfo:
    symbol: str
    name: str
    address: str
    decimals: int


@dataclass(frozen=True)
class EvmDeployment:
    """Where the escrow contract lives (written by the local chain's deploy,
    or given by the operator in production)."""

    chain_id: int
    rpc_url: str
    escrow_address: str
    start_block: int
    native_symbol: str = "ETH"
    tokens: tuple[TokenInfo, ...] = ()

    @classmethod
    def from_file(cls, path: Path) -> EvmDeployment:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvmDeployment:
        tokens = tuple(
            TokenInfo(
                symbol=t["symbol"],
                name=t.get("name", t["symbol"]),
                address=to_checksum_address(t["address"]),
                decimals=int(t["decimals"]),
            )
            for t in data.get("tokens", [])
        )
        return cls(
            chain_id=int(data["chain_id"]),
            rpc_url=data["rpc_url"],
            escrow_address=to_checksum_address(data.get("escrow_address") or data["escrow"]),
            start_block=int(data.get("deploy_block", data.get("start_block", 0))),
            native_symbol=data.get("native_symbol", "ETH"),
            tokens=tokens,
        )


def escrow_id(seller: str, ref: bytes) -> str:
    """``keccak256(abi_encode(seller, ref))``, as the contract computes it."""
    return "0x" + keccak(abi_encode(["address", "bytes32"], [seller, ref])).hex()


def action_typed_data(
    *,
    chain_id: int,
    contract: str,
    escrow_key: str,
    action: Action,
    buyer_bps: int,
    nonce: int,
    expiry: int,
) -> dict[str, Any]:
    """The EIP-712 payload a party signs (MetaMask ``eth_signTypedData_v4``)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN, "Action": ACTION_TYPE},
        "primaryType": "Action",
        "domain": {
            "name": "escrowd",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": {
            "id": escrow_key,
            "action": int(action),
            "buyerBps": buyer_bps,
            "nonce": nonce,
            "expiry": expiry,
        },
    }


def typed_data_digest(typed: dict[str, Any]) -> str:
    msg = encode_typed_data(full_message=typed)
    return "0x" + keccak(b"\x19" + msg.version + msg.header + msg.body).hex()


def sign_typed_data(key: str, typed: dict[str, Any]) -> str:
    """A 65-byte r||s||v signature (hex) over an EIP-712 payload."""
    signed = Account.sign_typed_data(key, full_message=typed)
    return "0x" + bytes(signed.signature).hex()


class EvmTradeChain:
    """``TradeChain`` for one EVM chain and its escrow contract."""

    family = "evm"

    def __init__(
        self,
        *,
        deployment: EvmDeployment,
        sessions: sessionmaker[Session],
        agent_key: str,
        payment_window_s: int,
        release_window_s: int,
    ) -> None:
        self.deployment = deployment
        self.sessions = sessions
        self.network = str(deployment.chain_id)
        self.chain_key = f"evm:{deployment.chain_id}"
        self._agent = Account.from_key(agent_key)
        self.payment_window_s = payment_window_s
        self.release_window_s = release_window_s
        self.w3 = Web3(Web3.HTTPProvider(deployment.rpc_url, request_kwargs={"timeout": 10}))
        self.contract = self.w3.eth.contract(
            address=to_checksum_address(deployment.escrow_address),
            abi=load_artifact("Escrow").abi,
        )

    @property
    def agent_address(self) -> str:
        return str(self._agent.address)

    # -- currencies --------------------------------------------------------

    def currencies(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "name": "Ether",
                "symbol": self.deployment.native_symbol,
                "network": self.network,
                "decimals": 18,
                "contract_address": None,
            }
        ]
        for t in self.deployment.tokens:
            out.append(
                {
                    "name": t.name,
                    "symbol": t.symbol,
                    "network": self.network,
                    "decimals": t.decimals,
                    "contract_address": t.address,
                }
            )
        return out

    def validate_address(self, address: str, *, field: str) -> str:
        if not isinstance(address, str) or not is_address(address):
            raise ValidationError(f"{field} is not an EVM address", field=field)
        checksummed = to_checksum_address(address)
        if checksummed == NATIVE:
            raise ValidationError(f"{field} cannot be the zero address", field=field)
        return str(checksummed)

    # -- opening -----------------------------------------------------------

    def open_escrow(
        self,
        session: Session,
        *,
        trade: P2POrder,
        currency: CryptoCurrency,
        arbitrator_address: str | None,
        now: datetime,
    ) -> P2PEscrow:
        assert trade.seller_address and trade.buyer_address
        seller = self.validate_address(trade.seller_address, field="seller_address")
        buyer = self.validate_address(trade.buyer_address, field="buyer_address")
        arbitrator = arbitrator_address or self.agent_address
        if len({seller, buyer, arbitrator}) != 3:
            raise ValidationError(
                "seller, buyer and arbitrator addresses must all differ", field="buyer_address"
            )
        ref = secrets.token_bytes(32)
        deadline = int(now.timestamp()) + self.payment_window_s + self.release_window_s
        escrow = P2PEscrow(
            p2p_order_id=trade.id,
            chain="evm",
            network=self.network,
            contract_address=self.deployment.escrow_address,
            ref="0x" + ref.hex(),
            escrow_key=escrow_id(seller, ref),
            token_address=currency.contract_address,
            amount=trade.amount,
            seller_address=seller,
            buyer_address=buyer,
            arbitrator_address=arbitrator,
            fee_bps=int(self.contract.functions.fee_bps().call()),
            payment_window_s=self.payment_window_s,
            deadline=deadline,
            status="awaiting_funding",
        )
        session.add(escrow)
        session.flush()
        return escrow

    def funding_instructions(self, escrow: P2PEscrow, currency: CryptoCurrency) -> dict[str, Any]:
        """Exactly what the seller's own wallet sends (or signs) to fund."""
        token = currency.contract_address or NATIVE
        open_args = [
            bytes.fromhex(escrow.ref[2:]),
            escrow.buyer_address,
            escrow.arbitrator_address,
            token,
            escrow.amount,
            escrow.payment_window_s,
            escrow.deadline,
        ]
        open_tx = {
            "to": self.deployment.escrow_address,
            "data": self.contract.encode_abi("open", args=open_args),
            "value": str(escrow.amount if token == NATIVE else 0),
            "from": escrow.seller_address,
            "chainId": self.deployment.chain_id,
        }
        steps: list[dict[str, Any]] = []
        if token != NATIVE:
            erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=_ERC20_ABI)
            steps.append(
                {
                    "step": "approve",
                    "to": to_checksum_address(token),
                    "data": erc20.encode_abi(
                        "approve", args=[self.deployment.escrow_address, escrow.amount]
                    ),
                    "value": "0",
                    "from": escrow.seller_address,
                    "chainId": self.deployment.chain_id,
                }
            )
        steps.append({"step": "open", **open_tx})
        return {
            "chain": "evm",
            "chain_id": self.deployment.chain_id,
            "contract": self.deployment.escrow_address,
            "escrow_id": escrow.escrow_key,
            "ref": escrow.ref,
            "token": token,
            "amount": str(escrow.amount),
            "payment_window_s": escrow.payment_window_s,
            "deadline": escrow.deadline,
            "transactions": steps,
            "note": "send these from the seller's own wallet, in order; the trade shows "
            "funded after the configured confirmations",
        }

    # -- reading the escrow --------------------------------------------------

    def _onchain(self, escrow_key: str) -> tuple[Any, ...]:
        try:
            return tuple(self.contract.functions.escrows(bytes.fromhex(escrow_key[2:])).call())
        except Exception as exc:  # noqa: BLE001 - any RPC failure is a chain error
            raise ChainError(f"cannot read escrow {escrow_key}: {exc}") from exc

    def escrow_view(self, escrow: P2PEscrow) -> EscrowView:
        (
            seller,
            buyer,
            arbitrator,
            token,
            amount,
            fee_bps,
            _fr,
            state,
            _funded_at,
            payment_deadline,
            deadline,
            _nonce,
        ) = self._onchain(escrow.escrow_key)
        return EscrowView(
            state=ChainState(int(state)),
            seller=seller,
            buyer=buyer,
            arbitrator=arbitrator,
            token=token,
            amount=int(amount),
            fee_bps=int(fee_bps),
            payment_deadline=int(payment_deadline) or None,
            deadline=int(deadline) or None,
        )

    def nonce(self, escrow_key: str) -> int:
        return int(self._onchain(escrow_key)[11])

    def chain_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    # -- actions -------------------------------------------------------------

    def sign_request(self, escrow: P2PEscrow, action: Action, *, buyer_bps: int = 0) -> SignRequest:
        nonce = self.nonce(escrow.escrow_key)
        expiry = self.chain_time() + ACTION_EXPIRY_S
        typed = action_typed_data(
            chain_id=self.deployment.chain_id,
            contract=self.deployment.escrow_address,
            escrow_key=escrow.escrow_key,
            action=action,
            buyer_bps=buyer_bps,
            nonce=nonce,
            expiry=expiry,
        )
        return SignRequest(
            action=action,
            payload=typed,
            digest=typed_data_digest(typed),
            expiry=expiry,
            nonce=nonce,
        )

    def _call_for(
        self,
        escrow: P2PEscrow,
        action: Action,
        buyer_bps: int,
        expiry: int,
        signatures: list[str],
    ) -> dict[str, Any]:
        sigs = [_sig_bytes(s) for s in signatures]
        id_bytes = bytes.fromhex(escrow.escrow_key[2:])
        if action is Action.SETTLE:
            if len(sigs) != 2:
                raise ValidationError(
                    "a settlement needs the buyer's and the seller's signatures",
                    field="signatures",
                )
            data = self.contract.encode_abi(
                "settle", args=[id_bytes, buyer_bps, expiry, sigs[0], sigs[1]]
            )
        else:
            if len(sigs) != 1:
                raise ValidationError("exactly one signature is needed", field="signatures")
            data = self.contract.encode_abi(
                "execute", args=[id_bytes, int(action), buyer_bps, expiry, sigs[0]]
            )
        return {"to": self.deployment.escrow_address, "data": data}

    def _simulate(self, call: dict[str, Any]) -> None:
        try:
            self.w3.eth.call({"to": call["to"], "data": call["data"]})
        except Exception as exc:  # noqa: BLE001 - contract reverts come in many shapes
            reason = str(exc)
            raise ValidationError(
                f"the chain refuses this instruction: {reason}",
                code="instruction_reverts",
                reason=reason,
            ) from None

    def submit_signed(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        action: Action,
        buyer_bps: int,
        expiry: int,
        signatures: list[str],
        requested_by: User,  # noqa: ARG002 - recorded by the caller's audit trail
    ) -> Submitted:
        call = self._call_for(escrow, action, buyer_bps, expiry, signatures)
        instruction_hash = "0x" + keccak(text=call["data"]).hex()
        existing = (
            session.query(RelayJob).filter_by(instruction_hash=instruction_hash).one_or_none()
        )
        if existing is not None:
            return Submitted(kind="relay_job", ref=str(existing.id), status=existing.status)
        self._simulate(call)
        job = RelayJob(
            chain=self.chain_key,
            escrow_key=escrow.escrow_key,
            action=action.name.lower(),
            instruction_hash=instruction_hash,
            instruction=call,
            status="queued",
        )
        session.add(job)
        session.flush()
        return Submitted(kind="relay_job", ref=str(job.id), status=job.status)

    def agent_rule(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        buyer_bps: int,
        requested_by: User,
    ) -> Submitted:
        if escrow.arbitrator_address.lower() != self.agent_address.lower():
            raise ValidationError(
                "this escrow's arbitrator is a person's wallet: they sign the ruling "
                "themselves and submit the signature",
                code="not_agent_arbitrated",
            )
        request = self.sign_request(escrow, Action.RESOLVE, buyer_bps=buyer_bps)
        decision = decision_of(Action.RESOLVE, buyer_bps)
        entry = sign_once(
            self.sessions,
            chain=self.chain_key,
            escrow_key=escrow.escrow_key,
            decision=decision,
            payload_hash=request.digest,
            sign=lambda: sign_typed_data(self._agent.key, request.payload),
        )
        return self.submit_signed(
            session,
            escrow=escrow,
            action=Action.RESOLVE,
            buyer_bps=buyer_bps,
            expiry=request.expiry,
            signatures=[entry.signature],
            requested_by=requested_by,
        )


def _sig_bytes(sig: str) -> bytes:
    try:
        raw = bytes.fromhex(sig.removeprefix("0x"))
    except (ValueError, AttributeError):
        raise ValidationError("a signature is 65 bytes of hex", field="signatures") from None
    if len(raw) != 65:
        raise ValidationError("a signature is 65 bytes of hex", field="signatures")
    return raw


_ERC20_ABI = [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "spender", "type": "address"},
            {"name": "amount", "type": "uint256"},
        ],
        "outputs": [{"name": "", "type": "bool"}],
    }
]
