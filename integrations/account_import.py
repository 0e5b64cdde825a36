"""Accounts in the configuration file (docs/reference.md, Accounts): an entry's
``accounts`` upserted by key, never deleted by an import, checked against the
integration as imported; part of ``configfile``'s one transaction."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .accounts import account_errors, parse_account_entries, raise_account_errors
from .exceptions import InvalidConfiguration
from .models import Account, Integration


def plan_accounts(integration: Integration, value: Any, *, auth_changed: bool) -> list[Account]:
    """The entry's accounts as unsaved upserts, each checked against the integration
    as imported. When its auth changed, the stored accounts the file does not name are
    checked too: an import never leaves an account that cannot be used."""
    slug = integration.slug
    items = [] if value is None else parse_account_entries(value, entry=slug)
    stored: dict[str, Account] = {}
    if integration.pk and (items or auth_changed):
        stored = {account.key: account for account in integration.accounts.all()}
    planned: list[Account] = []
    for item in items:
        key = item["key"]
        account = stored.get(key) or Account(integration=integration, key=key)
        account.name = item.get("name", account.name)
        account.enabled = item.get("enabled", account.enabled)
        account.options = item.get("options", account.options)
        raise_account_errors(account_errors(integration, account.options), entry=slug, key=key)
        planned.append(account)
    if auth_changed:
        named = {item["key"] for item in items}
        for key, account in stored.items():
            if key not in named:
                errors = account_errors(integration, account.options)
                raise_account_errors(errors, entry=slug, key=key)
    return planned


def save_accounts(integration: Integration, accounts: list[Account]) -> tuple[int, int]:
    """Write checked upserts in two statements (never a delete): (created, updated)."""
    now = timezone.now()
    new = [account for account in accounts if account.pk is None]
    old = [account for account in accounts if account.pk is not None]
    for account in new:
        account.integration = integration  # the integration has its pk only now
    for account in old:
        account.updated_at = now
    try:
        with transaction.atomic():
            Account.objects.bulk_create(new, batch_size=500)
    except IntegrityError:
        raise InvalidConfiguration(
            "an account was created by someone else during this import; run it again",
            entry=integration.slug,
        ) from None
    Account.objects.bulk_update(old, ["name", "enabled", "options", "updated_at"], batch_size=500)
    return len(new), len(old)
