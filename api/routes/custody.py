"""Custody: balances, deposit addresses, withdrawals and their allow-list,
reconciliation (admins). Amounts are base-unit integers sent as strings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from api.deps import AdminDep, RowId, SessionDep, UserDep
from api.schemas import Strict, _base_units
from node.custody import addresses as addr_mod
from node.custody import withdrawals as wd
from node.custody.ledger import user_balances
from node.custody.reconcile import ledger_soundness, reconcile
from node.custody.service import CustodyService, service_for
from node.db.models import utcnow
from node.db.models_custody import CustodyAddress, CustodyDeposit, CustodyWithdrawal
from node.errors import NotFoundError, ValidationError

router = APIRouter(prefix="/api/p2p-crypto", tags=["custody"])


def _svc(request: Request) -> CustodyService:
    return service_for(request.app.state.sessions)


# --- schemas ------------------------------------------------------------------


class BalancePublic(BaseModel):
    asset: str
    available: str
    held: str
    debt: str  # <= 0: what a reorg took back after the funds were spent


class DepositAddressCreate(Strict):
    chain: str | None = Field(None, max_length=16, description="btc | evm | sol")
    asset: str | None = Field(None, max_length=16, description="or the currency symbol")


class DepositAddressPublic(BaseModel):
    id: int
    chain: str
    address: str
    path: str
    # Solana: the associated token account per listed SPL mint (symbol -> address)
    token_accounts: dict[str, str] = Field(default_factory=dict)


class AllowedAddressCreate(Strict):
    chain: str = Field(max_length=16)
    address: str = Field(min_length=1, max_length=128)
    label: str | None = Field(None, max_length=64)


class AllowedAddressPublic(BaseModel):
    id: int
    chain: str
    address: str
    label: str | None
    usable_from: datetime


class WithdrawalCreate(Strict):
    asset: str = Field(min_length=1, max_length=16)
    address: str = Field(min_length=1, max_length=128)
    amount: int | str
    totp_code: str = Field(min_length=1, max_length=64)
    request_key: str | None = Field(None, min_length=1, max_length=100)

    @field_validator("amount")
    @classmethod
    def _amount(cls, v: Any) -> int:
        return _base_units(v)


class WithdrawalPublic(BaseModel):
    id: int
    asset: str
    chain: str
    address: str
    amount: str
    network_fee: str | None
    status: str
    txid: str | None
    error: str | None
    request_key: str
    created_at: datetime


def _address_out(session: Any, row: CustodyAddress) -> DepositAddressPublic:
    out = DepositAddressPublic(id=row.id, chain=row.chain, address=row.address, path=row.path)
    if row.chain == "sol":
        from node.db.models import CryptoCurrency

        for cur in session.scalars(
            select(CryptoCurrency).where(
                CryptoCurrency.chain == "sol", CryptoCurrency.contract_address.is_not(None)
            )
        ):
            ata = addr_mod.token_account(row, cur)
            if ata:
                out.token_accounts[cur.symbol] = ata
    return out


def _withdrawal_out(w: CustodyWithdrawal) -> WithdrawalPublic:
    return WithdrawalPublic(
        id=w.id,
        asset=w.asset,
        chain=w.chain,
        address=w.address,
        amount=str(w.amount),
        network_fee=None if w.network_fee is None else str(w.network_fee),
        status=w.status,
        txid=w.txid,
        error=w.error,
        request_key=w.request_key,
        created_at=w.created_at,
    )


# --- balances and deposit addresses --------------------------------------------


@router.get("/balances", response_model=list[BalancePublic])
def get_balances(session: SessionDep, user: UserDep) -> list[BalancePublic]:
    return [
        BalancePublic(
            asset=a, available=str(b["available"]), held=str(b["held"]), debt=str(b["debt"])
        )
        for a, b in sorted(user_balances(session, user.id).items())
    ]


@router.get("/deposit-addresses", response_model=list[DepositAddressPublic])
def list_deposit_addresses(session: SessionDep, user: UserDep) -> list[DepositAddressPublic]:
    return [_address_out(session, r) for r in addr_mod.list_for_user(session, user.id)]


@router.post("/deposit-addresses", response_model=DepositAddressPublic, status_code=201)
def create_deposit_address(
    body: DepositAddressCreate, request: Request, session: SessionDep, user: UserDep
) -> DepositAddressPublic:
    svc = _svc(request)
    if (body.chain is None) == (body.asset is None):
        raise ValidationError("give either chain or asset", field="chain")
    chain = (
        body.chain if body.chain is not None else addr_mod.currency(session, str(body.asset)).chain
    )
    if chain not in svc.chains:
        raise ValidationError(
            f"deposits on {chain!r} are not enabled on this node",
            code="chain_not_enabled",
            field="chain",
        )
    row = addr_mod.allocate(
        session, svc.keys, user_id=user.id, chain=chain, btc_network=svc.btc_network
    )
    return _address_out(session, row)


class DepositPublic(BaseModel):
    id: int
    asset: str
    address: str
    txid: str
    output: int
    amount: str
    block_number: int
    status: str  # credited | reversed
    created_at: datetime


@router.get("/deposits", response_model=list[DepositPublic])
def list_deposits(session: SessionDep, user: UserDep) -> list[DepositPublic]:
    """The caller's Bitcoin and EVM deposits as credited (or reversed by a
    reorg); Solana deposits show in the balances only."""
    rows = session.scalars(
        select(CustodyDeposit)
        .where(CustodyDeposit.user_id == user.id)
        .order_by(CustodyDeposit.id.desc())
        .limit(200)
    )
    return [
        DepositPublic(
            id=d.id,
            asset=d.asset,
            address=d.address,
            txid=d.txid,
            output=d.output,
            amount=str(d.amount),
            block_number=d.block_number,
            status=d.status,
            created_at=d.created_at,
        )
        for d in rows
    ]


# --- withdrawal allow-list -----------------------------------------------------


@router.get("/withdrawal-addresses", response_model=list[AllowedAddressPublic])
def list_allowed(session: SessionDep, user: UserDep) -> list[AllowedAddressPublic]:
    return [
        AllowedAddressPublic.model_validate(r, from_attributes=True)
        for r in wd.list_allowed(session, user.id)
    ]


@router.post("/withdrawal-addresses", response_model=AllowedAddressPublic, status_code=201)
def add_allowed(
    body: AllowedAddressCreate, request: Request, session: SessionDep, user: UserDep
) -> AllowedAddressPublic:
    svc = _svc(request)
    row = wd.add_allowed(
        session,
        user_id=user.id,
        chain=body.chain,
        address=body.address,
        label=body.label,
        now=utcnow(),
        delay_s=svc.settings.custody.new_address_delay_s,
        btc_network=svc.btc_network,
    )
    return AllowedAddressPublic.model_validate(row, from_attributes=True)


@router.delete("/withdrawal-addresses/{entry_id}", status_code=204)
def remove_allowed(entry_id: RowId, session: SessionDep, user: UserDep) -> Response:
    wd.remove_allowed(session, user_id=user.id, entry_id=entry_id)
    return Response(status_code=204)


# --- withdrawals -----------------------------------------------------------------


@router.get("/withdrawals", response_model=list[WithdrawalPublic])
def list_withdrawals(session: SessionDep, user: UserDep) -> list[WithdrawalPublic]:
    rows = session.scalars(
        select(CustodyWithdrawal)
        .where(CustodyWithdrawal.user_id == user.id)
        .order_by(CustodyWithdrawal.id.desc())
        .limit(200)
    )
    return [_withdrawal_out(w) for w in rows]


@router.get("/withdrawals/{withdrawal_id}", response_model=WithdrawalPublic)
def get_withdrawal(withdrawal_id: RowId, session: SessionDep, user: UserDep) -> WithdrawalPublic:
    w = session.get(CustodyWithdrawal, withdrawal_id)
    if w is None or w.user_id != user.id:
        raise NotFoundError("no such withdrawal", code="withdrawal_not_found")
    return _withdrawal_out(w)


@router.post("/withdrawals", response_model=WithdrawalPublic, status_code=201)
def create_withdrawal(
    body: WithdrawalCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    user: UserDep,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> WithdrawalPublic:
    """Under the policy: TOTP code, allow-listed address past its delay, daily
    limits. Idempotent on ``request_key`` (or the Idempotency-Key header):
    the same request again returns the first withdrawal (200)."""
    svc = _svc(request)
    key = body.request_key or idempotency_key
    if not key:
        raise ValidationError(
            "request_key (or an Idempotency-Key header) is required", field="request_key"
        )
    assert isinstance(body.amount, int)
    row, created = wd.request_withdrawal(
        session,
        cfg=svc.settings.custody,
        supported_chains=svc.withdrawal_chains(),
        btc_network=svc.btc_network,
        user_id=user.id,
        asset=body.asset,
        address=body.address,
        amount=body.amount,
        totp_code=body.totp_code,
        request_key=key,
        internal_addresses=svc.hot_addresses(),
        unsupported_assets=svc.unsupported_withdrawal_assets(),
    )
    if not created:
        response.status_code = 200
    return _withdrawal_out(row)


@router.post("/withdrawals/{withdrawal_id}/cancel", response_model=WithdrawalPublic)
def cancel_withdrawal(withdrawal_id: RowId, session: SessionDep, user: UserDep) -> WithdrawalPublic:
    """Cancel a withdrawal the node has not signed yet; its funds are released."""
    return _withdrawal_out(
        wd.cancel_withdrawal(session, user_id=user.id, withdrawal_id=withdrawal_id)
    )


# --- admin -----------------------------------------------------------------------


@router.get("/admin/reconciliation")
def get_reconciliation(request: Request, session: SessionDep, _admin: AdminDep) -> dict[str, Any]:
    """The ledger's holdings per asset against the chain (see node.custody.reconcile)."""
    svc = _svc(request)
    lines = reconcile(svc, session)
    unsound = ledger_soundness(session)
    return {
        "ok": all(line.ok for line in lines) and not unsound,
        "lines": [line.to_dict() for line in lines],
        "ledger_mismatches": unsound,
    }
