"""The example view fires authenticated calls: it is guarded like the test-call action."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from tests.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.django_db


def user(name: str, *codenames: str) -> User:
    person = User.objects.create_user(name, password="pw", is_staff=True)
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label="integrations", codename__in=codenames)
    )
    return person


@pytest.fixture
def remote(server: LoopbackServer, make_integration: Any) -> LoopbackServer:
    server.route("GET", "/api/health", lambda req: Reply(200, {"secret": "remote data"}))
    make_integration(base_url=server.url + "/api/", test_request={"path": "health"})
    return server


def csrf_client(person: User) -> tuple[Client, str]:
    """A client that enforces CSRF like a browser, and a valid token for it."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(person)
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    return client, token


def test_staff_without_permission_makes_no_call(remote: LoopbackServer) -> None:
    """security.md #28, #37: a staff user without run_test_call gets 403 and no call
    is made, even with a valid CSRF token."""
    client, token = csrf_client(user("staffer"))
    response = client.post("/example/billing/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 403
    assert remote.requests == []


def test_get_makes_no_call(remote: LoopbackServer) -> None:
    """security.md #37: a GET (a link or image on another site) never fires the call."""
    client, _ = csrf_client(user("operator", "run_test_call"))
    response = client.get("/example/billing/")
    assert response.status_code == 405
    assert remote.requests == []


def test_post_without_csrf_token_makes_no_call(remote: LoopbackServer) -> None:
    """security.md #37: a cross-site POST carries no CSRF token and is refused."""
    client, _ = csrf_client(user("operator", "run_test_call"))
    response = client.post("/example/billing/")
    assert response.status_code == 403
    assert remote.requests == []


def test_permitted_post_calls_the_remote(remote: LoopbackServer) -> None:
    """With the permission and a CSRF-checked POST the call goes out, authenticated."""
    client, token = csrf_client(user("operator", "run_test_call"))
    response = client.post("/example/billing/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json() == {
        "integration": "billing",
        "status": 200,
        "ok": True,
        "body": {"secret": "remote data"},
    }
    assert remote.requests[-1].headers["Authorization"].startswith("Bearer ")
