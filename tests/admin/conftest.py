"""Admin users for the permission matrix, and client helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from integrations.models import Integration
from tests.loopback import LoopbackServer, Reply

INTEGRATION_EDIT = ["add_integration", "change_integration", "view_integration", "view_calllog"]


def staff(username: str, codenames: list[str]) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="integrations", codename__in=codenames)
    )
    return user


@pytest.fixture
def users(db: Any) -> dict[str, User]:
    """superuser; operator (edit + run_test_call); editor (edit, no run_test_call);
    viewer (view only)."""
    return {
        "superuser": User.objects.create_superuser("root", password="pw"),
        "operator": staff("operator", [*INTEGRATION_EDIT, "run_test_call"]),
        "editor": staff("editor", INTEGRATION_EDIT),
        "viewer": staff("viewer", ["view_integration", "view_calllog"]),
    }


@pytest.fixture
def as_user(users: dict[str, User]) -> Any:
    """``as_user("viewer")`` → a logged-in test client."""

    def login(name: str) -> Client:
        client = Client()
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def served(server: LoopbackServer, make_integration: Any) -> Callable[..., Integration]:
    """``served("alpha", status=500)`` → an integration of the loopback ``server`` whose
    test request is ``GET /api/<path>``, answered with ``status`` (None: not routed)."""

    def make(
        slug: str = "billing", *, path: str = "health", status: int | None = 200, **fields: Any
    ) -> Integration:
        if status is not None:
            server.route("GET", f"/api/{path}", lambda r: Reply(status, {"ok": status < 400}))
        return make_integration(
            slug, base_url=f"{server.url}/api/", test_request={"path": path}, **fields
        )

    return make
