"""Test calls from the admin: the change page's button, the list action (inline and
through tasks), the permission that guards both, and unknown ids."""

from __future__ import annotations

import pytest

from integrations.models import CallLog
from tests import jose
from tests.admin.helpers import LIST, change_url, integration_url, messages_of, run_test_url
from tests.keys import HMAC_SECRET

pytestmark = pytest.mark.django_db


def test_run_test_button_calls_and_logs(as_user, server, served):
    """The change page's button fires the test request with a valid JWT, logs it with
    source admin and reports status and latency."""
    integration = served()
    client = as_user("operator")
    assert "Run test call" in client.get(change_url(integration)).content.decode()
    response = client.post(run_test_url(integration), follow=True)
    assert response.redirect_chain[-1][0] == change_url(integration)
    [message] = messages_of(response)
    assert message.startswith("Billing: ok, 200 in ") and message.endswith(" ms")
    jose.verify(server.requests[-1].bearer, HMAC_SECRET, "HS256")
    row = CallLog.objects.get()
    assert row.source == "admin" and row.ok and row.is_test
    assert "/api/health" in response.content.decode()


def test_failed_test_call_reports_the_error(as_user, served):
    """A refused call is an error message with the status, not a success."""
    integration = served(status=500)
    response = as_user("operator").post(run_test_url(integration), follow=True)
    [message] = messages_of(response)
    assert message.startswith("Billing: failed (500, ") and "unexpected status 500" in message


def test_run_test_view_refuses_get(as_user, make_integration):
    """A test call is a POST (CSRF-protected), never a link a page could embed."""
    integration = make_integration()
    assert as_user("operator").get(run_test_url(integration)).status_code == 405


def test_bulk_action_reports_each_integration(as_user, server, served):
    """The list action fires each selected test call and reports one message each."""
    a = served("alpha")
    b = served("beta", path="missing", status=None)
    response = as_user("operator").post(
        LIST, {"action": "run_test_calls", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    messages = messages_of(response)
    assert len(messages) == 2
    assert messages[0].startswith("Alpha: ok, 200") and messages[1].startswith("Beta: failed (404")
    assert CallLog.objects.filter(source="admin").count() == 2


def test_bulk_action_over_many_goes_through_tasks(as_user, server, served):
    """More than five selected run as background tasks (immediate backend here), still
    logged with source admin and reported one by one."""
    ids = [served(f"api-{n}").pk for n in range(6)]
    response = as_user("operator").post(
        LIST, {"action": "run_test_calls", "_selected_action": ids}, follow=True
    )
    assert len(server.requests) == 6
    assert CallLog.objects.filter(source="admin").count() == 6
    assert sum("ok, 200" in m for m in messages_of(response)) == 6


@pytest.mark.parametrize("user", ["editor", "viewer"])
def test_without_permission_no_action_no_button_and_forged_posts_call_nothing(
    as_user, server, served, user
):
    """security.md #28: staff without run_test_call see neither the action nor the button,
    and forged POSTs to both make zero outbound requests."""
    integration = served()
    client = as_user(user)
    assert "run_test_calls" not in client.get(LIST).content.decode()
    assert "Run test call" not in client.get(change_url(integration)).content.decode()
    client.post(LIST, {"action": "run_test_calls", "_selected_action": [integration.pk]})
    forged = client.post(run_test_url(integration))
    assert forged.status_code == 403
    assert server.requests == []
    assert not CallLog.objects.exists()


@pytest.mark.parametrize("user", ["superuser", "operator"])
def test_with_permission_action_and_button_are_offered(as_user, make_integration, user):
    """security.md #28: superusers and staff holding run_test_call get the action and button."""
    integration = make_integration()
    client = as_user(user)
    assert "run_test_calls" in client.get(LIST).content.decode()
    assert "Run test call" in client.get(change_url(integration)).content.decode()


@pytest.mark.parametrize("view", ["test", "preview"])
def test_unknown_integration_is_a_404(as_user, view):
    """A stale or malformed id in the URL is a 404, not a server error."""
    client = as_user("operator")
    for object_id in ["999", "not-a-number"]:
        url = integration_url(view, object_id)
        response = client.post(url) if view == "test" else client.get(url)
        assert response.status_code == 404
