"""Dev mode: the local chains the node starts itself (``escrowd run`` with no
RPC URL configured). This is developer tooling, the only node module that
imports ``localchain``, and only when dev mode asks for it."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("escrowd.devchain")

# anvil's well-known dev accounts (never use them anywhere real): #7 is the
# node's arbitration agent, #9 the relayer's gas wallet in dev mode.
AGENT_ACCOUNT = 7
RELAYER_ACCOUNT = 9


@dataclass
class DevEvm:
    """A running dev anvil with the escrow contract deployed."""

    anvil: Any
    deployment: dict[str, Any]
    accounts: list[Any] = field(default_factory=list)
    # True when the contracts were deployed by this start (a new chain): the
    # node then forgets what it had mirrored of an earlier dev chain.
    fresh: bool = False

    @property
    def agent_key(self) -> str:
        return str(self.accounts[AGENT_ACCOUNT].key)

    @property
    def relayer_key(self) -> str:
        return str(self.accounts[RELAYER_ACCOUNT].key)

    def stop(self) -> None:
        self.anvil.stop()


def start_dev_evm(data_dir: Path, *, persist: bool = True, port: int | None = None) -> DevEvm:
    """Start anvil under ``data_dir`` (its state kept in ``anvil-state.json``
    across restarts when ``persist``), deploy the contracts on first start,
    and write the deployment to ``evm-deployment.json``."""
    from localchain.evm import Anvil, dev_accounts
    from localchain.evm_deploy import deploy

    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / "anvil-state.json"
    deployment_file = data_dir / "evm-deployment.json"
    extra: tuple[str, ...] = ("--state", str(state)) if persist else ()
    # a block every second, so confirmations keep coming with no traffic
    anvil = Anvil(data_dir=data_dir / "anvil", port=port, block_time=1, extra_args=extra).start()
    deployment: dict[str, Any] | None = None
    if deployment_file.exists():
        deployment = json.loads(deployment_file.read_text(encoding="utf-8"))
        code = anvil.rpc("eth_getCode", deployment["escrow"], "latest")
        if code in ("0x", "0x0", None):
            log.warning("dev chain state was lost: deploying again")
            deployment = None
    fresh = deployment is None
    if deployment is None:
        deployment = asdict(deploy(anvil.url, deployment_file, ws_url=anvil.ws_url))
    deployment["rpc_url"] = anvil.url
    deployment["ws_url"] = anvil.ws_url
    deployment_file.write_text(json.dumps(deployment, indent=2), encoding="utf-8")
    return DevEvm(anvil=anvil, deployment=deployment, accounts=dev_accounts(10), fresh=fresh)


@dataclass
class DevBtc:
    """A running dev Bitcoin regtest node (libbitcoinkernel behind bitcoind's RPC)."""

    node: Any
    fresh: bool = False

    @property
    def url(self) -> str:
        return str(self.node.url)

    def auth(self) -> tuple[str, str]:
        user, password = self.node.auth()
        return str(user), str(password)

    def stop(self) -> None:
        self.node.stop()


def start_dev_btc(data_dir: Path, *, port: int | None = None) -> DevBtc:
    """Start the local regtest node with its chain under ``data_dir`` (kept
    across restarts); ``fresh`` when the chain was created by this start."""
    from localchain.bitcoin import BitcoinRegtest

    fresh = not (data_dir / "localchain.sqlite").exists()
    node = BitcoinRegtest(data_dir=data_dir, port=port).start()
    return DevBtc(node=node, fresh=fresh)


@dataclass
class DevSol:
    """A running local Solana chain (LiteSVM behind JSON-RPC) with the node's
    dev keys funded and a test USDC mint (6 decimals) created. State is in
    memory only: every start is a new chain (new genesis hash)."""

    chain: Any
    agent: Any  # solders Keypair
    fee_payer: Any  # solders Keypair
    usdc_mint: str
    mint_authority: Any  # solders Keypair: mints test USDC to traders (demo, tests)

    @property
    def url(self) -> str:
        return str(self.chain.url)

    def stop(self) -> None:
        self.chain.stop()


def start_dev_sol(
    data_dir: Path, *, slot_ms: int = 100, finality_slots: int = 32
) -> DevSol:
    """Start the local Solana chain under ``data_dir``; keep the node's agent and
    fee-payer keys in ``sol-keys.json`` across restarts (so escrows opened
    earlier keep their arbitrator), airdrop the fee payer, create test USDC."""
    import base64

    from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
    from solders.keypair import Keypair
    from solders.message import Message
    from solders.system_program import CreateAccountParams, create_account
    from solders.transaction import Transaction
    from spl.token.constants import MINT_LEN, TOKEN_PROGRAM_ID
    from spl.token.instructions import initialize_mint
    from spl.token.models import InitializeMintParams

    data_dir.mkdir(parents=True, exist_ok=True)
    keys_file = data_dir / "sol-keys.json"
    if keys_file.exists():
        keys = json.loads(keys_file.read_text(encoding="utf-8"))
    else:
        keys = {name: str(Keypair()) for name in ("agent", "fee_payer", "mint_authority")}
        keys_file.write_text(json.dumps(keys), encoding="utf-8")
        keys_file.chmod(0o600)
    agent = Keypair.from_base58_string(keys["agent"])
    fee_payer = Keypair.from_base58_string(keys["fee_payer"])
    authority = Keypair.from_base58_string(keys["mint_authority"])
    chain = SolanaLocal(data_dir=data_dir / "solana", slot_ms=slot_ms,
                        finality_slots=finality_slots).start()
    try:
        for kp in (fee_payer, authority):
            chain.airdrop(str(kp.pubkey()), 100 * LAMPORTS_PER_SOL)
        mint = Keypair()
        rent = int(chain.rpc("getMinimumBalanceForRentExemption", MINT_LEN))
        ixs = [
            create_account(CreateAccountParams(
                from_pubkey=authority.pubkey(), to_pubkey=mint.pubkey(), lamports=rent,
                space=MINT_LEN, owner=TOKEN_PROGRAM_ID)),
            initialize_mint(InitializeMintParams(
                decimals=6, program_id=TOKEN_PROGRAM_ID, mint=mint.pubkey(),
                mint_authority=authority.pubkey())),
        ]
        blockhash = chain.rpc("getLatestBlockhash", {"commitment": "processed"})["value"]
        from solders.hash import Hash

        msg = Message.new_with_blockhash(ixs, authority.pubkey(),
                                         Hash.from_string(blockhash["blockhash"]))
        tx = Transaction([authority, mint], msg, Hash.from_string(blockhash["blockhash"]))
        chain.rpc("sendTransaction", base64.b64encode(bytes(tx)).decode(),
                  {"encoding": "base64", "preflightCommitment": "processed"})
        chain.finalize()
    except Exception:
        chain.stop()
        raise
    log.info("dev Solana on %s: test USDC mint %s", chain.url, mint.pubkey())
    return DevSol(chain=chain, agent=agent, fee_payer=fee_payer, usdc_mint=str(mint.pubkey()),
                  mint_authority=authority)
