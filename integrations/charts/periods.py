"""What a chart covers: its period (how many buckets of what size) and its buckets'
numbers.

Buckets follow the current time zone's clock: hours start on the hour (at :30 UTC in a
zone with a half-hour offset) and the window is the 24 real hours ending with the
current one, so around a DST change an hour's label repeats or is skipped, as the clock
does; days run from one local midnight to the next, so the day a DST change happens on
has 23 or 25 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone


@dataclass(frozen=True)
class Period:
    key: str  # for element ids and cache keys
    label: str
    width: int  # seconds per bucket (a day's is nominal: local days may have 23 or 25 h)
    count: int
    tick_every: int  # an axis label every this many buckets
    tick_format: str  # strftime of a bucket's start, local time


HOURS = Period("24h", "last 24 hours", 3600, 24, 6, "%H:%M")
DAYS = Period("30d", "last 30 days", 86400, 30, 7, "%b %d")


@dataclass(frozen=True)
class Bucket:
    start: datetime
    calls: int = 0
    failures: int = 0
    p50: float | None = None  # milliseconds; None without calls
    p95: float | None = None


def edges(period: Period, now: datetime | None = None) -> list[datetime]:
    """The window's ``period.count + 1`` bucket edges, oldest first: bucket n holds the
    instants from ``edges[n]`` up to (not including) ``edges[n + 1]``; the last bucket
    holds ``now``."""
    local = timezone.localtime(now or timezone.now())
    if period.width == 86400:
        today = local.date()
        # Each local midnight on its own (wall-clock arithmetic would carry one day's
        # UTC offset into the others).
        return [
            datetime.combine(today - timedelta(days=period.count - 1 - n), time(0),
                             tzinfo=local.tzinfo).astimezone(UTC)
            for n in range(period.count + 1)
        ]
    # The hour began at this instant (the local hour's fold kept); from there real hours.
    end = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC) + timedelta(
        seconds=period.width)
    return [end - timedelta(seconds=period.width * (period.count - n))
            for n in range(period.count + 1)]

