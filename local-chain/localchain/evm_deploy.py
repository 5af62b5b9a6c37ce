"""Deploy the escrow stack on a local EVM chain (anvil).

Deploys ``Escrow``, a ``TestToken`` ("Test USD", TUSD, 18 decimals, EIP-2612
permit) and a ``UsdtToken`` (USDT-style, 6 decimals, no return values) from
contracts/ and contracts/mocks/, sets the protocol fee (50 bps to the dev fee
recipient), mints tokens to the dev accounts and writes a deployment JSON::

    {"chain_id": 31337, "rpc_url": "...", "ws_url": "...", "escrow": "0x..",
     "deploy_block": 1, "owner": "0x..", "fee_bps": 50, "fee_recipient": "0x..",
     "tokens": [{"symbol": "TUSD", "name": "Test USD", "decimals": 18,
                 "address": "0x.."}, ...],
     "accounts": {"owner": "0x..", "fee_recipient": "0x..", "relayer": "0x.."}}

Dev accounts (anvil's mnemonic): #0 owner/deployer, #8 fee recipient, #9
the node's relayer gas wallet; #1..#7 are traders and arbitrators in tests.
Command line: ``python -m localchain.evm_deploy RPC_URL OUT.json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from localchain.evm import DevAccount, dev_accounts

OWNER_INDEX = 0
FEE_RECIPIENT_INDEX = 8
RELAYER_INDEX = 9
DEFAULT_FEE_BPS = 50
MINT_WHOLE_TOKENS = 1_000_000


@dataclass(frozen=True)
class TokenInfo:
    symbol: str
    name: str
    decimals: int
    address: str


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    rpc_url: str
    ws_url: str | None
    escrow: str
    deploy_block: int
    owner: str
    fee_bps: int
    fee_recipient: str
    tokens: list[TokenInfo] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)

    def token(self, symbol: str) -> TokenInfo:
        for t in self.tokens:
            if t.symbol == symbol:
                return t
        raise KeyError(symbol)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["tokens"] = [TokenInfo(**t) for t in data["tokens"]]
        return cls(**data)


@cache
def cached_dev_accounts() -> tuple[DevAccount, ...]:
    """anvil's dev accounts, derived once per process (derivation is slow)."""
    return tuple(dev_accounts(10))


def _w3(rpc_url: str) -> Any:
    from web3 import Web3

    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))


def receipt_of(w3: Any, tx_hash: Any, timeout: float = 60) -> Any:
    """The receipt of a transaction; anvil (automine) usually has it already,
    so ask before web3's polling loop (which sleeps first)."""
    from web3.exceptions import TransactionNotFound

    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.02)


def _deploy(w3: Any, name: str, sender: str, *args: Any) -> tuple[str, int]:
    from node.chains.evm.artifacts import load

    art = load(name)
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = factory.constructor(*args).transact({"from": sender})
    receipt = receipt_of(w3, tx)
    if receipt["status"] != 1:
        raise RuntimeError(f"deploying {name} failed: {receipt}")
    return str(receipt["contractAddress"]), int(receipt["blockNumber"])


def deploy(
    rpc_url: str,
    out_path: Path | None = None,
    *,
    ws_url: str | None = None,
    fee_bps: int = DEFAULT_FEE_BPS,
    mint_to: int = 8,
) -> Deployment:
    """Deploy Escrow + tokens on the anvil at ``rpc_url`` (its dev accounts
    must be unlocked: anvil's default) and write the deployment JSON to
    ``out_path`` if given."""
    from node.chains.evm.artifacts import load

    w3 = _w3(rpc_url)
    accts = cached_dev_accounts()
    owner = accts[OWNER_INDEX].address
    fee_recipient = accts[FEE_RECIPIENT_INDEX].address

    escrow, deploy_block = _deploy(w3, "Escrow", owner)
    tusd, _ = _deploy(w3, "TestToken", owner, "Test USD", "TUSD", 18)
    usdt, _ = _deploy(w3, "UsdtToken", owner)
    tokens = [
        TokenInfo("TUSD", "Test USD", 18, tusd),
        TokenInfo("USDT", "Tether USD (test)", 6, usdt),
    ]

    hashes = []
    esc = w3.eth.contract(address=escrow, abi=load("Escrow").abi)
    hashes.append(esc.functions.set_fee(fee_bps, fee_recipient).transact({"from": owner}))
    for t in tokens:
        c = w3.eth.contract(address=t.address, abi=load("TestToken").abi)
        for a in accts[:mint_to]:
            hashes.append(
                c.functions.mint(a.address, MINT_WHOLE_TOKENS * 10**t.decimals).transact(
                    {"from": owner}
                )
            )
    for h in hashes:
        r = receipt_of(w3, h)
        if r["status"] != 1:
            raise RuntimeError(f"deployment transaction {h.hex()} failed")

    dep = Deployment(
        chain_id=int(w3.eth.chain_id),
        rpc_url=rpc_url,
        ws_url=ws_url,
        escrow=escrow,
        deploy_block=deploy_block,
        owner=owner,
        fee_bps=fee_bps,
        fee_recipient=fee_recipient,
        tokens=tokens,
        accounts={
            "owner": owner,
            "fee_recipient": fee_recipient,
            "relayer": accts[RELAYER_INDEX].address,
        },
    )
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(dep.to_json(), encoding="utf-8")
    return dep


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    dep = deploy(argv[1], Path(argv[2]))
    print(dep.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
