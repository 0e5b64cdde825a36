from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import CallLog, CallSource, Integration
from integrations.services import run_test_for


class Command(BaseCommand):
    help = "Fire each integration's test request and log it. Exit 0 all passed, 1 any failed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", metavar="SLUG")
        parser.add_argument("--all", action="store_true", help="every enabled integration")
        parser.add_argument("--json", action="store_true", help="one JSON document on stdout")

    def handle(self, *args: Any, slugs: list[str], **options: Any) -> None:
        integrations = self.select(slugs, options["all"])
        results = [run_test_for(integration, source=CallSource.COMMAND) for integration in integrations]
        for row in results:
            self.report(row)
        if options["json"]:
            self.stdout.write(json.dumps([as_json(row) for row in results], indent=2))
        failed = [row for row in results if not row.ok]
        self.stderr.write(f"{len(results) - len(failed)} passed, {len(failed)} failed")
        if failed:
            raise CommandError(f"{len(failed)} test call(s) failed", returncode=1)

    def select(self, slugs: list[str], every: bool) -> list[Integration]:
        if every == bool(slugs):
            raise CommandError("name one or more slugs, or --all", returncode=2)
        if every:
            return list(Integration.objects.filter(enabled=True).order_by("slug"))
        found = {i.slug: i for i in Integration.objects.filter(slug__in=slugs)}
        unknown = [slug for slug in slugs if slug not in found]
        if unknown:
            raise CommandError(f"unknown integration: {', '.join(unknown)}", returncode=2)
        return [found[slug] for slug in slugs]

    def report(self, row: CallLog) -> None:
        slug = row.integration.slug
        if row.ok:
            self.stderr.write(self.style.SUCCESS(f"ok    {slug}: {row.status_code} in {row.duration_ms} ms"))
        else:
            self.stderr.write(self.style.ERROR(f"FAIL  {slug}: {row.error or row.status_code}"))


def as_json(row: CallLog) -> dict[str, Any]:
    return {
        "slug": row.integration.slug,
        "ok": row.ok,
        "status_code": row.status_code,
        "duration_ms": row.duration_ms,
        "error": row.error or None,
        "url": row.url,
        "attempts": row.attempts,
    }
