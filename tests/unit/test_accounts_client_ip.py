"""Client IP behind trusted proxies: X-Forwarded-For is believed only from a
trusted peer, and only up to the first untrusted hop from the right."""

from __future__ import annotations

import pytest

from node.accounts.client_ip import client_ip, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(("peer", "xff", "expected"), [
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
    ("10.0.0.2", None, "10.0.0.2"),
    ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
    ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"),  # spoofed left part
    ("::1", "2001:db8::1", "2001:db8::1"),
    ("10.0.0.2", "not-an-ip", "10.0.0.2"),
    ("10.0.0.2", "10.0.0.3, 10.0.0.4", "10.0.0.3"),
])
def test_client_ip(peer: str, xff: str | None, expected: str) -> None:
    assert client_ip(peer, xff, TRUSTED) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("10.0.0.2", "198.51.100.7", []) == "10.0.0.2"
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])
