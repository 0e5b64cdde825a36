"""Admin form posts shared by the admin tests."""

from __future__ import annotations

from typing import Any

from django.contrib.messages import get_messages
from django.urls import reverse

from integrations.models import CallLog, Integration
from tests.keys import HMAC_SECRET

ADD = reverse("admin:integrations_integration_add")
LIST = reverse("admin:integrations_integration_changelist")


def logged_test_call(integration: Integration, **columns: Any) -> CallLog:
    """An unsaved call-log row of a passed test call to ``integration`` (for
    ``bulk_create``), ``columns`` changing any of its columns."""
    return CallLog(
        **{
            "integration": integration,
            "source": "admin",
            "is_test": True,
            "method": "GET",
            "url": integration.base_url,
            "ok": True,
            "status_code": 200,
            **columns,
        }
    )


def integration_url(view: str, integration: Integration | str) -> str:
    """The integration admin's ``view`` page (change, delete, history, preview, test)
    for an integration or a raw id."""
    object_id = integration.pk if isinstance(integration, Integration) else integration
    return reverse(f"admin:integrations_integration_{view}", args=[object_id])


def change_url(integration: Integration) -> str:
    return integration_url("change", integration)


def run_test_url(integration: Integration) -> str:
    """The change page's "Run test call" POST target."""
    return integration_url("test", integration)


def messages_of(response: Any) -> list[str]:
    """The admin messages (one per test call, key pair...) a response carried."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_errors(response: Any) -> dict[str, list[str]]:
    """The admin form's errors, by field name ("__all__" for the form's own)."""
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


def form_data(auth_type: str = "jwt_bearer", **overrides: Any) -> dict[str, Any]:
    """A complete, valid add/change POST for a jwt_bearer HS256 integration."""
    data = {
        "name": "Billing",
        "slug": "billing",
        "base_url": "http://127.0.0.1:9/api/",
        "enabled": "on",
        "auth_type": auth_type,
        "shown_type": auth_type,
        "auth_algorithm": "HS256",
        "auth_key": HMAC_SECRET,
        "auth_key_id": "",
        "auth_claims": '{"iss": "shop", "aud": "billing"}',
        "auth_lifetime": "300",
        "auth_clock_skew": "30",
        "auth_header_name": "Authorization",
        "auth_scheme": "Bearer",
        "generate_key": "",
        "headers": "{}",
        "timeout": "10",
        "log_calls": "all",
        "test_request": '{"method": "GET", "path": "health"}',
        "ca_bundle": "",
        "idempotency_header": "",
    }
    data.update(overrides)
    return data
