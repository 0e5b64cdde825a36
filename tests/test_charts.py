"""Admin charts: buckets from the call log, percentiles as percentile_cont computes them,
constant query counts, and SVG that parses, is titled and carries no script."""

from __future__ import annotations

import random
import statistics
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Case, Value, When
from django.test import override_settings
from django.utils import timezone

from integrations import charts
from integrations.charts import aggregates, periods
from integrations.models import CallLog

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2030, 1, 15, 12, 30, tzinfo=UTC)
HOUR_START = datetime(2030, 1, 14, 13, 0, tzinfo=UTC)  # 24 hourly buckets end at 13:00


def add_calls(integration, rows):
    """rows: (created_at, duration_ms, ok). bulk_create stamps created_at with now, so
    the times are set afterwards in one UPDATE."""
    made = CallLog.objects.bulk_create(
        CallLog(integration=integration, source="api", method="GET", url="https://x/",
                status_code=200 if ok else 503, ok=ok, duration_ms=duration)
        for _, duration, ok in rows
    )
    CallLog.objects.filter(pk__in=[m.pk for m in made]).update(
        created_at=Case(*[When(pk=m.pk, then=Value(row[0])) for m, row in zip(made, rows)])
    )


@pytest.fixture
def billing(make_integration):
    return make_integration("billing", name="Billing <&> \"API\"")


def test_hour_buckets_on_known_data(billing, make_integration):
    other = make_integration("other")
    add_calls(billing, [
        (HOUR_START - timedelta(microseconds=1), 999, False),  # just before the window
        (HOUR_START, 7, True),  # the first bucket includes its start
        *[(datetime(2030, 1, 15, 12, m, tzinfo=UTC), d, True)
          for m, d in ((1, 10), (5, 20), (9, 30), (29, 40))],
        (datetime(2030, 1, 15, 12, 29, 59, 999999, tzinfo=UTC), 100, False),
    ])
    add_calls(other, [(datetime(2030, 1, 15, 12, 10, tzinfo=UTC), 5000, False)])

    buckets = charts.series([billing.pk], charts.HOURS, now=NOW)[billing.pk]

    assert len(buckets) == 24
    assert buckets[0].start == HOUR_START and buckets[-1].start == HOUR_START + timedelta(hours=23)
    assert (buckets[0].calls, buckets[0].failures, buckets[0].p50, buckets[0].p95) == (1, 0, 7, 7)
    last = buckets[-1]
    # percentile_cont over [10, 20, 30, 40, 100]: p50 the middle, p95 = 40 + 0.8 * 60.
    assert (last.calls, last.failures, last.p50) == (5, 1, 30)
    assert last.p95 == pytest.approx(88)
    assert all(b.calls == 0 and b.p50 is None for b in buckets[1:-1])


def test_day_buckets_start_at_midnight(billing):
    add_calls(billing, [
        (datetime(2029, 12, 17, 0, 0, tzinfo=UTC), 10, True),  # first day's first instant
        (datetime(2029, 12, 16, 23, 59, 59, tzinfo=UTC), 10, False),  # before the window
        (datetime(2030, 1, 15, 0, 0, tzinfo=UTC), 50, False),
        (datetime(2030, 1, 15, 23, 0, tzinfo=UTC), 70, True),  # today, later than now
    ])
    buckets = charts.series([billing.pk], charts.DAYS, now=NOW)[billing.pk]
    assert len(buckets) == 30
    assert buckets[0].start == datetime(2029, 12, 17, tzinfo=UTC)
    assert (buckets[0].calls, buckets[0].failures) == (1, 0)
    assert (buckets[-1].calls, buckets[-1].failures, buckets[-1].p50) == (2, 1, 60)
    assert sum(b.calls for b in buckets) == 3


@override_settings(TIME_ZONE="Europe/Berlin")
def test_days_are_local_days_across_a_dst_change(billing):
    """Summer time begins on 2030-03-31 (02:00 CET -> 03:00 CEST): that day has 23 hours
    and every bucket starts at a local midnight, before and after it."""
    now = datetime(2030, 4, 10, 12, 0, tzinfo=UTC)
    add_calls(billing, [
        (datetime(2030, 3, 30, 22, 30, tzinfo=UTC), 10, True),  # Mar 30, 23:30 CET
        (datetime(2030, 3, 30, 23, 30, tzinfo=UTC), 20, True),  # Mar 31, 00:30 CET
        (datetime(2030, 3, 31, 21, 50, tzinfo=UTC), 30, False),  # Mar 31, 23:50 CEST
        (datetime(2030, 3, 31, 22, 10, tzinfo=UTC), 40, True),  # Apr 1, 00:10 CEST
    ])
    buckets = charts.series([billing.pk], charts.DAYS, now=now)[billing.pk]
    local = [timezone.localtime(b.start) for b in buckets]
    assert {(t.hour, t.minute) for t in local} == {(0, 0)}
    assert [t.day for t in local[:3]] == [12, 13, 14] and local[-1].day == 10
    by_day = {t.strftime("%m-%d"): b for t, b in zip(local, buckets, strict=True)}
    assert by_day["03-31"].start - by_day["03-30"].start == timedelta(hours=24)
    assert by_day["04-01"].start - by_day["03-31"].start == timedelta(hours=23)
    assert [(by_day[d].calls, by_day[d].failures) for d in ("03-30", "03-31", "04-01")] == [
        (1, 0), (2, 1), (1, 0)]
    if connection.vendor == "postgresql":  # the other path puts rows in the same buckets
        bounds = periods.edges(charts.DAYS, now)
        assert sorted(aggregates._ranked("default", {billing.pk: 0}, bounds)) == sorted(
            aggregates._percentile_cont("default", {billing.pk: 0}, bounds))


