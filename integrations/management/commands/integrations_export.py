from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.configfile import export_config
from integrations.exceptions import IntegrationError


class Command(BaseCommand):
    help = "Write the configuration file to stdout; secret values are written as null."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", metavar="SLUG")

    def handle(self, *args: Any, slugs: list[str], **options: Any) -> None:
        try:
            data = export_config(slugs)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
