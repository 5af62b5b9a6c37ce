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
from eth_utils import is_address, keccak, to_checksum_address
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from node.chain_trades import SignRequest, Submitted
from node.chains.evm.artifacts import load as load_artifact
from node.db.models import CryptoCurrency, P2PEscrow, P2POrder, RelayJob, User
from node.domain.escrow import Action, ChainState, EscrowView, decision_of
from node.errors import ChainError, ValidationError
from node.signing import sign_once
from wallets.evm.eip712 import TypedData, action_typed_data, open_typed_data
from wallets.evm.signer import SoftwareSigner

NATIVE = "0x0000000000000000000000000000000000000000"
ACTION_EXPIRY_S = 3600

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


def sign_typed_data(key: str, payload: dict[str, Any]) -> str:
    """A 65-byte r||s||v signature (hex) over an EIP-712 payload: what a
    party's wallet does (used by the demo and tests to play the parties)."""
    return "0x" + SoftwareSigner(key).sign_typed_data(TypedData(payload)).hex()


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
        relayer: Any = None,
    ) -> None:
        self.deployment = deployment
        # node.relayer.EvmRelayer, or None on an API-only node that does not relay
        self.relayer = relayer
        self.sessions = sessions
        self.network = str(deployment.chain_id)
        self.chain_key = f"evm:{deployment.chain_id}"
        self._agent = SoftwareSigner(agent_key)
        self.payment_window_s = payment_window_s
        self.release_window_s = release_window_s
        self.w3 = Web3(Web3.HTTPProvider(deployment.rpc_url, request_kwargs={"timeout": 10}))
        self.contract = self.w3.eth.contract(
            address=to_checksum_address(deployment.escrow_address),
            abi=load_artifact("Escrow").abi,
        )

    @property
    def agent_address(self) -> str:
        return self._agent.address

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
        out = {
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
        if token != NATIVE:
            out["relayed"] = self._relayed_funding(escrow, token)
        return out

    def _relayed_funding(self, escrow: P2PEscrow, token: str) -> dict[str, Any]:
        """Gasless funding: the seller signs ``Open`` (and an EIP-2612
        ``Permit`` where the token has one) in their wallet; the node submits
        ``open_relayed`` and pays the gas. The coins still come only from the
        seller's own address."""
        expiry = self.chain_time() + ACTION_EXPIRY_S
        open_typed = open_typed_data(
            chain_id=self.deployment.chain_id,
            contract=self.deployment.escrow_address,
            seller=escrow.seller_address,
            ref=escrow.ref,
            buyer=escrow.buyer_address,
            arbitrator=escrow.arbitrator_address,
            token=token,
            amount=escrow.amount,
            payment_window=escrow.payment_window_s,
            deadline=escrow.deadline,
            expiry=expiry,
        )
        return {
            "open": open_typed.payload,
            "expiry": expiry,
            "permit": self._permit_typed_data(token, escrow.seller_address, escrow.amount, expiry),
            "submit": "POST /api/p2p-crypto/orders/{id}/fund with open_signature, expiry and "
            "permit_signature (omit it if the seller approved the contract already)",
        }

    def _permit_typed_data(
        self, token: str, owner: str, value: int, deadline: int
    ) -> dict[str, Any] | None:
        """The token's EIP-2612 Permit for the escrow contract, or None when
        the token has no permit (then the seller approves once instead)."""
        erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=_ERC20_ABI)
        try:
            nonce = int(erc20.functions.nonces(owner).call())
        except Exception:  # noqa: BLE001 - no nonces(): no EIP-2612
            return None
        try:  # ERC-5267 says the domain exactly
            _f, name, version, *_ = erc20.functions.eip712Domain().call()
        except Exception:  # noqa: BLE001 - older permit tokens
            name, version = erc20.functions.name().call(), "1"
        return {
            "types": {"EIP712Domain": _DOMAIN_TYPE, "Permit": _PERMIT_TYPE},
            "primaryType": "Permit",
            "domain": {
                "name": name,
                "version": version,
                "chainId": self.deployment.chain_id,
                "verifyingContract": to_checksum_address(token),
            },
            "message": {
                "owner": owner,
                "spender": self.deployment.escrow_address,
                "value": str(value),
                "nonce": str(nonce),
                "deadline": str(deadline),
            },
        }

    def submit_funding(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        currency: CryptoCurrency,
        open_signature: str,
        expiry: int,
        permit_signature: str | None,
    ) -> Submitted:
        """Queue ``open_relayed`` with the seller's signatures (simulated first:
        a wrong signature or a short allowance is a 409 with the reason)."""
        from node.relayer import open_relayed_instruction

        if currency.contract_address is None:
            raise ValidationError(
                "the native coin is funded by the seller's own transaction (open with value)",
                code="relayed_funding_unsupported",
            )
        if self.relayer is None:
            raise ValidationError("this node does not relay", code="relay_disabled")
        v, r, s_ = 0, b"\0" * 32, b"\0" * 32
        if permit_signature is not None:
            raw = _sig_bytes(permit_signature)
            r, s_, v = raw[:32], raw[32:64], raw[64]
        instruction = open_relayed_instruction(
            seller=escrow.seller_address,
            ref=escrow.ref,
            buyer=escrow.buyer_address,
            arbitrator=escrow.arbitrator_address,
            token=currency.contract_address,
            amount=escrow.amount,
            payment_window=escrow.payment_window_s,
            deadline=escrow.deadline,
            expiry=expiry,
            open_sig=_sig_bytes(open_signature),
            permit_deadline=expiry if permit_signature is not None else 0,
            v=v,
            r=r,
            s=s_,
        )
        result = self.relayer.enqueue(session, instruction)
        job = session.get(RelayJob, result.job_id)
        return Submitted(
            kind="relay_job", ref=str(result.job_id), status=job.status if job else "queued"
        )

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
            escrow_id=escrow.escrow_key,
            action=int(action),
            buyer_bps=buyer_bps,
            nonce=nonce,
            expiry=expiry,
        )
        return SignRequest(
            action=action,
            payload=typed.payload,
            digest=typed.digest_hex,
            expiry=expiry,
            nonce=nonce,
        )

    def _instruction(
        self,
        escrow: P2PEscrow,
        action: Action,
        buyer_bps: int,
        expiry: int,
        signatures: list[str],
    ) -> dict[str, Any]:
        from node.relayer import execute_instruction, settle_instruction

        sigs = [_sig_bytes(s) for s in signatures]
        if action is Action.SETTLE:
            if len(sigs) != 2:
                raise ValidationError(
                    "a settlement needs the buyer's and the seller's signatures",
                    field="signatures",
                )
            return settle_instruction(
                escrow_id=escrow.escrow_key,
                buyer_bps=buyer_bps,
                expiry=expiry,
                buyer_sig=sigs[0],
                seller_sig=sigs[1],
            )
        if len(sigs) != 1:
            raise ValidationError("exactly one signature is needed", field="signatures")
        return execute_instruction(
            escrow_id=escrow.escrow_key,
            action=int(action),
            buyer_bps=buyer_bps,
            expiry=expiry,
            signature=sigs[0],
        )

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
        """Queue the signed instruction for the relayer, after an ``eth_call``
        shows it would succeed (else a 409 with the contract's revert reason).
        The same instruction twice is the same job."""
        if self.relayer is None:
            raise ValidationError(
                "this node does not relay: send the call to the contract yourself",
                code="relay_disabled",
            )
        result = self.relayer.enqueue(
            session, self._instruction(escrow, action, buyer_bps, expiry, signatures)
        )
        job = session.get(RelayJob, result.job_id)
        status = job.status if job is not None else "queued"
        return Submitted(kind="relay_job", ref=str(result.job_id), status=status)

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
            sign=lambda: "0x" + self._agent.sign_typed_data(TypedData(request.payload)).hex(),
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


_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_PERMIT_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

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
    },
    {
        "type": "function",
        "name": "nonces",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "name",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "eip712Domain",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [
            {"name": "fields", "type": "bytes1"},
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
            {"name": "salt", "type": "bytes32"},
            {"name": "extensions", "type": "uint256[]"},
        ],
    },
]
