"""Call-log retention (security.md #27)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import CallLog


def prune_call_logs(*, older_than_days: int, batch_size: int = 10_000) -> int:
    """Delete rows older than the cutoff, a batch per short transaction, so no long
    lock is held however many rows there are."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                CallLog.objects.filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            deleted += CallLog.objects.filter(pk__in=ids).delete()[0]
