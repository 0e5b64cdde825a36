from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import charts
from integrations.calllog import prune_call_logs
from integrations.models import Integration
from integrations.settings import app_settings

HELP = (
    "Delete call logs older than --older-than DAYS (default: "
    "INTEGRATIONS_LOG_RETENTION_DAYS), in batches."
)


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="Age in days; 0 deletes every row. Default: INTEGRATIONS_LOG_RETENTION_DAYS.",
        )
        parser.add_argument("--batch-size", type=int, default=10_000)

    def handle(
        self, *args: Any, older_than: int | None, batch_size: int, **options: Any
    ) -> None:
        days = app_settings.LOG_RETENTION_DAYS if older_than is None else older_than
        if not isinstance(days, int) or days < 0:
            raise CommandError(
                "--older-than must be a whole number of days, 0 or more", returncode=2
            )
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1", returncode=2)
        deleted = prune_call_logs(older_than_days=days, batch_size=batch_size)
        if deleted and days < charts.DAYS.count:
            # Rows went from days the admin charts still show: drop their cached buckets.
            charts.forget(Integration.objects.values_list("pk", flat=True))
        self.stderr.write(
            self.style.SUCCESS(f"Deleted {deleted} call log row(s) older than {days} day(s).")
        )
