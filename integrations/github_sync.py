"""GitHub App installations as accounts (docs/reference.md, Accounts: ``--sync``).

``GET {base_url}/app/installations`` with the app's own JWT, through the guarded
session (address guard, TLS, deadline, size cap), every page followed through the
``Link`` header's ``rel="next"``. A next link to another origin is refused: the app JWT
goes only to the integration's own host. Each installation becomes an account keyed by
its ``account.login`` with ``options.installation_id``; accounts whose installation is
gone are disabled, never deleted (their call log stays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from .accounts import key_problem
from .exceptions import IntegrationError, InvalidConfiguration
from .http.session import create_session
from .models import Account, Integration
from .redaction import redact_url
from .tokens.base import JWTProvider
from .tokens.registry import build_provider
from .urlpaths import join_url, origin

PER_PAGE = 100
# 100 per page: 100,000 installations. A next link past that is a loop, not a list.
MAX_PAGES = 1000


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    # Kept accounts installed again (a new installation id) but disabled: by an earlier
    # sync or by hand, which the sync cannot tell apart, so an operator enables them.
    reinstalled_disabled: list[str] = field(default_factory=list)


def list_installations(integration: Integration) -> dict[str, str]:
    """The app's installations as {account login: installation id}, every page."""
    if integration.auth_type != "github_app":
        raise InvalidConfiguration(
            f"--sync lists GitHub App installations; this integration is {integration.auth_type}",
            entry=integration.slug,
        )
    provider = build_provider(integration)
    assert isinstance(provider, JWTProvider)
    http = create_session(ca_bundle=integration.ca_bundle)
    home = origin(integration.base_url)
    url: str | None = join_url(integration.base_url, f"app/installations?per_page={PER_PAGE}")
    found: dict[str, str] = {}
    pages = 0
    while url:
        pages += 1
        if pages > MAX_PAGES:
            raise IntegrationError(f"{integration.slug}: more than {MAX_PAGES} pages")
        if origin(url) != home:
            raise IntegrationError(
                f"{integration.slug}: next page {redact_url(url)} is on another host; refused"
            )
        app_jwt, _ = provider.mint()
        response = http.get(
            url,
            headers={
                "Authorization": f"Bearer {app_jwt}",
                "Accept": "application/vnd.github+json",
            },
            timeout=provider.timeout,
            allow_redirects=False,
        )
        if response.status_code != 200:
            raise IntegrationError(
                f"{integration.slug}: GET {redact_url(url)} answered HTTP {response.status_code}"
            )
        found.update(parse_page(integration.slug, response.json()))
        url = response.links.get("next", {}).get("url")
    return found


def parse_page(slug: str, page: Any) -> dict[str, str]:
    if not isinstance(page, list):
        raise IntegrationError(f"{slug}: app/installations did not answer with a list")
    found: dict[str, str] = {}
    for item in page:
        installation = item.get("id") if isinstance(item, dict) else None
        account = item.get("account") if isinstance(item, dict) else None
        login = account.get("login") if isinstance(account, dict) else None
        if not isinstance(installation, int) or isinstance(installation, bool):
            raise IntegrationError(f"{slug}: an installation without a numeric id")
        if key_problem(login):
            raise IntegrationError(f"{slug}: installation {installation} has no usable login")
        found[str(login)] = str(installation)
    return found


def sync_installations(integration: Integration, *, dry_run: bool = False) -> SyncResult:
    """Make the accounts match the app's installations: add the new ones, keep (and
    point at their current installation) the known ones, disable those gone."""
    installations = list_installations(integration)
    result = SyncResult()
    with transaction.atomic():
        stored = {
            a.key: a for a in Account.objects.select_for_update().filter(integration=integration)
        }
        by_installation = {
            str(a.options.get("installation_id")): a
            for a in stored.values()
            if isinstance(a.options, dict)
        }
        now = timezone.now()
        new: list[Account] = []
        changed: list[Account] = []
        seen: set[int] = set()
        for login, installation in sorted(installations.items()):
            account = by_installation.get(installation) or stored.get(login)
            if account is None:
                new.append(
                    Account(
                        integration=integration,
                        key=login,
                        name=login,
                        options={"installation_id": installation},
                    )
                )
                result.added.append(login)
                continue
            seen.add(account.pk)
            result.kept.append(account.key)
            if account.options.get("installation_id") != installation:
                account.options = {**account.options, "installation_id": installation}
                account.updated_at = now
                changed.append(account)
                if not account.enabled:
                    result.reinstalled_disabled.append(account.key)
        for account in stored.values():
            if account.pk not in seen and account.enabled:
                account.enabled = False
                account.updated_at = now
                changed.append(account)
                result.disabled.append(account.key)
        if not dry_run:
            Account.objects.bulk_create(new, batch_size=500)
            Account.objects.bulk_update(
                changed, ["options", "enabled", "updated_at"], batch_size=500
            )
    return result
