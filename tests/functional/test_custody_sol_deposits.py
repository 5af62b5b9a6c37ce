"""Solana deposits on the local chain (slots advance only when told): SOL
paid to a user's derived deposit wallet and SPL tokens minted to its
associated token account are credited only once finalized, in one batched
read of all deposit accounts; and the ledger reconciles with the chain."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.testclient import TestClient
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_associated_token_account, mint_to
from spl.token.models import MintToParams

from node.config import load_settings
from node.custody.ledger import check_balances
from node.custody.reconcile import reconcile
from node.runtime import build_node
from tests.api.custody_fixtures import *  # noqa: F403
from tests.api.custody_fixtures import CustodyNode
from tests.functional.solana_fixtures import *  # noqa: F403
from tests.functional.solana_fixtures import airdrop, create_mint, send

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
        custody={"seed_file": str(seed_file)},
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
            lines = {line.asset: line for line in reconcile(cn.svc, s)}
            assert check_balances(s) == []
        assert lines["SOL"].ok and lines["SOL"].ledger == LAMPORTS_PER_SOL
        assert lines["TUSDC"].ok and lines["TUSDC"].on_chain == 5_000_000
    finally:
        client.close()
        cn.node.stop()
