"""Settings of this slice: the ``[custody]`` block of escrowd.toml, ESCROWD_CUSTODY__* variables.

Amounts are integers in base units, keyed by asset symbol (``BTC``, ``ETH``,
``USDC`` ...). An asset missing from a limit mapping has no such limit; an
asset missing from ``hot_ceiling`` is never swept to cold.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from node.settings_base import Section


class CustodySettings(Section):
    # None: on in dev mode; in production on when seed_file is set.
    enabled: bool | None = None
    # The custody seed (a BIP-39 mnemonic, file mode 0600). Dev mode: generated
    # once at <data_dir>/custody/seed. Production: required, never generated.
    seed_file: Path | None = None
    # Withdrawals: a new allow-listed address is usable after this delay.
    new_address_delay_s: int = Field(86_400, ge=0, le=30 * 86_400)
    user_daily_limit: dict[str, int] = Field(default_factory=dict)
    global_daily_limit: dict[str, int] = Field(default_factory=dict)
    # Hot/cold: hot wallet balance above the ceiling goes to the cold address
    # (an address only: the node holds no cold key), per asset.
    hot_ceiling: dict[str, int] = Field(default_factory=dict)
    cold_address: dict[str, str] = Field(default_factory=dict)
    # Deposit-address balances below this are not swept (dust / gas), per asset.
    min_sweep: dict[str, int] = Field(default_factory=dict)
    # Jobs (seconds).
    withdrawal_interval_s: float = Field(5, gt=0, le=3600)
    sweep_interval_s: float = Field(60, gt=0, le=86_400)
    reconcile_interval_s: float = Field(300, gt=0, le=86_400)
