from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations.logs import prune_call_logs


class Command(BaseCommand):
    help = "Delete call logs older than --older-than DAYS, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--batch-size", type=int, default=10_000)

    def handle(self, *args: Any, older_than: int, batch_size: int, **options: Any) -> None:
        deleted = prune_call_logs(older_than_days=older_than, batch_size=batch_size)
        self.stderr.write(self.style.SUCCESS(f"Deleted {deleted} call log row(s)."))