@override_settings(TIME_ZONE="Europe/Berlin")
def test_hours_are_real_hours_across_a_dst_change(billing):
    """Summer time ends on 2030-10-27 (03:00 CEST -> 02:00 CET): the 24 hours hold the
    02:00 hour twice, as the clock does, each with its own calls."""
    now = datetime(2030, 10, 27, 2, 30, tzinfo=UTC)  # 03:30 CET
    add_calls(billing, [
        (datetime(2030, 10, 27, 0, 10, tzinfo=UTC), 10, True),  # 02:10 CEST
        (datetime(2030, 10, 27, 1, 10, tzinfo=UTC), 30, False),  # 02:10 CET
    ])
    buckets = charts.series([billing.pk], charts.HOURS, now=now)[billing.pk]
    assert buckets[-1].start == datetime(2030, 10, 27, 2, 0, tzinfo=UTC)
    assert {b.start.minute for b in buckets} == {0}
    labels = [timezone.localtime(b.start).strftime("%H:%M") for b in buckets]
    assert labels[-4:] == ["01:00", "02:00", "02:00", "03:00"]
    assert [(b.calls, b.p50) for b in buckets[-3:-1]] == [(1, 10), (1, 30)]


@override_settings(TIME_ZONE="Asia/Kolkata")
def test_hours_start_on_the_local_hour():
    """+05:30: local hours start at half past, UTC."""
    bounds = periods.edges(charts.HOURS, NOW)  # 18:00 IST
    assert bounds[-1] == datetime(2030, 1, 15, 13, 30, tzinfo=UTC)
    assert len(bounds) == 25 and bounds[0] == bounds[-1] - timedelta(hours=24)


def test_percentiles_match_linear_interpolation_on_random_data(billing):
    rng = random.Random(14)
    durations = [rng.randint(1, 5000) for _ in range(137)]
    add_calls(billing, [(NOW - timedelta(minutes=1), d, True) for d in durations])
    last = charts.series([billing.pk], charts.HOURS, now=NOW)[billing.pk][-1]
    cuts = statistics.quantiles(durations, n=100, method="inclusive")  # percentile_cont's
    assert last.p50 == pytest.approx(cuts[49])
    assert last.p95 == pytest.approx(cuts[94])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares PostgreSQL's two paths")
def test_window_query_agrees_with_percentile_cont(billing):
    rng = random.Random(7)
    add_calls(billing, [
        (NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 29)), rng.randint(1, 900),
         rng.random() > 0.1)
        for _ in range(500)
    ])
    bounds = periods.edges(charts.DAYS, NOW)
    first = {billing.pk: 0}
    by_sql = sorted(aggregates._percentile_cont("default", first, bounds))
    by_rank = sorted(aggregates._ranked("default", first, bounds))
    assert [row[:4] for row in by_sql] == [row[:4] for row in by_rank]
    for a, b in zip(by_sql, by_rank):
        assert a[4:] == pytest.approx(b[4:])


@pytest.mark.parametrize("calls", [3, 300])
def test_panel_makes_two_queries_whatever_the_rows(billing, django_assert_num_queries, calls):
    add_calls(billing, [(NOW - timedelta(minutes=n * 7), 10 + n, n % 5 != 0)
                        for n in range(calls)])
    with django_assert_num_queries(2):
        html = charts.panel(billing, now=NOW)
    assert html.count("<svg") == 4


@pytest.mark.parametrize("integrations", [2, 25])
def test_sparklines_make_one_query_per_page(make_integration, django_assert_num_queries,
                                            integrations):
    rows = [make_integration(f"api-{n}") for n in range(integrations)]
    for row in rows[::2]:
        add_calls(row, [(NOW - timedelta(hours=h), 20 * h, h != 3) for h in range(6)])
    with django_assert_num_queries(1):
        lines = charts.sparklines([row.pk for row in rows], now=NOW)
    assert sorted(lines) == sorted(row.pk for row in rows)
    busy = ET.fromstring(lines[rows[0].pk])
    assert busy.get("role") == "img"
    assert busy.find(f"{SVG}title").text == busy.get("aria-label")
    assert "6 calls, 1 failed" in busy.get("aria-label")
    if integrations > 1:
        idle = ET.fromstring(lines[rows[1].pk])
        assert "no calls" in idle.get("aria-label")
        assert idle.find(f"{SVG}text").text == "no calls"  # not an empty box


