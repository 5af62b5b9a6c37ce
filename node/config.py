"""Settings: environment variables (ESCROWD_*, nested with ``__``) over an
optional TOML file (``ESCROWD_CONFIG`` or ``./escrowd.toml``) over defaults.

Defaults need no configuration at all: dev mode, a SQLite file under
``.escrowd/``, local chains started by the node. A wrong value fails at start
with a message naming the setting (see ``load_settings``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from node.accounts.settings import AuthSettings
from node.custody.settings import CustodySettings
from node.disputes.settings import DisputeSettings
from node.errors import ConfigError
from node.market.settings import MarketSettings
from node.ops.settings import OpsSettings
from node.settings_base import Section
from node.trading.settings import TradingSettings

DEFAULT_CONFIG_FILE = "escrowd.toml"




class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Threads serving synchronous handlers (anyio's default is 40): each holds
    # a database connection while it works, so this matches the pool.
    threads: int = Field(24, ge=1, le=1000)
    # The order book and order lists are answered from memory until a commit
    # touches their rows (any process of the fleet: pg_notify). The lifetime
    # only bounds what a write made outside the node (SQL by hand) leaves
    # stale; 0 turns the cache off.
    read_cache_ttl_s: float = Field(10.0, ge=0, le=3600)
    read_cache_entries: int = Field(4096, ge=0, le=1_000_000)


class TokenSettings(Section):
    """An ERC-20 the node lists as a currency."""

    symbol: str = Field(min_length=1, max_length=16)
    name: str = Field(min_length=1, max_length=64)
    address: str
    decimals: int = Field(ge=0, le=36)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not (v.startswith("0x") and len(v) == 42):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return v


class EvmSettings(Section):
    enabled: bool = True
    # None in dev mode: the node starts its own anvil and deploys the contracts.
    rpc_url: str | None = None
    ws_url: str | None = None
    chain_id: int | None = Field(None, ge=1)
    escrow_address: str | None = None
    native_symbol: str = "ETH"
    # ERC-20 tokens traded on this chain (dev mode lists the local test tokens).
    tokens: list[TokenSettings] = Field(default_factory=list)
    # Block the escrow contract was deployed at: the watcher starts there.
    start_block: int = Field(0, ge=0)
    confirmations: int = Field(2, ge=1, le=1000)
    # A reorg deeper than this stops the watcher with an alert.
    finality_depth: int = Field(64, ge=1, le=10_000)
    poll_interval_ms: int = Field(1000, ge=10, le=60_000)
    log_range: int = Field(2000, ge=1, le=100_000)
    # The relayer's gas wallet and the arbitration agent's key. Secrets: no
    # default outside dev mode (dev uses anvil's well-known accounts).
    relayer_key: SecretStr | None = None
    agent_key: SecretStr | None = None
    fee_bump_after_s: int = Field(30, ge=1)
    # Payment window offered to buyers when a trade opens, and deadline after it.
    payment_window_s: int = Field(1800, ge=60)
    release_window_s: int = Field(86_400, ge=60)

    @field_validator("rpc_url", "ws_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an http(s):// or ws(s):// URL")
        return v

    @field_validator("escrow_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("0x") and len(v) == 42):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return v


class BtcSettings(Section):
    """Bitcoin: the node speaks bitcoind's JSON-RPC (a real bitcoind on
    mainnet/signet/testnet/regtest, or the local regtest node in dev mode)."""

    # None: on in dev mode (the local regtest node), and in production when
    # rpc_url is set; true/false force it.
    enabled: bool | None = None
    network: Literal["mainnet", "testnet", "signet", "regtest"] = "regtest"
    # None in dev mode: the node starts its own regtest node.
    rpc_url: str | None = None
    rpc_user: str | None = None
    rpc_password: SecretStr | None = None
    rpc_cookie_file: Path | None = None
    confirmations: int = Field(1, ge=1, le=1000)
    finality_depth: int = Field(100, ge=1, le=10_000)
    poll_interval_ms: int = Field(1000, ge=10, le=60_000)
    # Relative timelock (blocks) of the seller's refund path.
    csv_blocks: int = Field(144, ge=1, le=65_535)
    min_feerate_sat_vb: int = Field(1, ge=1)
    max_fee_sat: int = Field(100_000, ge=1)
    # Keys of the node's arbitration agent (a BIP-32 seed or xprv). Secret.
    agent_seed: SecretStr | None = None
    # First block the watcher indexes (None: regtest from genesis, other
    # networks from the tip at the first start).
    start_height: int | None = Field(None, ge=0)
    # How often (seconds) the watchtower looks for matured timelock refunds.
    watchtower_interval_s: int = Field(10, ge=1, le=3600)
    # Dev mode only: mine a regtest block every this many seconds (0: never;
    # tests and demos mine themselves).
    dev_block_interval_s: int = Field(10, ge=0, le=3600)
    # Fee bumps: a payout unconfirmed this many blocks after its broadcast is
    # replaced by the next rung of its signed fee ladder (node/btc_bumps.py),
    # checked every bump_interval_s; fee_ladder_rungs rungs are handed out.
    bump_after_blocks: int = Field(3, ge=1, le=1000)
    bump_interval_s: int = Field(60, ge=1, le=3600)
    fee_ladder_rungs: int = Field(3, ge=0, le=10)

    @field_validator("rpc_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL")
        return v


class SolSettings(Section):
    """Solana: the node uses solana-py's client against any cluster's JSON-RPC
    (the local LiteSVM chain in dev mode)."""

    # None: on in dev mode (the local LiteSVM chain), and in production when
    # rpc_url is set; true/false force it.
    enabled: bool | None = None
    cluster: Literal["mainnet-beta", "devnet", "testnet", "localnet"] = "localnet"
    rpc_url: str | None = None
    ws_url: str | None = None
    commitment: Literal["processed", "confirmed", "finalized"] = "finalized"
    poll_interval_ms: int = Field(1000, ge=10, le=60_000)
    # Secret key (base58 or JSON byte array) of the node's agent and fee payer.
    agent_key: SecretStr | None = None
    fee_payer_key: SecretStr | None = None
    # SPL tokens listed as currencies besides SOL: {symbol, name, mint, decimals}
    # (dev mode lists its test USDC).
    tokens: list[dict[str, str | int]] = Field(default_factory=list)
    payment_window_s: int = Field(1800, ge=60)
    release_window_s: int = Field(86_400, ge=60)
    # A human arbitrator's Solana wallet (base58 public key) for new escrows'
    # arbitrator slot; None: the node's agent key arbitrates.
    arbitrator_address: str | None = None
    # dev mode's local chain: slot length and finality depth
    dev_slot_ms: int = Field(100, ge=10, le=2000)
    dev_finality_slots: int = Field(32, ge=1, le=1000)

    @field_validator("rpc_url", "ws_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an http(s):// or ws(s):// URL")
        return v


PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", "xxx"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESCROWD_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    mode: Literal["dev", "production"] = "dev"
    data_dir: Path = Path(".escrowd")
    database_url: str | None = None
    # PostgreSQL connections kept open per process (SQLAlchemy's default of 5
    # plus 10 overflow closes and reopens connections under load: a fork of a
    # PostgreSQL backend per request).
    database_pool_size: int = Field(24, ge=1, le=1000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    api: ApiSettings = ApiSettings()
    evm: EvmSettings = EvmSettings()
    btc: BtcSettings = BtcSettings()
    sol: SolSettings = SolSettings()
    auth: AuthSettings = AuthSettings()
    market: MarketSettings = MarketSettings()
    disputes: DisputeSettings = DisputeSettings()
    custody: CustodySettings = CustodySettings()
    trading: TradingSettings = TradingSettings()
    ops: OpsSettings = OpsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("ESCROWD_CONFIG", DEFAULT_CONFIG_FILE)
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return v

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.mode == "production":
            if self.database_url is None:
                raise ValueError("database_url is required in production mode")
            if self.evm.enabled:
                for name in ("rpc_url", "escrow_address", "chain_id"):
                    if getattr(self.evm, name) is None:
                        raise ValueError(f"evm.{name} is required in production mode")
                for name in ("relayer_key", "agent_key"):
                    secret = getattr(self.evm, name)
                    if secret is None or secret.get_secret_value().lower() in PLACEHOLDERS:
                        raise ValueError(f"evm.{name} must be set to a real key in production")
        return self

    @property
    def btc_enabled(self) -> bool:
        if self.btc.enabled is not None:
            return self.btc.enabled
        return self.mode == "dev" or self.btc.rpc_url is not None

    @property
    def sol_enabled(self) -> bool:
        if self.sol.enabled is not None:
            return self.sol.enabled
        return self.mode == "dev" or self.sol.rpc_url is not None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'escrowd.sqlite').resolve()}"


# ESCROWD_* variables that are not settings.
NOT_SETTINGS = {"ESCROWD_CONFIG", "ESCROWD_TEST_PG"}


def _unknown_env() -> list[str]:
    """ESCROWD_* variables that name no setting (pydantic-settings would
    silently ignore a misspelt one)."""
    unknown = []
    for var in os.environ:
        if not var.startswith("ESCROWD_") or var in NOT_SETTINGS:
            continue
        model: type[BaseModel] = Settings
        for part in var.removeprefix("ESCROWD_").lower().split("__"):
            field = model.model_fields.get(part)
            if field is None:
                unknown.append(var)
                break
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                model = ann
            else:
                break
    return unknown


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning pydantic's errors into one ConfigError that
    names each wrong setting the way the operator writes it."""
    unknown = _unknown_env()
    if unknown:
        raise ConfigError(
            "invalid configuration: unknown environment variable(s) "
            + ", ".join(sorted(unknown))
            + " (settings are ESCROWD_<NAME> or ESCROWD_<BLOCK>__<NAME>)"
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            env = "ESCROWD_" + "__".join(str(p).upper() for p in err["loc"]) if err["loc"] else ""
            where = f"{loc} ({env})" if env else loc
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
