"""Tasks on the default (immediate) backend: no extra process needed."""

from __future__ import annotations

import pytest

from integrations.models import CallLog
from integrations.tasks import enqueue_tests, run_test_call
from tests.keys import CANARY
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


def test_enqueue_tests_runs_each_and_logs_source_task(server, make_integration):
    """reference.md call log: each enqueued test call leaves one CallLog row with source "task"."""
    server.route("GET", "/a/health", lambda r: Reply(200, {}))
    server.route("GET", "/b/health", lambda r: Reply(500, {}))
    a = make_integration("alpha", base_url=f"{server.url}/a/", test_request={"path": "health"})
    b = make_integration("beta", base_url=f"{server.url}/b/", test_request={"path": "health"})
    results = enqueue_tests([a, b])
    assert [r.return_value["slug"] for r in results] == ["alpha", "beta"]
    assert [r.return_value["ok"] for r in results] == [True, False]
    rows = CallLog.objects.order_by("integration__slug")
    assert [(row.integration.slug, row.source, row.is_test, row.ok) for row in rows] == [
        ("alpha", "task", True, True),
        ("beta", "task", True, False),
    ]
    assert results[1].return_value["status_code"] == 500


def test_task_result_holds_no_secret(server, make_integration):
    """security.md #26: a task's stored result (kept by engines like RQ) has no token or key."""
    server.route("GET", "/a/health", lambda r: Reply(401, {"token": r.bearer}))
    integration = make_integration(
        "alpha", base_url=f"{server.url}/a/", test_request={"path": "health"}
    )
    result = run_test_call.enqueue(integration.pk)
    text = repr(result.return_value)
    assert result.return_value["ok"] is False
    assert CANARY not in text and server.requests[-1].bearer not in text


def test_deleted_integration_is_reported_not_raised(make_integration):
    """A task whose integration was deleted after enqueueing reports it as a failed result."""
    integration = make_integration("alpha")
    pk = integration.pk
    integration.delete()
    result = run_test_call.enqueue(pk)
    assert result.return_value["ok"] is False
    assert "no longer exists" in result.return_value["error"]
