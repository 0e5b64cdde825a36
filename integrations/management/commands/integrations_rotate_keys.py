from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.keys import rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of INTEGRATIONS_ENCRYPTION_KEYS. "
        "Idempotent; afterwards the older keys can be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=100)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        report = rotate_all(batch_size=batch_size)
        for slug, reason in report.failed:
            self.stderr.write(self.style.ERROR(f"{slug}: {reason}"))
        self.stderr.write(
            f"Rotated {report.rotated}, already current {report.current}, "
            f"failed {len(report.failed)}."
        )
        if report.failed:
            raise CommandError(
                f"{len(report.failed)} secret(s) could not be decrypted and were left untouched",
                returncode=1,
            )
