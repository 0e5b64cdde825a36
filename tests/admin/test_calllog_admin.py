"""The call log admin: read-only evidence, newest first, filterable, constant queries."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.admin import calllog, filters
from integrations.admin.calllog import EstimatedCountPaginator
from integrations.models import CallLog, Integration

pytestmark = pytest.mark.django_db

LIST = reverse("admin:integrations_calllog_changelist")


def log(integration: Integration, **fields: object) -> CallLog:
    values: dict[str, object] = {
        "source": "api",
        "method": "GET",
        "url": "http://127.0.0.1:9/api/x",
        "status_code": 200,
        "ok": True,
        "duration_ms": 3,
    }
    values.update(fields)
    return CallLog.objects.create(integration=integration, **values)


def test_rows_are_read_only_for_everyone(as_user, make_integration):
    """security.md #27: even a superuser cannot add, change or delete a log row."""
    row = log(make_integration())
    client = as_user("superuser")
    change = reverse("admin:integrations_calllog_change", args=[row.pk])
    assert client.get(reverse("admin:integrations_calllog_add")).status_code == 403
    page = client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(change, {"url": "http://evil/"}).status_code == 403
    delete = reverse("admin:integrations_calllog_delete", args=[row.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    listing = client.get(LIST).content.decode()
    assert "delete_selected" not in listing
    assert reverse("admin:integrations_calllog_add") not in listing
    row.refresh_from_db()
    assert row.url == "http://127.0.0.1:9/api/x"


def test_newest_first(as_user, make_integration):
    """The list opens on the latest calls."""
    integration = make_integration()
    old = log(integration, url="http://127.0.0.1:9/old")
    CallLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=1))
    new = log(integration, url="http://127.0.0.1:9/new")
    rows = list(as_user("viewer").get(LIST).context["cl"].result_list)
    assert [r.pk for r in rows] == [new.pk, old.pk]


def test_filters_and_search(as_user, make_integration):
    """Filters by integration, ok, source and date; search by URL and error."""
    a, b = make_integration("alpha"), make_integration("beta")
    log(a, source="admin", ok=False, status_code=503, error="unexpected status 503")
    log(a, source="api", url="http://127.0.0.1:9/api/orders")
    log(b, source="task")
    client = as_user("viewer")

    def count(**params: str) -> int:
        response = client.get(LIST, params)
        assert response.status_code == 200
        return int(response.context["cl"].result_count)

    assert count(integration="alpha") == 2
    assert count(ok__exact="0") == 1
    assert count(source__exact="task") == 1
    assert count(q="orders") == 1
    assert count(q="status 503") == 1
    since = (timezone.now() - datetime.timedelta(hours=1)).isoformat()
    assert count(created_at__gte=since) == 3


def test_no_full_count_and_constant_queries(as_user, make_integration):
    """show_full_result_count is off and the integration is joined, not fetched per row:
    the same number of queries for 10 and 300 rows."""
    integration = make_integration()
    client = as_user("viewer")

    def queries(total: int) -> int:
        CallLog.objects.all().delete()
        CallLog.objects.bulk_create(
            CallLog(integration=integration, source="api", method="GET", url="u")
            for _ in range(total)
        )
        with CaptureQueriesContext(connection) as captured:
            response = client.get(LIST, {"q": "u"})
        assert response.status_code == 200
        assert response.context["cl"].show_full_result_count is False
        return len(captured)

    assert queries(10) == queries(300)


def test_integration_page_shows_its_latest_calls(as_user, make_integration):
    """The integration's change page lists its 20 newest calls and links to all of them."""
    integration = make_integration()
    other = make_integration("other")
    log(other, url="http://127.0.0.1:9/not-mine")
    for n in range(25):
        log(integration, url=f"http://127.0.0.1:9/call-{n:02d}")
    html = (
        as_user("viewer")
        .get(reverse("admin:integrations_integration_change", args=[integration.pk]))
        .content.decode()
    )
    assert "call-24" in html and "call-05" in html
    assert "call-04" not in html and "not-mine" not in html
    assert "?integration=billing" in html


def test_integration_filter_becomes_a_slug_box_when_many(as_user, make_integration, monkeypatch):
    """Past FILTER_LINKS integrations the filter is a slug box that keeps the other
    filters, instead of one link per integration."""
    monkeypatch.setattr(filters, "FILTER_LINKS", 1)
    log(make_integration("alpha"))
    log(make_integration("beta"), ok=False)
    client = as_user("viewer")
    html = client.get(LIST, {"ok__exact": "0"}).content.decode()
    assert 'name="integration"' in html and 'type="hidden" name="ok__exact" value="0"' in html
    assert "?integration=alpha" not in html
    assert client.get(LIST, {"integration": "beta"}).context["cl"].result_count == 1


def test_unfiltered_count_uses_the_planner_estimate_on_postgresql(make_integration, monkeypatch):
    """At millions of rows COUNT(*) costs more than the page: unfiltered on PostgreSQL
    the paginator reads pg_class.reltuples; filtered, it counts exactly."""
    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's; other databases count exactly")
    integration = make_integration()
    for _ in range(3):
        log(integration)
    monkeypatch.setattr(calllog, "ESTIMATE_ABOVE", -2)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'integrations_calllog'::regclass"
        )
        estimate = cursor.fetchone()[0]
    with CaptureQueriesContext(connection) as captured:
        assert EstimatedCountPaginator(CallLog.objects.all(), 50).count == estimate
    assert not any("COUNT(" in q["sql"] for q in captured.captured_queries)
    assert EstimatedCountPaginator(CallLog.objects.filter(ok=True), 50).count == 3


def test_count_is_exact_elsewhere(make_integration):
    """Off PostgreSQL (or filtered, or small) the paginator counts exactly."""
    integration = make_integration()
    for _ in range(3):
        log(integration)
    assert EstimatedCountPaginator(CallLog.objects.all(), 50).count == 3


def test_a_row_that_outlived_its_parents_breaks_no_page(as_user, make_integration):
    """A row logged while its integration or account was being deleted (the call log
    has no database constraints) is left out of the list or shown without an account."""
    integration = make_integration()
    account = integration.accounts.create(key="acme")
    log(integration, url="http://127.0.0.1:9/api/kept", account=account)
    CallLog.objects.filter(account=account).update(account_id=account.pk + 1000)
    other = make_integration("other")
    orphan = log(other, url="http://127.0.0.1:9/api/orphan")
    CallLog.objects.filter(pk=orphan.pk).update(integration_id=other.pk + 1000)
    client = as_user("viewer")
    listing = client.get(LIST)
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "/api/kept" in page and "/api/orphan" not in page
    change = reverse("admin:integrations_integration_change", args=[integration.pk])
    assert client.get(change).status_code == 200
    assert client.get(LIST, {"account": "acme"}).status_code == 200
