"""Engine commands as JSON objects for the input log, and back (pure).

Every field is written, enums by value, so a logged command decodes to exactly
the command that was applied (``decode(encode(c)) == c``)."""

from __future__ import annotations

from typing import Any

from node.orderbook import (
    STP,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    OrderType,
    PlaceOrder,
    SetFunds,
    Side,
    Tick,
    TimeInForce,
)

KINDS: dict[type, str] = {
    PlaceOrder: "place",
    CancelOrder: "cancel",
    AmendOrder: "amend",
    Tick: "tick",
    SetFunds: "funds",
    Deposit: "deposit",
}
_BY_KIND = {kind: cls for cls, kind in KINDS.items()}


def kind_of(command: Command) -> str:
    return KINDS[type(command)]


def encode(command: Command) -> dict[str, Any]:
    """The command's fields as a JSON object (enums as their values)."""
    out: dict[str, Any] = {}
    for name, value in command._asdict().items():
        enum = isinstance(value, Side | OrderType | TimeInForce | STP)
        out[name] = value.value if enum else value
    return out


def decode(kind: str, data: dict[str, Any]) -> Command:
    """The command a log row holds; ``ValueError`` for an unknown kind or field."""
    cls = _BY_KIND.get(kind)
    if cls is None:
        raise ValueError(f"unknown command kind {kind!r}")
    if cls is PlaceOrder:
        fields = dict(data)
        fields["side"] = Side(fields["side"])
        fields["order_type"] = OrderType(fields["order_type"])
        fields["time_in_force"] = TimeInForce(fields["time_in_force"])
        if fields.get("stp") is not None:
            fields["stp"] = STP(fields["stp"])
        return PlaceOrder(**fields)
    command: Command = cls(**data)
    return command
