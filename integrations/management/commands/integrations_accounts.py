"""``integrations_accounts SLUG [--json] [--sync]`` (docs/reference.md, Accounts)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from integrations.calllog import describe_error
from integrations.exceptions import IntegrationError, InvalidConfiguration
from integrations.github_sync import sync_installations
from integrations.management.cli import integration_by_slug
from integrations.models import Account, Integration


class Command(BaseCommand):
    help = (
        "List an integration's accounts with their last test result, or (--sync, "
        "github_app) make them match the app's installations. Exit 0 ok, 1 the sync "
        "failed, 2 usage error or unknown slug."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true", help="JSON on stdout")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="github_app: add an account per installation, disable those gone",
        )

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        integration = integration_by_slug(slug)
        if options["sync"]:
            self.sync(integration, as_json=options["json"])
        else:
            self.list(integration, as_json=options["json"])

    def list(self, integration: Integration, *, as_json: bool) -> None:
        # One query, however many accounts: the last test comes as annotations.
        accounts: QuerySet[Any] = (
            Account.objects.filter(integration=integration).with_last_test().order_by("key")
        )
        rows = [describe(account) for account in accounts]
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        for row in rows:
            last = row["last_test"]
            if last is None:
                result = "never tested"
            else:
                status = last["status_code"] if last["status_code"] is not None else "-"
                verdict = "ok" if last["ok"] else "FAIL"
                result = f"{verdict} {status} at {last['created_at']:%Y-%m-%d %H:%M:%S}"
            state = "enabled" if row["enabled"] else "disabled"
            self.stdout.write(f"{row['key']}\t{state}\t{result}\t{row['name']}")
        self.stderr.write(f"{len(rows)} account(s) of {integration.slug}.")

    def sync(self, integration: Integration, *, as_json: bool) -> None:
        try:
            result = sync_installations(integration)
        except InvalidConfiguration as exc:
            raise CommandError(str(exc), returncode=2) from None
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        except Exception as exc:  # unreachable, timed out, not JSON
            raise CommandError(f"sync failed: {describe_error(exc)}", returncode=1) from None
        for key in result.added:
            self.stderr.write(f"added     {key}")
        for key in result.disabled:
            self.stderr.write(f"disabled  {key}")
        for key in result.reinstalled_disabled:
            self.stderr.write(f"installed again, still disabled  {key} (enable it to test it)")
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "added": result.added,
                        "kept": result.kept,
                        "disabled": result.disabled,
                        "reinstalled_disabled": result.reinstalled_disabled,
                    },
                    indent=2,
                )
            )
        self.stderr.write(
            f"{integration.slug}: {len(result.added)} added, {len(result.kept)} kept, "
            f"{len(result.disabled)} disabled."
        )


def describe(account: Any) -> dict[str, Any]:
    """An account as listed: no secret (accounts hold none), its last test call."""
    last = None
    if account.last_test_id is not None:
        last = {
            "ok": account.last_test_ok,
            "status_code": account.last_test_status_code,
            "created_at": account.last_test_created_at,
            "error": account.last_test_error or None,
        }
    return {
        "key": account.key,
        "name": account.name,
        "enabled": account.enabled,
        "options": account.options,
        "last_test": last,
    }
