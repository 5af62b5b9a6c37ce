"""The client's IP behind trusted reverse proxies (for rate limits and the
audit log): the peer address, unless the peer is a trusted proxy, then the
right-most address of X-Forwarded-For that is not a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> list[Network]:
    """``10.0.0.0/8``, ``127.0.0.1``, ``::1`` ... (ValueError on a bad one)."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values]


def _trusted(addr: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    if not trusted or forwarded_for is None or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed header: do not trust any of it
    return hops[0] if hops else peer
