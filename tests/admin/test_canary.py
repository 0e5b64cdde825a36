"""security.md #29: the canary secret never reaches an admin page, whoever looks and
whatever page: lists, forms, error re-renders, history, log entries, previews, call logs,
delete confirmations."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from integrations.models import CallLog, Integration
from tests.admin.helpers import form_data, integration_url
from tests.keys import CANARY, HMAC_SECRET, rsa_pem
from tests.loopback import Reply

pytestmark = pytest.mark.django_db
# A line from the middle of the service account's private key: a canary of its own.
PRIVATE_LINE = rsa_pem().splitlines()[5]


@pytest.fixture
def secret_integrations(server, make_integration) -> list[Integration]:
    """One integration whose HS256 secret holds the canary, and one Google service
    account (its private key must not show either: see PRIVATE_LINE)."""
    # The remote echoes whatever it receives, so a leak into a log row would show.
    server.route(
        "GET", "/api/health", lambda r: Reply(401, {"echo": r.headers.get("Authorization", "")})
    )
    hmac = make_integration(base_url=f"{server.url}/api/", test_request={"path": "health"})
    account = json.dumps(
        {
            "type": "service_account",
            "private_key_id": "k-2026",
            "private_key": rsa_pem(),
            "client_email": "robot@example.iam.gserviceaccount.com",
            "token_uri": f"{server.url}/token",
        }
    )
    google = make_integration(
        "google",
        base_url=f"{server.url}/api/",
        auth_type="google_service_account",
        auth_config={"scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
        secrets={"service_account": account},
    )
    return [hmac, google]


def pages(integrations: list[Integration]) -> list[str]:
    urls = [
        reverse("admin:index"),
        reverse("admin:integrations_integration_changelist"),
        reverse("admin:integrations_calllog_changelist"),
    ]
    for integration in integrations:
        for name in ["change", "history", "delete", "preview"]:
            urls.append(integration_url(name, integration))
    for row in CallLog.objects.all():
        urls.append(reverse("admin:integrations_calllog_change", args=[row.pk]))
    return urls


@pytest.mark.parametrize("user", ["superuser", "operator", "editor", "viewer"])
def test_canary_never_in_any_admin_page(as_user, secret_integrations, user):
    """security.md #26, #29: after a test call, an edit and a failed edit, no page shows
    the canary: not in forms, lists, history, previews, call logs or confirmations."""
    root = as_user("superuser")
    for integration in secret_integrations:
        root.post(reverse("admin:integrations_integration_test", args=[integration.pk]))
    assert CallLog.objects.count() == 2
    hmac = secret_integrations[0]
    change = reverse("admin:integrations_integration_change", args=[hmac.pk])
    edit = form_data(
        base_url=hmac.base_url,
        auth_key=HMAC_SECRET + "-changed",
        auth_claims="{}",
        test_request='{"path": "health"}',
    )
    failed = root.post(change, {**edit, "timeout": "-1"})
    assert failed.status_code == 200 and CANARY not in failed.content.decode()
    assert root.post(change, edit).status_code == 302

    client = as_user(user)
    for url in pages(secret_integrations):
        response = client.get(url)
        assert response.status_code in {200, 403}, url
        html = response.content.decode()
        assert CANARY not in html and PRIVATE_LINE not in html, url


def test_canary_never_in_log_entries_or_str(as_user, secret_integrations):
    """security.md #29: admin LogEntry rows (object_repr, change_message) and __str__/repr
    hold names, never secret values."""
    client = as_user("superuser")
    integration = secret_integrations[0]
    change = reverse("admin:integrations_integration_change", args=[integration.pk])
    page = client.get(change)
    assert page.status_code == 200
    data = form_data(
        base_url=integration.base_url, auth_algorithm="HS512", auth_claims="{}", test_request="{}"
    )
    assert client.post(change, data).status_code == 302
    entry = LogEntry.objects.get()
    assert "Signing key" in entry.get_change_message()
    for text in [entry.object_repr, entry.change_message, str(integration), repr(integration)]:
        assert CANARY not in text
