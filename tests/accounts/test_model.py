"""The Account model: keys, declared per-account options, messages naming the account
and the field (docs/reference.md, Accounts; security.md #31)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from integrations.accounts import AccountScope, account_errors, build_account_provider
from integrations.models import Account, Integration
from tests.accounts.helpers import github_app

pytestmark = pytest.mark.django_db


def messages(error: ValidationError) -> str:
    return " | ".join(m for ms in error.message_dict.values() for m in ms)


def test_account_saved_with_its_installation() -> None:
    app = github_app()
    account = Account.objects.create(
        integration=app, key="acme", options={"installation_id": "4711"}
    )
    assert account.pk and str(account) == "acme"


@pytest.mark.parametrize(
    ("key", "options", "expected"),
    [
        ("acme", {"installation_id": "47x1"}, "account acme: options.installation_id: "),
        ("acme", {"subject": "alice"}, "subject cannot be set per account for github_app"),
        ("acme", {}, "account acme: options.installation_id: is required"),
        ("acme", [], "account acme: must be a JSON object"),
        ("bad key!", {"installation_id": "1"}, "Must be 1-100 characters"),
        ("x" * 101, {"installation_id": "1"}, "at most 100 characters"),
    ],
)
def test_invalid_accounts_refused_naming_account_and_field(
    key: str, options: Any, expected: str
) -> None:
    app = github_app()
    with pytest.raises(ValidationError) as caught:
        Account.objects.create(integration=app, key=key, options=options)
    assert expected in messages(caught.value)
    assert not Account.objects.exists()


def test_duplicate_key_refused_per_integration_only() -> None:
    first, second = github_app("one"), github_app("two")
    Account.objects.create(integration=first, key="acme", options={"installation_id": "1"})
    Account.objects.create(integration=second, key="acme", options={"installation_id": "2"})
    with pytest.raises(ValidationError, match="already exists"):
        Account.objects.create(integration=first, key="acme", options={"installation_id": "3"})


def test_installation_of_the_integration_makes_account_options_optional() -> None:
    app = github_app(installation_id="99")
    Account.objects.create(integration=app, key="default-user")


def test_claims_merge_over_the_token_claims(make_integration: Callable[..., Integration]) -> None:
    """jwt_bearer: {"sub": "alice"} on the account, the integration's iss/aud kept."""
    integration = make_integration()
    errors = account_errors(integration, {"claims": {"sub": "alice", "exp": 1}})
    assert errors == {"options.claims": ["exp are set by the app, not here"]}
    provider = build_account_provider(integration, "alice", {"claims": {"sub": "alice"}})
    assert provider.options["claims"] == {"iss": "shop", "aud": "billing", "sub": "alice"}


def test_account_scope_keys_tokens_per_account(
    make_integration: Callable[..., Integration],
) -> None:
    """security.md #31: another account, or other options, is another cache key; no
    account's key is a prefix of another's (the cache drops older versions by prefix)."""
    integration = make_integration()
    plain = build_account_provider(integration, "a", {}).cache_key
    other = build_account_provider(integration, "a:b", {}).cache_key
    edited = build_account_provider(integration, "a", {"claims": {"sub": "x"}}).cache_key
    assert len({plain, other, edited}) == 3
    assert "billing[a]" in plain and not other.startswith(plain.rsplit(":", 1)[0] + ":")
    assert AccountScope(integration, "a", {}).get_secrets() == integration.get_secrets()
