"""GET integrations/health: 200/503/403, the token and staff paths (docs/reference.md,
Operations; security.md #39)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from integrations.models import CallLog
from tests.keys import CANARY

pytestmark = pytest.mark.django_db

TOKEN = "health-token-0123456789abcdef"
URL = "/integrations/health"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.INTEGRATIONS_HEALTH_TOKEN = TOKEN


def log_tests(integration, *oks, error=f"RuntimeError: remote said {CANARY}"):
    """Log test calls, oldest first."""
    for ok in oks:
        CallLog.objects.create(
            integration=integration, source="command", is_test=True, method="GET",
            url="http://127.0.0.1:9/api/health", ok=ok, status_code=200 if ok else 500,
            error="" if ok else error,
        )


def get(client, token=TOKEN, **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(URL, **headers)


def test_url_name():
    assert reverse("integrations:health") == URL


def test_ok_with_the_token(client, make_integration):
    """200 and every enabled integration's health; unknown is not failing."""
    log_tests(make_integration("billing"), False, True)
    make_integration("crm")
    make_integration("old", enabled=False)
    response = get(client)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    document = response.json()
    assert document["status"] == "ok"
    assert [(i["slug"], i["health"]) for i in document["integrations"]] == [
        ("billing", "ok"), ("crm", "unknown")
    ]
    assert document["integrations"][0]["last_test_at"].startswith("20")
    assert document["integrations"][1]["last_test_at"] is None


def test_failing_is_503_without_error_text(client, make_integration):
    """security.md #39: no error message, remote body or secret in the document."""
    log_tests(make_integration("billing"), True, False, False)
    log_tests(make_integration("crm"), True)
    response = get(client)
    assert response.status_code == 503
    document = response.json()
    assert document["status"] == "failing"
    assert {i["slug"]: i["health"] for i in document["integrations"]} == {
        "billing": "failing", "crm": "ok"
    }
    assert set(document["integrations"][0]) == {"slug", "health", "last_test_at"}
    text = response.content.decode()
    assert CANARY not in text and "RuntimeError" not in text


def test_failures_needed_is_a_setting(client, make_integration, settings):
    log_tests(make_integration("billing"), True, False, False)
    settings.INTEGRATIONS_HEALTH_FAILURES = 3
    assert get(client).json()["integrations"][0]["health"] == "ok"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
)
def test_forbidden_without_the_token(client, make_integration, authorization):
    log_tests(make_integration("billing"), False, False)
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get(URL, **headers)
    assert response.status_code == 403
    assert b"billing" not in response.content


def test_no_token_configured_means_staff_only(client, settings, make_integration):
    """An empty INTEGRATIONS_HEALTH_TOKEN never matches an empty bearer token."""
    settings.INTEGRATIONS_HEALTH_TOKEN = ""
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer  ").status_code == 403


def test_staff_session(client, make_integration):
    make_integration("billing")
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    response = get(client, token=None)
    assert response.status_code == 200
    assert response.json()["integrations"][0]["slug"] == "billing"


def test_other_users_are_forbidden(client, make_integration):
    client.force_login(User.objects.create_user("someone", password="pw"))
    assert get(client, token=None).status_code == 403
    inactive = User.objects.create_user("gone", password="pw", is_staff=True, is_active=False)
    client.force_login(inactive)
    assert get(client, token=None).status_code == 403


def test_only_get_and_head(client, make_integration):
    assert client.post(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    assert client.head(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.parametrize("count", [1, 6])
def test_constant_query_count(client, make_integration, django_assert_num_queries, count):
    """One query for the integrations, however many there are and however tested."""
    for n in range(count):
        log_tests(make_integration(f"api-{n}"), True, False, n % 2 == 0)
    with django_assert_num_queries(1):
        assert get(client).status_code in (200, 503)
