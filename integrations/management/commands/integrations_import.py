from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.configfile import import_config, read_file
from integrations.exceptions import IntegrationError


class Command(BaseCommand):
    help = "Upsert integrations from a configuration file; all entries or none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON configuration file (see docs/reference.md)")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate the whole file (secrets read, keys parsed) and write nothing.",
        )

    def handle(self, *args: Any, file: str, dry_run: bool, **options: Any) -> None:
        try:
            result = import_config(
                read_file(file), base_dir=Path(file).resolve().parent, dry_run=dry_run
            )
        except IntegrationError as exc:
            raise CommandError(f"nothing imported: {exc}", returncode=1) from None
        verb = "Would import" if dry_run else "Imported"
        self.stderr.write(
            self.style.SUCCESS(
                f"{verb} {len(result.created)} new and {len(result.updated)} updated "
                "integration(s)."
                + describe("new", result.created)
                + describe("updated", result.updated)
                + accounts(result.accounts_created, result.accounts_updated)
            )
        )


def describe(label: str, slugs: list[str]) -> str:
    return f"\n  {label}: {', '.join(slugs)}" if slugs else ""


def accounts(created: int, updated: int) -> str:
    """The accounts line, when the file has any (an import never deletes one)."""
    return f"\n  accounts: {created} new, {updated} updated" if created or updated else ""
