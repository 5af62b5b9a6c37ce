"""Deposit addresses: one per user per chain, derived from the custody seed
(index = the user's id, see wallets.custody_keys) and stored once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from node.custody.errors import UnsupportedAssetError
from node.db.models import CryptoCurrency, utcnow
from node.db.models_custody import CustodyAddress
from wallets.bitcoin.network import BitcoinNetwork
from wallets.custody_keys import CustodyKeys, DerivedAddress, sol_token_account

CHAINS = ("btc", "evm", "sol")


def derive(
    keys: CustodyKeys, chain: str, user_id: int, btc_network: BitcoinNetwork
) -> DerivedAddress:
    if chain == "btc":
        return keys.btc_deposit(btc_network, user_id)
    if chain == "evm":
        return keys.evm_deposit(user_id)
    if chain == "sol":
        return keys.sol_deposit(user_id)
    raise UnsupportedAssetError(f"unknown chain {chain!r}", field="chain")


def allocate(
    session: Session, keys: CustodyKeys, *, user_id: int, chain: str, btc_network: BitcoinNetwork
) -> CustodyAddress:
    """The user's deposit address on ``chain``, created on first use (two
    concurrent first calls store one row: the derivation is deterministic)."""
    found = get(session, user_id=user_id, chain=chain)
    if found is not None:
        return found
    d = derive(keys, chain, user_id, btc_network)
    row = {
        "user_id": user_id,
        "chain": chain,
        "address": d.address,
        "script_hex": d.script_hex,
        "path": d.path,
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(ins(CustodyAddress).values(**row).on_conflict_do_nothing())
    got = get(session, user_id=user_id, chain=chain)
    assert got is not None
    return got


def get(session: Session, *, user_id: int, chain: str) -> CustodyAddress | None:
    return session.scalar(
        select(CustodyAddress).where(
            CustodyAddress.user_id == user_id, CustodyAddress.chain == chain
        )
    )


def list_for_user(session: Session, user_id: int) -> list[CustodyAddress]:
    return list(
        session.scalars(
            select(CustodyAddress)
            .where(CustodyAddress.user_id == user_id)
            .order_by(CustodyAddress.chain)
        )
    )


def currency(session: Session, asset: str) -> CryptoCurrency:
    """The active currency with symbol ``asset`` (the ledger's asset names)."""
    cur = session.scalars(
        select(CryptoCurrency)
        .where(CryptoCurrency.symbol == asset, CryptoCurrency.is_active.is_(True))
        .order_by(CryptoCurrency.id)
    ).first()
    if cur is None:
        raise UnsupportedAssetError(f"no currency {asset!r} is listed", field="asset", asset=asset)
    return cur


def token_account(address: CustodyAddress, cur: CryptoCurrency) -> str | None:
    """Solana SPL: the associated token account of the deposit wallet for the mint."""
    if address.chain == "sol" and cur.contract_address:
        return sol_token_account(address.address, cur.contract_address)
    return None
