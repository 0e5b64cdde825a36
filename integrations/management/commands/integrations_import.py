from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.config import import_config, read_file
from integrations.exceptions import IntegrationError


class Command(BaseCommand):
    help = "Upsert integrations from a configuration file; all entries or none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON configuration file (SPEC: Configuration file)")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        try:
            result = import_config(read_file(file), base_dir=Path(file).resolve().parent)
        except IntegrationError as exc:
            raise CommandError(f"nothing imported: {exc}", returncode=1) from None
        self.stderr.write(
            self.style.SUCCESS(
                f"Imported {len(result.created)} new and {len(result.updated)} updated "
                "integration(s)."
            )
        )
