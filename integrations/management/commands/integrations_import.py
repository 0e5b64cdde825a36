from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.certificates import stored_certificate
from integrations.configfile import import_config, read_file
from integrations.exceptions import IntegrationError
from integrations.models import Integration


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
        if not dry_run:
            self.warn_certificates(result.created + result.updated)

    def warn_certificates(self, slugs: list[str]) -> None:
        """A client certificate that expires within 30 days is imported, and said so
        (as the admin form says it): the import is when someone can still renew it."""
        for integration in Integration.objects.filter(slug__in=slugs).order_by("slug"):
            try:
                certificate = stored_certificate(integration)
            except IntegrationError:
                continue  # refused on import already; nothing new to say here
            for warning in certificate.warnings if certificate else ():
                self.stderr.write(self.style.WARNING(f"warning: {integration.slug}: {warning}"))


def describe(label: str, slugs: list[str]) -> str:
    return f"\n  {label}: {', '.join(slugs)}" if slugs else ""


def accounts(created: int, updated: int) -> str:
    """The accounts line, when the file has any (an import never deletes one)."""
    return f"\n  accounts: {created} new, {updated} updated" if created or updated else ""
