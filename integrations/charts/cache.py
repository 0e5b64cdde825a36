"""Settled buckets kept in Django's cache, so a chart's query reads only the buckets
that can still change: the current hour or day, not 30 days of rows.

A bucket is *settled* SETTLE seconds after its end. A call-log row carries the time its
call ended and reaches the table within that (the background writer's queue, a caller's
open transaction); after it, a bucket's rows change only by pruning, which forgets the
cached buckets (``forget``). Nothing here runs when a call is logged: buckets are cached
when a chart is drawn.

One cache entry per integration and period (``INTEGRATIONS_CHART_CACHE`` names the
cache; "" caches nothing), holding the settled buckets of the window it was drawn for,
by start time. A window drawn later reuses the buckets it shares; one drawn in a time
zone with other bucket edges shares none, reads its window afresh and replaces the
entry. An entry expires a window's length (plus SETTLE) after it was written. Its
numbers are an uncached query's, float for float: percentiles are never merged, each
bucket's are computed once from its own rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from django.core.cache import BaseCache, caches

from ..settings import app_settings
from .periods import DAYS, HOURS, Bucket, Period

SETTLE = 300  # seconds after a bucket's end before it is cached
VERSION = 1  # in the keys: a release that changes what an entry holds uses new keys

logger = logging.getLogger(__name__)

# A cached bucket: (calls, failures, p50, p95).
Cached = tuple[int, int, float | None, float | None]


def backend() -> BaseCache | None:
    alias = app_settings.CHART_CACHE
    return caches[alias] if alias else None


def key(pk: int, period: Period) -> str:
    return f"integrations:charts:v{VERSION}:{period.key}:{pk}"


def load(ids: Sequence[int], period: Period, starts: Sequence[datetime]
         ) -> dict[int, dict[int, Bucket]]:
    """Each integration's cached buckets of this window, by bucket number (one cache
    round trip)."""
    store = backend()
    if store is None or not ids:
        return {pk: {} for pk in ids}
    try:
        entries: Mapping[str, dict[int, Cached]] = store.get_many(
            [key(pk, period) for pk in ids])
    except Exception as exc:  # a cache server down must not take the admin page with it
        unavailable(exc)
        return {pk: {} for pk in ids}
    number = {int(start.timestamp()): n for n, start in enumerate(starts)}
    found: dict[int, dict[int, Bucket]] = {}
    for pk in ids:
        entry = entries.get(key(pk, period)) or {}
        found[pk] = {
            number[at]: Bucket(starts[number[at]], *values)
            for at, values in entry.items() if at in number
        }
    return found


def store(found: Mapping[int, Sequence[Bucket]], bounds: Sequence[datetime], period: Period,
          now: datetime, first_missing: Mapping[int, int]) -> None:
    """Cache each integration's settled buckets, if more are settled than were cached
    (one cache round trip, none when nothing new settled)."""
    cache = backend()
    if cache is None:
        return
    settled = sum(1 for end in bounds[1:] if end + timedelta(seconds=SETTLE) <= now)
    entries = {
        key(pk, period): {
            int(b.start.timestamp()): (b.calls, b.failures, b.p50, b.p95)
            for b in buckets[:settled]
        }
        for pk, buckets in found.items() if settled > first_missing[pk]
    }
    if entries:
        try:
            cache.set_many(entries, timeout=period.width * period.count + SETTLE)
        except Exception as exc:
            unavailable(exc)


def unavailable(exc: Exception) -> None:
    # The type only: a cache client's message may carry its server URL and password.
    logger.warning("Chart cache %r unavailable (%s): charts read the call log instead",
                   app_settings.CHART_CACHE, type(exc).__name__)


def forget(ids: Iterable[int]) -> None:
    """Drop the cached buckets of these integrations (after their rows were deleted)."""
    cache = backend()
    if cache is not None:
        cache.delete_many([key(pk, period) for pk in ids for period in (HOURS, DAYS)])
