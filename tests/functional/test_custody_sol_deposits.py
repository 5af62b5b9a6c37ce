"""Solana custody on the local chain (slots advance only when told): SOL
paid to a user's derived deposit wallet and SPL tokens minted to its
associated token account are credited only once finalized, in one batched
read of all deposit accounts; SOL and tokens are swept into the hot wallet
(booked when finalized, and not mistaken for a rollback), its SOL excess goes
to cold, and both are withdrawn from there under the policy; the ledger
reconciles with the chain throughout."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_associated_token_account, mint_to
from spl.token.models import MintToParams

from node.accounts.totp import enable_totp, setup_totp
from node.config import load_settings
from node.custody.ledger import NODE_COLD, NODE_HOT, balance, check_balances
from node.custody.reconcile import reconcile
from node.db.models import utcnow
from node.db.session import transaction
from node.runtime import build_node
from tests.api.custody_fixtures import *  # noqa: F403
from tests.api.custody_fixtures import CustodyNode
from tests.functional.solana_fixtures import *  # noqa: F403
from tests.functional.solana_fixtures import airdrop, create_mint, send
from wallets.custody_keys import sol_token_account

P = "/api/p2p-crypto"


def test_sol_and_spl_deposits_credited_when_finalized(
    solana_manual_chain: SolanaLocal, pg_url: str, tmp_path: Path, seed_file: Path
) -> None:
    chain = solana_manual_chain
    payer = Keypair()

    async def make_mint() -> Pubkey:
        async with AsyncClient(chain.url) as c:
            await airdrop(c, payer.pubkey(), 2 * LAMPORTS_PER_SOL)
            return await create_mint(c, payer, 6)

    mint = asyncio.run(make_mint())
    cold = str(Keypair().pubkey())  # an address only: the node has no key for it
    chain.warp_slots(2)
    settings = load_settings(
        mode="production",
        data_dir=tmp_path,
        database_url=pg_url,
        auth={"jwt_secret": "test-jwt-secret-" + "x" * 32},
        evm={"enabled": False},
        btc={"enabled": False},
        sol={
            "enabled": True,
            "rpc_url": chain.url,
            "agent_key": str(Keypair()),
            "fee_payer_key": str(Keypair()),
            "tokens": [{"symbol": "TUSDC", "name": "Test USDC", "mint": str(mint), "decimals": 6}],
        },
        custody={
            "seed_file": str(seed_file),
            "new_address_delay_s": 0,
            "hot_ceiling": {"SOL": LAMPORTS_PER_SOL // 2, "TUSDC": 4_000_000},
            "cold_address": {"SOL": cold, "TUSDC": cold},
        },
    )
    cn = CustodyNode(build_node(settings))
    client = TestClient(cn.node.app(), raise_server_exceptions=False)
    try:
        cn.add_users("sally")
        auth = {"Authorization": f"Bearer {cn.tokens['sally']}"}
        r = client.post(f"{P}/deposit-addresses", headers=auth, json={"asset": "TUSDC"})
        assert r.status_code == 201, r.text
        wallet, ata = r.json()["address"], r.json()["token_accounts"]["TUSDC"]
        assert r.json()["path"] == f"m/44'/501'/{cn.users['sally']}'/0'"

        async def pay() -> None:
            async with AsyncClient(chain.url) as c:
                await airdrop(c, Pubkey.from_string(wallet), LAMPORTS_PER_SOL)
                await send(
                    c,
                    [
                        create_associated_token_account(
                            payer.pubkey(), Pubkey.from_string(wallet), mint
                        ),
                        mint_to(
                            MintToParams(
                                program_id=TOKEN_PROGRAM_ID,
                                mint=mint,
                                dest=Pubkey.from_string(ata),
                                mint_authority=payer.pubkey(),
                                amount=5_000_000,
                            )
                        ),
                    ],
                    payer,
                )

        asyncio.run(pay())
        cn.sync()
        assert client.get(f"{P}/balances", headers=auth).json() == []  # processed only
        chain.warp_slots(1)
        cn.sync()
        assert client.get(f"{P}/balances", headers=auth).json() == []  # confirmed only
        chain.warp_slots(1)
        assert len(cn.sync_changes()) == 2
        body = {
            b["asset"]: b["available"] for b in client.get(f"{P}/balances", headers=auth).json()
        }
        assert body == {"SOL": str(LAMPORTS_PER_SOL), "TUSDC": "5000000"}
        assert cn.sync_changes() == []  # nothing new
        with cn.node.sessions() as s:
            lines = {x.asset: x for x in reconcile(cn.svc, s) if x.scope != "cold"}
            assert check_balances(s) == []
        assert lines["SOL"].ok and lines["SOL"].ledger == LAMPORTS_PER_SOL
        assert lines["TUSDC"].ok and lines["TUSDC"].on_chain == 5_000_000

        # the SOL goes to the hot wallet; booked once finalized
        assert [x.split(":")[0] for x in cn.svc.run_sweeps()] == ["to_hot"]
        assert cn.svc.run_sweeps() == []  # one sweep in flight per wallet
        chain.warp_slots(2)
        assert cn.sync_changes() == []  # the sweep is not a rollback
        with cn.node.sessions() as s:
            hot_held = -balance(s, NODE_HOT, "SOL")
            assert LAMPORTS_PER_SOL - 10_000 <= hot_held < LAMPORTS_PER_SOL
            assert all(line.ok for line in reconcile(cn.svc, s))
            assert check_balances(s) == []

        # now that the hot wallet has SOL for fees, the tokens follow (it also
        # pays the rent of its token account), and its SOL above its ceiling
        # (0.5 SOL) goes to cold
        assert sorted(x.split(":")[0] for x in cn.svc.run_sweeps()) == ["to_cold", "to_hot"]
        chain.warp_slots(2)
        assert cn.sync_changes() == []

        async def token_balance(owner: str) -> int:
            async with AsyncClient(chain.url) as c:
                ata = Pubkey.from_string(sol_token_account(owner, str(mint)))
                return int((await c.get_token_account_balance(ata)).value.amount)

        hot = cn.svc.keys.sol_hot().address
        assert asyncio.run(token_balance(hot)) == 5_000_000
        assert asyncio.run(token_balance(wallet)) == 0
        # the tokens above the hot wallet's ceiling (4 TUSDC) go to cold as well
        assert [x.split(":")[0] for x in cn.svc.run_sweeps()] == ["to_cold"]
        chain.warp_slots(2)
        assert cn.sync_changes() == []
        assert asyncio.run(token_balance(hot)) == 4_000_000
        assert asyncio.run(token_balance(cold)) == 1_000_000

        async def balance_of(key: str) -> int:
            async with AsyncClient(chain.url) as c:
                return int((await c.get_balance(Pubkey.from_string(key))).value)

        with cn.node.sessions() as s:
            assert -balance(s, NODE_COLD, "SOL") == asyncio.run(balance_of(cold))
            assert asyncio.run(balance_of(cold)) == hot_held - LAMPORTS_PER_SOL // 2
            assert all(line.ok for line in reconcile(cn.svc, s))

        # a SOL withdrawal from the hot wallet
        with transaction(cn.node.sessions) as s:
            setup = setup_totp(s, user_id=cn.users["sally"], account="sally", issuer="escrowd")
            totp = pyotp.TOTP(setup.secret)
            earlier = utcnow() - timedelta(seconds=30)  # so two later time steps are free
            enable_totp(s, user_id=cn.users["sally"], code=totp.at(earlier), count=1, now=earlier)
        payee = str(Keypair().pubkey())
        r = client.post(
            f"{P}/withdrawal-addresses", headers=auth, json={"chain": "sol", "address": payee}
        )
        assert r.status_code == 201, r.text
        req = {
            "asset": "SOL",
            "address": payee,
            "amount": str(3 * LAMPORTS_PER_SOL // 10),
            "totp_code": totp.now(),
            "request_key": "s-1",
        }
        r = client.post(f"{P}/withdrawals", headers=auth, json=req)
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        spl = client.post(
            f"{P}/withdrawals",
            headers=auth,
            json={
                **req,
                "asset": "TUSDC",
                "amount": "2000000",
                "request_key": "s-2",
                "totp_code": totp.at(time.time() + 30),
            },
        )
        assert spl.status_code == 201, spl.text
        tid = spl.json()["id"]
        assert cn.svc.run_withdrawals() == {wid: "broadcast", tid: "broadcast"}
        assert cn.svc.run_withdrawals() == {}  # processed, not finalized
        chain.warp_slots(2)
        assert cn.svc.run_withdrawals() == {wid: "confirmed", tid: "confirmed"}
        assert asyncio.run(token_balance(payee)) == 2_000_000
        assert asyncio.run(token_balance(hot)) == 2_000_000

        assert asyncio.run(balance_of(payee)) == 3 * LAMPORTS_PER_SOL // 10
        body = {
            b["asset"]: (b["available"], b["held"])
            for b in client.get(f"{P}/balances", headers=auth).json()
        }
        assert body["SOL"] == (str(7 * LAMPORTS_PER_SOL // 10), "0")
        assert body["TUSDC"] == ("3000000", "0")
        cn.sync_changes()
        with cn.node.sessions() as s:
            assert all(line.ok for line in reconcile(cn.svc, s)), reconcile(cn.svc, s)
            assert check_balances(s) == []
    finally:
        client.close()
        cn.node.stop()
