"""Trading pair parameters as an immutable value, and the integer money math.

Units (all integers, base units of each asset):

- a **quantity** is in base units of the *base* asset (sat, wei, lamports...)
  and must be a multiple of ``step_size``;
- a **price** is in base units of the *quote* asset per ``price_scale`` base
  units of the base asset ("micro-USDT per 1000 sat") and must be a multiple
  of ``tick_size``.

Rounding rules (explicit, never floats):

- the quote amount of a fill is ``price * qty / price_scale`` and is *exact*:
  a pair is refused unless ``tick_size * step_size`` is a multiple of
  ``price_scale`` (``pair_inexact_notional``), so no fill rounds and no
  quantity can be bought for nothing (``price_scale = step_size`` always works);
- a fee is ``ceil(received * bps / 10_000)``, charged on what the party
  receives (the buyer pays in base, the seller in quote); the fee account never
  loses the dust, and a fee never exceeds what it is charged on.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.orderbook.errors import OrderValidationError

BPS = 10_000
MAX_FEE_BPS = 1_000


def fee_amount(received: int, bps: int) -> int:
    """``ceil(received * bps / 10_000)`` on non-negative integers."""
    return -(-received * bps // BPS)


@dataclass(frozen=True)
class PairSpec:
    """One trading pair (``p2p_crypto_trading_pairs``) as the engine sees it."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: int
    step_size: int
    min_price: int
    max_price: int
    min_quantity: int
    max_quantity: int
    price_scale: int = 1
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    # how far above its stop a market-priced stop buy may pay: it holds
    # price x quantity at stop + this margin, and spends no more when it fires
    market_protection_bps: int = 1_000

    def __post_init__(self) -> None:
        def bad(code: str, message: str) -> OrderValidationError:
            return OrderValidationError(message, code=code, symbol=self.symbol)

        if self.base_asset == self.quote_asset:
            raise bad("pair_same_asset", "base and quote asset must differ")
        for name in ("tick_size", "step_size", "price_scale"):
            if getattr(self, name) <= 0:
                raise bad("pair_bad_" + name, f"{name} must be positive")
        if not 0 < self.min_price <= self.max_price:
            raise bad("pair_bad_price_bounds", "need 0 < min_price <= max_price")
        if not 0 < self.min_quantity <= self.max_quantity:
            raise bad("pair_bad_quantity_bounds", "need 0 < min_quantity <= max_quantity")
        if self.min_price % self.tick_size or self.max_price % self.tick_size:
            raise bad("pair_bounds_off_tick", "price bounds must be multiples of tick_size")
        if self.min_quantity % self.step_size or self.max_quantity % self.step_size:
            raise bad("pair_bounds_off_step", "quantity bounds must be multiples of step_size")
        if (self.tick_size * self.step_size) % self.price_scale:
            raise bad(
                "pair_inexact_notional",
                "tick_size * step_size must be a multiple of price_scale",
            )
        for name in ("maker_fee_bps", "taker_fee_bps"):
            if not 0 <= getattr(self, name) <= MAX_FEE_BPS:
                raise bad("pair_bad_fee", f"{name} must be within 0..{MAX_FEE_BPS}")
        if not 0 <= self.market_protection_bps <= BPS:
            raise bad("pair_bad_protection", f"market_protection_bps must be within 0..{BPS}")

    # -- validation -----------------------------------------------------------

    def check_price(self, price: int, *, field: str = "price") -> None:
        """Raise ``OrderValidationError`` unless ``price`` is on tick and within bounds."""
        if price % self.tick_size:
            raise OrderValidationError(
                f"{field} {price} is not a multiple of tick size {self.tick_size}",
                code="price_not_on_tick", field=field, value=price,
            )
        if not self.min_price <= price <= self.max_price:
            raise OrderValidationError(
                f"{field} {price} outside [{self.min_price}, {self.max_price}]",
                code="price_out_of_range", field=field, value=price,
            )

    def check_quantity(self, quantity: int) -> None:
        """Raise ``OrderValidationError`` unless ``quantity`` is on step and within bounds."""
        if quantity % self.step_size:
            raise OrderValidationError(
                f"quantity {quantity} is not a multiple of step size {self.step_size}",
                code="quantity_not_on_step", field="quantity", value=quantity,
            )
        if not self.min_quantity <= quantity <= self.max_quantity:
            raise OrderValidationError(
                f"quantity {quantity} outside [{self.min_quantity}, {self.max_quantity}]",
                code="quantity_out_of_range", field="quantity", value=quantity,
            )

    # -- money ----------------------------------------------------------------

    def quote_amount(self, price: int, quantity: int) -> int:
        """Quote base units paid for ``quantity`` at ``price`` (exact on a valid
        price and quantity; floor otherwise)."""
        return price * quantity // self.price_scale

    def protected_price(self, stop: int) -> int:
        """The highest price a market-priced stop buy at ``stop`` pays: the stop
        plus ``market_protection_bps``, up to the next tick, at most ``max_price``."""
        raw = -(-stop * (BPS + self.market_protection_bps) // BPS)
        on_tick = -(-raw // self.tick_size) * self.tick_size
        return min(on_tick, self.max_price)

    def quote_hold(self, price: int, quantity: int) -> int:
        """Quote base units to hold for a buy of ``quantity`` at ``price`` (ceiling)."""
        return -(-price * quantity // self.price_scale)
