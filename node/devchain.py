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
