"""Admin form posts shared by the admin tests."""

from __future__ import annotations

from typing import Any

from tests.keys import HMAC_SECRET


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
