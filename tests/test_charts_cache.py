"""Admin charts' cache of settled buckets: the same numbers as an uncached query, at the
same query count, with only the unsettled buckets read from the call log."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from integrations import charts
from integrations.charts import cache
from integrations.models import CallLog
from tests.test_charts import NOW, add_calls


@pytest.fixture
def billing(make_integration):
    return make_integration("billing")


def uncached(ids, period, now):
    with override_settings(INTEGRATIONS_CHART_CACHE=""):
        return charts.series(ids, period, now=now)


def random_calls(integration, seed, count=400, days=31):
    rng = random.Random(seed)
    add_calls(integration, [
        (NOW - timedelta(seconds=rng.randint(0, days * 86400)), rng.randint(1, 3000),
         rng.random() > 0.15)
        for _ in range(count)
    ])


@pytest.mark.parametrize("period", [charts.HOURS, charts.DAYS], ids=lambda p: p.key)
def test_cold_warm_and_uncached_agree(make_integration, period):
    billing = make_integration("billing")
    random_calls(billing, seed=3, days=2 if period is charts.HOURS else 31)
    expected = uncached([billing.pk], period, NOW)
    assert charts.series([billing.pk], period, now=NOW) == expected  # cold: fills the cache
    assert cache.backend().get(cache.key(billing.pk, period))
    assert charts.series([billing.pk], period, now=NOW) == expected  # warm


def test_settled_buckets_come_from_the_cache_and_the_current_one_from_the_log(billing):
    """The warm query reads only the current hour: a row slipped into a settled hour
    afterwards is not seen (rows of a settled hour do not appear later in practice),
    one in the current hour is."""
    add_calls(billing, [(NOW - timedelta(hours=3), 100, True), (NOW, 10, True)])
    charts.series([billing.pk], charts.HOURS, now=NOW)
    add_calls(billing, [(NOW - timedelta(hours=3), 900, False), (NOW, 30, False)])
    with CaptureQueriesContext(connection) as queries:
        buckets = charts.series([billing.pk], charts.HOURS, now=NOW)[billing.pk]
    assert len(queries) == 1
    assert (buckets[-4].calls, buckets[-4].failures) == (1, 0)
    assert (buckets[-1].calls, buckets[-1].failures, buckets[-1].p50) == (2, 1, 20)

    charts.forget([billing.pk])
    assert charts.series([billing.pk], charts.HOURS, now=NOW) == uncached(
        [billing.pk], charts.HOURS, NOW)


def test_a_bucket_is_cached_only_once_settled(billing):
    """The previous hour ended 30 minutes ago (NOW is 12:30) but a row may still be on its
    way for SETTLE seconds after its end: at 12:03 the 11:00 hour is read live."""
    early = NOW.replace(minute=3)
    assert cache.SETTLE > 180
    add_calls(billing, [(early - timedelta(minutes=10), 40, True)])
    charts.series([billing.pk], charts.HOURS, now=early)
    add_calls(billing, [(early - timedelta(minutes=5), 60, True)])  # late row, 11:58
    buckets = charts.series([billing.pk], charts.HOURS, now=early)[billing.pk]
    assert (buckets[-2].calls, buckets[-2].p50) == (2, 50)


def test_the_window_moves_on_reusing_what_it_shares(billing):
    random_calls(billing, seed=5)
    charts.series([billing.pk], charts.DAYS, now=NOW)
    later = NOW + timedelta(days=2, hours=3)
    add_calls(billing, [(later - timedelta(hours=1), 77, False)])
    assert charts.series([billing.pk], charts.DAYS, now=later) == uncached(
        [billing.pk], charts.DAYS, later)
    entry = cache.backend().get(cache.key(billing.pk, charts.DAYS))
    assert len(entry) == 29  # the window's settled days, none older


@pytest.mark.parametrize("time_zone", ["UTC", "Europe/Berlin", "Asia/Colombo"])
def test_time_zones_share_only_the_buckets_they_have_in_common(billing, time_zone):
    random_calls(billing, seed=9)
    with override_settings(TIME_ZONE="Asia/Kolkata"):  # +05:30, as Colombo, unlike the others
        charts.series([billing.pk], charts.DAYS, now=NOW)
    with override_settings(TIME_ZONE=time_zone):
        assert charts.series([billing.pk], charts.DAYS, now=NOW) == uncached(
            [billing.pk], charts.DAYS, NOW)


def test_a_page_with_cached_and_new_integrations_is_still_one_query(make_integration):
    """Each integration is read from its own first missing bucket, in one query."""
    rows = [make_integration(f"api-{n}") for n in range(4)]
    for n, row in enumerate(rows):
        random_calls(row, seed=n, count=80, days=2)
    charts.sparklines([row.pk for row in rows[:2]], now=NOW)
    with CaptureQueriesContext(connection) as queries:
        lines = charts.series([row.pk for row in rows], charts.HOURS, now=NOW)
    assert len(queries) == 1
    assert lines == uncached([row.pk for row in rows], charts.HOURS, NOW)


def test_panel_queries_stay_two_cold_and_warm(billing, django_assert_num_queries):
    random_calls(billing, seed=1)
    with django_assert_num_queries(2):
        cold = charts.panel(billing, now=NOW)
    with django_assert_num_queries(2):
        assert charts.panel(billing, now=NOW) == cold


def test_pruning_inside_the_window_forgets_the_cached_buckets(billing):
    recent = datetime.now(UTC)
    add_calls(billing, [(recent - timedelta(days=d), 10 * d, True) for d in (2, 10, 20)])
    assert sum(b.calls for b in charts.series([billing.pk], charts.DAYS)[billing.pk]) == 3
    call_command("integrations_prune_logs", "--older-than", "5")
    assert CallLog.objects.count() == 1
    assert sum(b.calls for b in charts.series([billing.pk], charts.DAYS)[billing.pk]) == 1


def test_pruning_outside_the_window_keeps_them(billing):
    recent = datetime.now(UTC)
    add_calls(billing, [(recent - timedelta(days=d), 10 * d, True) for d in (2, 40)])
    charts.series([billing.pk], charts.DAYS)
    call_command("integrations_prune_logs", "--older-than", "30")
    assert cache.backend().get(cache.key(billing.pk, charts.DAYS))


class DownCache:
    """A cache whose server is gone: every call raises."""

    def get_many(self, keys):
        raise ConnectionError("redis://:hunter2@cache:6379 refused")

    set_many = get_many


def test_a_cache_that_is_down_only_costs_the_whole_window(billing, monkeypatch, caplog):
    random_calls(billing, seed=2)
    monkeypatch.setattr(cache, "backend", DownCache)
    assert charts.series([billing.pk], charts.DAYS, now=NOW) == uncached(
        [billing.pk], charts.DAYS, NOW)
    assert "Chart cache 'default' unavailable (ConnectionError)" in caplog.text
    assert "hunter2" not in caplog.text
