"""The read cache's rules (node.read_cache): a value is served only while
the scopes it was built from are unchanged; a value built before a change
is never kept; expiry, the stale window and eviction."""

from __future__ import annotations

from node.read_cache import (
    ALL,
    FRESH,
    MISS,
    STALE,
    ReadCache,
    decode_scopes,
    encode_scopes,
    user_scope,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(ttl: float = 2.0, entries: int = 100) -> tuple[ReadCache, Clock]:
    clock = Clock()
    return ReadCache(ttl_s=ttl, max_entries=entries, jitter=0.0, clock=clock), clock


def test_served_until_one_of_its_scopes_changes() -> None:
    c, _ = cache()
    scopes = ("mine", user_scope(1))
    assert c.put("k", scopes, c.versions(scopes), b"page")
    assert c.get("k", scopes) == b"page"
    c.bump([user_scope(2), "book"])  # other scopes: still served
    assert c.get("k", scopes) == b"page"
    c.bump([user_scope(1)])
    assert c.get("k", scopes) is None
    assert c.lookup("k", scopes) == (None, MISS)


def test_everything_goes_on_all() -> None:
    c, _ = cache()
    for key, scopes in (("a", ("book",)), ("b", ("auth",)), ("c", ("mine", "user:3"))):
        c.put(key, scopes, c.versions(scopes), key)
    c.bump([ALL])
    assert len(c) == 0
    assert all(c.get(k, s) is None for k, s in (("a", ("book",)), ("b", ("auth",))))


def test_a_value_built_before_a_change_is_not_kept() -> None:
    c, _ = cache()
    seen = c.versions(("book",))  # read before the database read...
    c.bump(["book"])  # ...a commit lands meanwhile
    assert not c.put("k", ("book",), seen, b"old rows")
    assert c.get("k", ("book",)) is None


def test_put_if_quiet_needs_no_change_at_all() -> None:
    c, _ = cache()
    since = c.changes
    assert c.put_if_quiet("a", ("user:1",), since, 1)
    assert c.get("a", ("user:1",)) == 1
    since = c.changes
    c.bump(["user:2"])  # any change, even to another scope
    assert not c.put_if_quiet("b", ("user:1",), since, 2)


def test_expiry_then_a_stale_window_then_gone() -> None:
    c, clock = cache(ttl=2.0)
    c.put("k", ("book",), c.versions(("book",)), b"v")
    clock.now += 1.9
    assert c.lookup("k", ("book",)) == (b"v", FRESH)
    clock.now += 0.2
    assert c.lookup("k", ("book",)) == (b"v", STALE)
    assert c.get("k", ("book",)) is None  # get() never returns a stale value
    clock.now += 2.0
    assert c.lookup("k", ("book",)) == (None, MISS)


def test_stale_is_never_served_after_a_change() -> None:
    c, clock = cache(ttl=2.0)
    c.put("k", ("book",), c.versions(("book",)), b"v")
    clock.now += 2.5
    c.bump(["book"])
    assert c.lookup("k", ("book",)) == (None, MISS)


def test_own_lifetime_and_jitter_shortens_only() -> None:
    c, clock = cache(ttl=2.0)
    c.put("caller", ("auth",), c.versions(("auth",)), 7, ttl_s=30.0)
    clock.now += 29
    assert c.get("caller", ("auth",)) == 7
    j = ReadCache(ttl_s=10.0, jitter=0.5, clock=clock)
    for i in range(50):
        j.put(i, ("book",), j.versions(("book",)), i)
    clock.now += 4.9
    assert all(j.get(i, ("book",)) == i for i in range(50))
    clock.now += 5.2
    assert all(j.lookup(i, ("book",))[1] == STALE for i in range(50))


def test_oldest_entry_goes_when_full() -> None:
    c, _ = cache(entries=3)
    for k in "abcd":
        c.put(k, ("book",), c.versions(("book",)), k)
    assert len(c) == 3
    assert c.get("a", ("book",)) is None and c.get("d", ("book",)) == "d"


def test_off_keeps_nothing() -> None:
    c, _ = cache(ttl=0)
    assert not c.enabled
    assert not c.put("k", ("book",), c.versions(("book",)), 1)
    c.configure(ttl_s=1, max_entries=10)
    assert c.enabled and c.put("k", ("book",), c.versions(("book",)), 1)


def test_paused_while_any_listener_is_deaf() -> None:
    c, _ = cache()
    c.put("k", ("book",), c.versions(("book",)), 1)
    c.pause("db-a")
    assert not c.enabled and len(c) == 0
    c.pause("db-b")
    c.resume("db-a")
    assert not c.enabled
    c.resume("db-b")
    assert c.enabled


def test_book_reads_name_one_book_only_when_unambiguous() -> None:
    from api.hot_reads import book_scopes

    assert book_scopes(b"crypto_currency_id=1&fiat_currency=eur&limit=20") == ("book:1:EUR",)
    assert book_scopes(b"fiat_currency=EUR&crypto_currency_id=01") == ("book:1:EUR",)
    for q in (b"", b"fiat_currency=EUR", b"crypto_currency_id=1",
              b"crypto_currency_id=1&crypto_currency_id=2&fiat_currency=EUR",
              b"crypto_currency_id=%EF%BC%91&fiat_currency=EUR",  # a fullwidth 1
              b"crypto_currency_id=-1&fiat_currency=X"):
        assert book_scopes(q) == ("book",), q


def test_notification_payloads() -> None:
    assert decode_scopes(encode_scopes(["user:2", "book", "user:2"])) == ["book", "user:2"]
    assert encode_scopes([user_scope(i) for i in range(5000)]) == ALL
    assert decode_scopes("") == []
