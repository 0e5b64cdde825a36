"""Credentials that ride in a URL outside ``name=value`` query pairs are masked too."""

from __future__ import annotations

import pytest

from integrations.redaction import redact_text, redact_url

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        (f"https://api.example/v1/charges?{STRIPE}", "https://api.example/v1/charges?…"),
        (f"https://api.example/v1/charges?a=1&{STRIPE}", "https://api.example/v1/charges?a=…&…"),
        (f"https://api.example/v1/sessions/{JWT}/items", "https://api.example/v1/sessions/[redacted]/items"),
        (f"https://api.example/hooks/{STRIPE}", "https://api.example/hooks/[redacted]"),
        ("https://api.example/v1/items/42", "https://api.example/v1/items/42"),
    ],
)
def test_bare_query_items_and_tokens_in_paths_are_masked(url: str, logged: str) -> None:
    """security.md #26: a bare query token (``?sk_live_X``) and a JWT or vendor token in
    a path segment never reach the call log verbatim."""
    assert redact_url(url) == logged


def test_free_text_masks_bare_query_items() -> None:
    """security.md #26: an exception message quoting such a URL is masked alike."""
    text = redact_text(f"GET https://api.example/p?{STRIPE} failed; see /t/{JWT}")
    assert STRIPE not in text and JWT not in text


def test_urls_with_path_tokens_are_not_kept_as_cache_keys() -> None:
    """Plain URLs are memoised; one holding a token in its path must not be."""
    from integrations.redaction import _redact_plain_url

    _redact_plain_url.cache_clear()
    redact_url(f"https://api.example/v1/sessions/{JWT}")
    redact_url("https://api.example/v1/items")
    assert _redact_plain_url.cache_info().currsize == 1
