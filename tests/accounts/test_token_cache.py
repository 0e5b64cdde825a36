"""The process's token cache with many accounts: bounded by INTEGRATIONS_TOKEN_CACHE_SIZE
(least recently used evicted first), and an edited account's older token dropped
without touching the others' (security.md #31)."""

from __future__ import annotations

import time

from django.test import override_settings

from integrations.tokens.base import Token
from integrations.tokens.cache import TokenCache

DUMMY = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def key(account: str, version: str = "0123456789abcdef") -> str:
    return f"integrations:token:gh[{account}]:{version}"


def put(cache: TokenCache, cache_key: str, value: str) -> Token:
    return cache.get(cache_key, lambda: Token(value, time.time() + 3600))


@override_settings(CACHES=DUMMY, INTEGRATIONS_TOKEN_CACHE_SIZE=3)
def test_bounded_least_recently_used_first() -> None:
    cache = TokenCache()
    for n in range(3):
        put(cache, key(f"a{n}"), f"t{n}")
    put(cache, key("a0"), "unused")  # a hit: a0 is now the most recently used
    put(cache, key("a3"), "t3")
    assert list(cache._local) == [key("a2"), key("a0"), key("a3")]  # a1 went first
    assert put(cache, key("a0"), "unused").value == "t0"
    assert put(cache, key("a1"), "t1-again").value == "t1-again"  # evicted: obtained anew
    assert len(cache._local) == 3 and len(cache._versions) <= 3


@override_settings(CACHES=DUMMY)
def test_an_edited_account_drops_only_its_older_token() -> None:
    cache = TokenCache()
    for account in ("acme", "acme:eu", "globex"):
        put(cache, key(account), f"old-{account}")
    put(cache, key("acme", "fedcba9876543210"), "new-acme")
    assert sorted(cache._local) == sorted(
        [key("acme", "fedcba9876543210"), key("acme:eu"), key("globex")]
    )
