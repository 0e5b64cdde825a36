"""The configuration file against arbitrary JSON: import succeeds or refuses in one
clean line, and values a database cannot store are refused naming the field
(reference.md: Configuration file; security.md #26)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.models import Integration
from tests.config_entries import entry, refused, secret_env, write  # noqa: F401
from tests.keys import CANARY, HMAC_SECRET

pytestmark = pytest.mark.django_db


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
AUTH_KEYS = [
    "type",
    "algorithm",
    "key",
    "key_id",
    "claims",
    "lifetime",
    "clock_skew",
    "scheme",
    "header_name",
    "private_key",
    "app_id",
    "installation_id",
    "token_url",
    "scope",
]
ENTRY_KEYS = ["slug", "name", "base_url", "enabled", "headers", "timeout", "log_calls",
              "test_request", "auth", "follow_redirects"]  # fmt: skip


@st.composite
def fuzzed_entries(draw: st.DrawFn) -> dict[str, Any]:
    """A valid entry with some fields replaced by arbitrary JSON."""
    data = entry(draw(st.sampled_from(["billing", "crm"])))
    for name in draw(st.lists(st.sampled_from(ENTRY_KEYS), max_size=3)):
        data[name] = draw(JSON_VALUES)
    if isinstance(data.get("auth"), dict):
        for name in draw(st.lists(st.sampled_from(AUTH_KEYS), max_size=3)):
            data["auth"][name] = draw(
                JSON_VALUES | st.sampled_from(["HS256", "github_app", "none"])
            )
    return data


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(fuzzed_entries(), min_size=1, max_size=2))
def test_any_json_is_imported_or_refused_cleanly(tmp_path, entries):
    """reference.md import: whatever JSON an entry holds, import either succeeds or raises
    InvalidConfiguration (one line, no secret): never another exception."""
    from integrations.configfile import import_config
    from integrations.exceptions import InvalidConfiguration

    try:
        import_config({"integrations": entries}, base_dir=tmp_path)
    except InvalidConfiguration as exc:
        assert "\n" not in str(exc) and CANARY not in str(exc)


NAN_OR_INFINITY = "NaN and Infinity are not JSON numbers"
NUL = "must not contain NUL characters"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"auth": {"key_id": float("inf")}}, f"billing: auth: {NAN_OR_INFINITY}"),
        (
            {"test_request": {"path": "health", "expect_status": [float("-inf")]}},
            f"billing: test_request: {NAN_OR_INFINITY}",
        ),
        ({"auth": {"claims": {"iss": "sh\x00op", "aud": "b"}}}, f"billing: auth: {NUL}"),
        ({"auth": {"claims": {"\x00": "x", "aud": "b"}}}, f"billing: auth: {NUL}"),
        ({"test_request": {"path": "he\x00alth"}}, f"billing: test_request: {NUL}"),
        ({"name": "Bill\x00ing"}, f"billing: name: {NUL}"),
        ({"slug": "bill\x00ing"}, "entry #1: slug: Enter a valid"),
        ({"name": "Bill\ud800"}, "billing: name: must be valid Unicode"),
        ({"auth": {"claims": {"iss": "\udc00", "aud": "b"}}}, "billing: auth: must be valid"),
    ],
)
def test_values_postgresql_cannot_store_are_refused(tmp_path, monkeypatch, change, message):
    """Python's json accepts NaN, Infinity and lone surrogates, and SQLite keeps NUL
    characters; JSON, UTF-8 and PostgreSQL refuse them. Such an entry is refused naming
    its field, on every database, instead of failing at the query."""
    from integrations.configfile import import_config
    from integrations.exceptions import InvalidConfiguration

    monkeypatch.setenv("BILLING_SECRET", HMAC_SECRET)
    data = entry()
    for name, value in change.items():
        data[name] = {**data[name], **value} if isinstance(data[name], dict) else value
    with pytest.raises(InvalidConfiguration, match=re.escape(message)):
        import_config({"integrations": [data]}, base_dir=tmp_path)
    assert not Integration.objects.exists()


def test_secret_that_is_not_unicode_text_is_refused(tmp_path, monkeypatch):
    """A secret spelled with a lone surrogate in the file, or an environment variable
    holding non-UTF-8 bytes, is refused naming its source (it could not be encrypted)."""
    from integrations.configfile import import_config
    from integrations.exceptions import InvalidConfiguration

    monkeypatch.setenv("NOT_UTF8", "k8Jq2vX9mZ4pL7wR1tY6nB3cF5hD0gS-aE\udcff")
    for key, source in [
        ("k8Jq2vX9mZ4pL7wR1tY6nB3cF5hD0gS-aE\ud800", "the value"),
        ({"env": "NOT_UTF8"}, "environment variable NOT_UTF8"),
    ]:
        data = {"integrations": [entry(auth={"key": key})]}
        with pytest.raises(InvalidConfiguration, match=f"auth.key: {source} is not valid Unicode"):
            import_config(data, base_dir=tmp_path)
    assert not Integration.objects.exists()


def test_unreadable_secret_source_has_its_own_exception_type(tmp_path):
    """Callers of import_config can tell an unreadable secret source (SecretUnavailable,
    an InvalidConfiguration) from other configuration errors."""
    from integrations.configfile import import_config
    from integrations.exceptions import SecretUnavailable

    for secret in ({"env": "NOT_SET_ANYWHERE_42"}, {"file": "missing.pem"}):
        data = {"integrations": [entry(auth={"key": secret})]}
        with pytest.raises(SecretUnavailable, match="billing: auth.key: "):
            import_config(data, base_dir=tmp_path)
