"""Admin users for the permission matrix, and client helpers."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

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
