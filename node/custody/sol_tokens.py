"""Solana SPL custody moves: deposit token accounts swept into the hot
wallet's associated token account, its excess above the ceiling to the cold
address's, and token withdrawals from it.

The hot wallet pays the fees (the deposit wallets hold no SOL to spend), and
the rent of any associated token account it creates on the way (its own, or
a payee's): both are booked as ``expense:network-fees`` in SOL, so the hot
wallet's SOL in the ledger stays what the chain shows. Settlement is the same
as for SOL (``node.custody.sol_moves``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from node.custody.addresses import currency
from node.custody.sol_moves import broadcast_sweep, sweep_sources
from node.db.models_custody import CustodyObservation, CustodySweep
from wallets.custody_keys import sol_token_account

if TYPE_CHECKING:
    from node.custody.service import CustodyService

log = logging.getLogger("escrowd.custody.sol")

TOKEN_ACCOUNT_LEN = 165


def _processed() -> Any:
    from solana.rpc.commitment import Commitment

    return Commitment("processed")


def token_transfer(
    svc: CustodyService,
    *,
    owner_path: str,
    owner: str,
    mint: str,
    decimals: int,
    dest_owner: str,
    amount: int,
) -> tuple[bytes, str, int]:
    """(raw, signature, cost): a ``TransferChecked`` of ``amount`` from the
    owner's associated token account to ``dest_owner``'s (created if needed),
    fees and rent paid by the hot wallet; ``cost`` = fee + rent paid."""
    from solana.rpc.commitment import Commitment
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.transaction import VersionedTransaction
    from spl.token.constants import TOKEN_PROGRAM_ID
    from spl.token.instructions import create_idempotent_associated_token_account, transfer_checked
    from spl.token.models import TransferCheckedParams

    client = svc.sol_watcher.client
    hot = svc.keys.sol_hot()
    mint_key, dest = Pubkey.from_string(mint), sol_token_account(dest_owner, mint)
    _slot, [existing] = client.accounts([Pubkey.from_string(dest)], _processed())
    rent = client.rent_exemption(TOKEN_ACCOUNT_LEN) if existing is None else 0
    ixs = [
        create_idempotent_associated_token_account(
            Pubkey.from_string(hot.address), Pubkey.from_string(dest_owner), mint_key
        ),
        transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                source=Pubkey.from_string(sol_token_account(owner, mint)),
                mint=mint_key,
                dest=Pubkey.from_string(dest),
                owner=Pubkey.from_string(owner),
                amount=amount,
                decimals=decimals,
            )
        ),
    ]
    blockhash, _valid = client.latest_blockhash(Commitment("confirmed"))
    msg = Message.new_with_blockhash(ixs, Pubkey.from_string(hot.address), blockhash)
    fee = int(client.call(lambda c: c.get_fee_for_message(msg)).value or 10_000)
    raw = svc.keys.sol_sign([hot.path, owner_path], msg)
    return raw, str(VersionedTransaction.from_bytes(raw).signatures[0]), fee + rent


def _hot_lamports(svc: CustodyService) -> int:
    from solana.rpc.commitment import Commitment
    from solders.pubkey import Pubkey

    _slot, [st] = svc.sol_watcher.client.accounts(
        [Pubkey.from_string(svc.keys.sol_hot().address)], Commitment("confirmed")
    )
    return 0 if st is None else int(st.lamports)


def sweep_tokens(svc: CustodyService) -> list[str]:
    """Each deposit wallet's credited SPL balance -> the hot wallet's token
    account; at most one sweep that may create the hot token account per pass."""

    w = svc.sol_watcher
    hot = svc.keys.sol_hot()
    with svc.sessions() as s:
        busy, wallets = sweep_sources(s)
        credited = {
            (o.account, o.asset): o.credited
            for o in s.scalars(
                select(CustodyObservation).where(CustodyObservation.chain == w.chain)
            )
        }
        decimals = {sym: currency(s, sym).decimals for sym in w.tokens}
    todo = []
    for symbol, mint in sorted(w.tokens.items()):
        for owner, path in wallets.items():
            ata = sol_token_account(owner, mint)
            if ata not in busy and credited.get((ata, symbol), 0) > 0:
                todo.append((symbol, mint, owner, path, ata))
    if not todo:
        return []
    from node.custody.sol_watch import Watched

    _slot, onchain = w.read([Watched(ata, sym, 0, mint) for sym, mint, _o, _p, ata in todo])
    done: list[str] = []
    for symbol, mint, owner, path, ata in todo:
        amount = min(onchain[(ata, symbol)], credited[(ata, symbol)])
        if amount < svc.settings.custody.min_sweep.get(symbol, 1):
            continue
        with svc.hot_lock:
            raw, sig, cost = token_transfer(
                svc,
                owner_path=path,
                owner=owner,
                mint=mint,
                decimals=decimals[symbol],
                dest_owner=hot.address,
                amount=amount,
            )
            if _hot_lamports(svc) < cost + svc.sol_watcher.client.rent_exemption(0):
                log.warning("the hot wallet cannot pay the fee to sweep %s from %s", symbol, ata)
                continue
            refused = broadcast_sweep(
                svc, raw, sig, kind="to_hot", asset=symbol, from_address=ata,
                to_address=sol_token_account(hot.address, mint), amount=amount, fee=cost)
        if refused:
            log.warning("sol token sweep from %s refused: %s", ata, refused)
        done.append(f"to_hot:{sig}")
    return done


def tokens_to_cold(svc: CustodyService) -> list[str]:
    """The hot wallet's SPL balance above ``custody.hot_ceiling[symbol]`` (read
    at the commitment) -> ``custody.cold_address[symbol]``'s token account."""
    from node.custody.sol_watch import Watched

    w = svc.sol_watcher
    hot = svc.keys.sol_hot()
    done: list[str] = []
    for symbol, mint in sorted(w.tokens.items()):
        ceiling = svc.settings.custody.hot_ceiling.get(symbol)
        cold = svc.settings.custody.cold_address.get(symbol)
        if ceiling is None or not cold:
            continue
        hot_ata = sol_token_account(hot.address, mint)
        with svc.sessions() as s:
            if s.scalar(
                select(CustodySweep.id)
                .where(
                    CustodySweep.chain == "sol",
                    CustodySweep.from_address == hot_ata,
                    CustodySweep.status == "broadcast",
                )
                .limit(1)
            ):
                continue
            decimals = currency(s, symbol).decimals
        _slot, have = w.read([Watched(hot_ata, symbol, 0, mint)])
        excess = have[(hot_ata, symbol)] - ceiling
        if excess <= 0:
            continue
        with svc.hot_lock:
            raw, sig, cost = token_transfer(
                svc,
                owner_path=hot.path,
                owner=hot.address,
                mint=mint,
                decimals=decimals,
                dest_owner=cold,
                amount=excess,
            )
            if _hot_lamports(svc) < cost + svc.sol_watcher.client.rent_exemption(0):
                log.warning("the hot wallet cannot pay the fee to move %s to cold", symbol)
                continue
            refused = broadcast_sweep(
                svc, raw, sig, kind="to_cold", asset=symbol, from_address=hot_ata,
                to_address=sol_token_account(cold, mint), amount=excess, fee=cost)
        if refused:
            log.warning("sol token sweep to cold refused: %s", refused)
        done.append(f"to_cold:{sig}")
    return done
