"""What a chart covers: its period (bucket width and count) and its buckets' numbers.

Buckets are fixed-width in seconds from an aligned start: hours on the hour, days from
midnight in the current time zone. A day bucket is 86,400 s, so a DST change inside the
30 days shifts the later days' edges by that hour (they run 01:00 to 01:00 local time)
until the change leaves the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone


@dataclass(frozen=True)
class Period:
    key: str  # for element ids and cache keys
    label: str
    width: int  # seconds per bucket
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


def window_start(period: Period, now: datetime | None = None) -> datetime:
    """Start of the window whose last bucket holds ``now``."""
    now = timezone.localtime(now or timezone.now())
    if period.width == 86400:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    else:
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(seconds=period.width * period.count)


def bucket_starts(period: Period, start: datetime) -> list[datetime]:
    """The start of each of the window's buckets, oldest first."""
    return [start + timedelta(seconds=period.width * n) for n in range(period.count)]
