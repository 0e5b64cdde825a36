from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.exceptions import IntegrationConfigurationError
from integrations.rotation import rotate_all


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of INTEGRATIONS_ENCRYPTION_KEYS. "
        "Idempotent; afterwards the older keys can be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=100,
            help="Rows re-encrypted per transaction (default 100).",
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        try:
            report = rotate_all(batch_size=batch_size)
        except IntegrationConfigurationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        for _slug, reason in report.failed:
            # The reason names the integration already (SecretDecryptionError's message).
            self.stderr.write(self.style.ERROR(reason))
        summary = (
            f"Rotated {report.rotated}, already current {report.current}, "
            f"failed {len(report.failed)}."
        )
        if report.failed:
            self.stderr.write(summary)
            raise CommandError(
                f"{len(report.failed)} secret(s) could not be decrypted and were left "
                "untouched: " + ", ".join(slug for slug, _ in report.failed),
                returncode=1,
            )
        self.stderr.write(self.style.SUCCESS(summary))
