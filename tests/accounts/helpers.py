"""Integrations with accounts for the tests in this folder (security.md #31)."""

from __future__ import annotations

from typing import Any

from integrations.models import Account, Integration
from tests.keys import rsa_pem


def github_app(
    slug: str = "gh", *, base_url: str = "http://127.0.0.1:9/api/v3/", **auth: Any
) -> Integration:
    """A saved github_app integration without an installation of its own."""
    integration = Integration(
        slug=slug,
        name=slug.upper(),
        base_url=base_url,
        auth_type="github_app",
        auth_config={"app_id": "Iv1.app", **auth},
        test_request={"method": "GET", "path": "installation/repositories"},
    )
    integration.set_secrets({"private_key": rsa_pem()})
    integration.full_clean()
    integration.save()
    return integration


def add_accounts(integration: Integration, count: int, *, start: int = 1) -> list[Account]:
    """``count`` accounts acct-N with installation_id N (validated once, written in bulk)."""
    accounts = [
        Account(
            integration=integration,
            key=f"acct-{n}",
            name=f"Account {n}",
            options={"installation_id": str(n)},
        )
        for n in range(start, start + count)
    ]
    accounts[0].full_clean()
    return Account.objects.bulk_create(accounts)