def test_no_ids_no_query(django_assert_num_queries, db):
    with django_assert_num_queries(0):
        assert charts.sparklines([]) == {}


def test_charts_are_well_formed_titled_svg_without_script(billing):
    add_calls(billing, [(NOW - timedelta(hours=h), 30 * (h + 1), h % 4 != 0) for h in range(20)])
    buckets = charts.series([billing.pk], charts.HOURS, now=NOW)[billing.pk]
    for draw, kind in ((charts.svg.latency, "latency"), (charts.svg.failures, "failures")):
        chart = draw(buckets, charts.HOURS, f"c-{kind}", str(billing))
        root = ET.fromstring(chart)  # well-formed XML, the name's <&>" escaped
        assert root.tag == f"{SVG}svg" and root.get("role") == "img"
        title = root.find(f"{SVG}title")
        assert title.text == f'Billing <&> "API": {kind}, last 24 hours'
        assert root.get("aria-labelledby") == f"c-{kind}-title"
        assert root.find(f"{SVG}desc").text
        assert all(el.tag != f"{SVG}script" and not el.get("href") for el in root.iter())
        assert "style" not in chart and "javascript" not in chart.lower()
        # Words in the theme's text colour (only symbols are coloured): readable on both.
        assert {text.get("fill") for text in root.iter(f"{SVG}text")} == {"currentColor"}
        hovers = [el for el in root.iter(f"{SVG}rect") if el.find(f"{SVG}title") is not None]
        assert len(hovers) == 24


def test_an_empty_period_still_draws(billing):
    buckets = charts.series([billing.pk], charts.DAYS, now=NOW)[billing.pk]
    root = ET.fromstring(charts.svg.latency(buckets, charts.DAYS, "e", "x"))
    assert root.find(f"{SVG}desc").text == "No calls logged in this period."
    assert "No failed calls (0 calls)." in charts.svg.failures(buckets, charts.DAYS, "f", "x")


def test_panel_has_figure_tables_and_escapes_the_name(billing):
    add_calls(billing, [(NOW - timedelta(minutes=5), 42, False)])
    html = charts.panel(billing, now=NOW)
    assert "<script" not in html
    assert 'Billing &lt;&amp;&gt; &quot;API&quot;' in html and "Billing <&>" not in html
    assert "<summary>Figures, last 24 hours</summary>" in html
    assert ('<th scope="row">2030-01-15 12:00</th><td>1</td><td>1</td><td>42 ms</td>'
            "<td>42 ms</td>") in html
    assert "<caption" in html and "Calls per day, last 30 days" in html


def test_nice_ceiling():
    assert [charts.svg.nice_ceiling(v) for v in (0, 0.3, 1, 7, 10, 11, 240, 999, 1001)] == [
        1, 0.5, 1, 10, 10, 20, 500, 1000, 2000,
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="covering indexes: PostgreSQL")
def test_chart_columns_are_in_the_integration_index_on_postgresql(db):
    """Migration 0005: the aggregates read (integration, created_at) with duration and ok
    from the index alone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'calllog_integration_latest'"
        )
        [(definition,)] = cursor.fetchall()
    assert "(integration_id, created_at DESC) INCLUDE (duration_ms, ok)" in definition


def page_queries(client, url):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


@pytest.mark.parametrize("rows", [2, 40])
def test_changelist_draws_a_sparkline_per_row_in_one_query(admin_client, make_integration,
                                                           rows):
    """Admin hook: the list's query count does not grow with rows or call-log rows."""
    from django.urls import reverse

    url = reverse("admin:integrations_integration_changelist")
    make_integration("api-0")
    base, _ = page_queries(admin_client, url)
    made = [make_integration(f"api-{n}") for n in range(1, rows)]
    for integration in made:
        add_calls(integration, [(datetime.now(UTC) - timedelta(hours=h), 10 * h, h != 2)
                                for h in range(5)])
    queries, html = page_queries(admin_client, url)
    assert queries == base
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" role="img" width="120"') == rows
    assert "Last 24 hours: 5 calls, 1 failed" in html


def test_change_page_shows_the_charts(admin_client, billing):
    from django.urls import reverse

    add_calls(billing, [(datetime.now(UTC) - timedelta(hours=h), 10 + h, h % 3 != 0)
                        for h in range(30)])
    url = reverse("admin:integrations_integration_change", args=[billing.pk])
    _, html = page_queries(admin_client, url)
    assert html.count("<svg") >= 4
    assert "latency, last 24 hours" in html and "failures, last 30 days" in html
