"""Latency and failure charts from the call log, for the admin (docs/reference.md
"Operations"): numbers aggregated in the database (``aggregates.series``), settled
buckets kept in the cache (``cache``), drawn server-side as inline SVG (``svg``), at
constant query count.

- ``panel(integration)``: the change page's charts (p50/p95 latency and failures per
  hour over 24 h and per day over 30 days) as safe HTML; two queries.
- ``sparklines(ids)``: a 24 h sparkline per integration id for the changelist; one
  query for the whole page.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString

from ..models import Integration, LogCalls
from . import svg
from .aggregates import series
from .cache import forget
from .periods import DAYS, HOURS, Bucket, Period

__all__ = ["DAYS", "HOURS", "Bucket", "Period", "forget", "panel", "series", "sparklines"]

TEMPLATE = "admin/integrations/charts_panel.html"


def panel(integration: Integration, *, now: datetime | None = None) -> SafeString:
    """The change page's charts for ``integration`` (two queries)."""
    name = str(integration)
    periods = []
    for period in (HOURS, DAYS):
        buckets = series([integration.pk], period, now=now)[integration.pk]
        prefix = f"integrations-chart-{integration.pk}-{period.key}"
        periods.append({
            "period": period,
            "id": prefix,
            "bucket": "hour" if period.width < 86400 else "day",
            "latency": svg.latency(buckets, period, f"{prefix}-latency", name),
            "failures": svg.failures(buckets, period, f"{prefix}-failures", name),
            "rows": table_rows(buckets, period),
        })
    return render_to_string(TEMPLATE, {
        "periods": periods,
        "time_zone": timezone.get_current_timezone_name(),
        "errors_only": integration.log_calls == LogCalls.ERRORS,
        "not_logged": integration.log_calls == LogCalls.NONE,
    })


def sparklines(ids: Iterable[int], *, now: datetime | None = None) -> dict[int, SafeString]:
    """A 24 h sparkline per integration id (ids without calls get an empty one)."""
    found = series(ids, HOURS, now=now)
    return {pk: svg.sparkline(buckets) for pk, buckets in found.items()}


def table_rows(buckets: list[Bucket], period: Period) -> list[tuple[str, str, str, str, str]]:
    """The chart's numbers as text: the table under each chart, for screen readers and
    anyone who wants the figures."""
    fmt = "%Y-%m-%d %H:%M" if period.width < 86400 else "%Y-%m-%d"
    return [
        (
            timezone.localtime(bucket.start).strftime(fmt),
            f"{bucket.calls:,}",
            f"{bucket.failures:,}",
            svg.milliseconds(bucket.p50),
            svg.milliseconds(bucket.p95),
        )
        for bucket in buckets
    ]
