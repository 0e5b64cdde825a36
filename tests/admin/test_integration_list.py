"""The integration list: each row's last test call at a constant number of queries,
filters and search, and deleting integrations with their call logs."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.models import CallLog, Integration
from tests.admin.helpers import LIST, integration_url, logged_test_call

pytestmark = pytest.mark.django_db


def seed(count: int) -> None:
    """``count`` integrations, each with two test calls (the newest failed)."""
    Integration.objects.bulk_create(
        Integration(
            slug=f"api-{n:04d}",
            name=f"API {n:04d}",
            base_url="http://127.0.0.1:9/",
            auth_config={"algorithm": "HS256"},
        )
        for n in range(count)
    )
    CallLog.objects.bulk_create(
        logged_test_call(integration, status_code=status_code, ok=ok, duration_ms=duration_ms)
        for integration in Integration.objects.all()
        for status_code, ok, duration_ms in [(200, True, 5), (503, False, 7)]
    )


def changelist_queries(client: Any, count: int) -> int:
    Integration.objects.all().delete()
    seed(count)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == count
    return len(queries)


def test_changelist_query_count_is_constant(as_user):
    """No N+1: the list costs the same number of queries at 10 and 1,000 integrations."""
    client = as_user("operator")
    assert changelist_queries(client, 10) == changelist_queries(client, 1000)


def test_changelist_shows_last_test_result(as_user):
    """Each row shows its newest test call: ok/failed, status, latency."""
    seed(1)
    html = as_user("operator").get(LIST).content.decode()
    assert "503 · 7 ms" in html and 'alt="failed"' in html
    assert "200 · 5 ms" not in html


def test_changelist_filters_and_search(as_user, make_integration):
    """Filters by last test result and search by slug narrow the list."""
    seed(3)
    make_integration("never-tested")
    client = as_user("operator")
    assert client.get(LIST, {"last_test": "never"}).context["cl"].result_count == 1
    assert client.get(LIST, {"last_test": "failed"}).context["cl"].result_count == 3
    assert client.get(LIST, {"q": "api-0001"}).context["cl"].result_count == 1
    assert client.get(LIST, {"auth_type": "jwt_bearer"}).context["cl"].result_count == 4


def test_deleting_an_integration_takes_its_call_logs(as_user, make_integration):
    """The confirmation counts the call logs instead of listing them, and deleting is not
    blocked by the call log admin being read-only."""
    integration = make_integration()
    for _ in range(3):
        CallLog.objects.create(integration=integration, source="api", method="GET", url="u")
    delete = integration_url("delete", integration)
    client = as_user("superuser")
    page = client.get(delete).content.decode()
    assert "3 call logs" in page and "permission to delete" not in page
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Integration.objects.exists() and not CallLog.objects.exists()


def test_bulk_delete_counts_call_logs(as_user, make_integration):
    """The delete_selected action confirms with per-model counts and then deletes."""
    ids = [make_integration(f"api-{n}").pk for n in range(2)]
    CallLog.objects.create(integration_id=ids[0], source="api", method="GET", url="u")
    client = as_user("superuser")
    page = client.post(
        LIST, {"action": "delete_selected", "_selected_action": ids}
    ).content.decode()
    assert "1 call logs" in page or "Call logs: 1" in page
    client.post(LIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert not Integration.objects.exists()
