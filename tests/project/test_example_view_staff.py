"""Issue 15, finding 1 as reported: a staff user with no permission at all fired an
authenticated call through the example view with a plain GET and read the response."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post"])
def test_staff_without_the_permission_never_causes_a_call(
    server: LoopbackServer, make_integration: Any, method: str
) -> None:
    """security.md #28, #37: neither a GET nor a POST (CSRF not enforced here, as a
    test client or a same-site form would) from staff lacking run_test_call reaches the
    remote, and its body is never shown."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"secret": "remote data"}))
    make_integration(base_url=server.url + "/api/", test_request={"path": "health"})
    client = Client()
    client.force_login(User.objects.create_user("staffer", password="pw", is_staff=True))
    response = getattr(client, method)("/example/billing/")
    assert response.status_code in (403, 405)
    assert b"remote data" not in response.content
    assert server.requests == []
