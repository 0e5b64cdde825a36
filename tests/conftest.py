from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integrations import services
from integrations.models import Integration
from tests.keys import HMAC_SECRET
from tests.loopback import LoopbackServer


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    from django.core.cache import cache

    services.reset()
    cache.clear()
    yield
    services.reset()


@pytest.fixture
def make_integration(db: Any) -> Callable[..., Integration]:
    """Create and save a valid integration; auth defaults to jwt_bearer HS256."""

    def make(
        slug: str = "billing",
        *,
        base_url: str = "http://127.0.0.1:9/api/",
        auth_type: str = "jwt_bearer",
        auth_config: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
        **fields: Any,
    ) -> Integration:
        integration = Integration(
            slug=slug,
            name=fields.pop("name", slug.title()),
            base_url=base_url,
            auth_type=auth_type,
            auth_config=auth_config
            if auth_config is not None
            else {"algorithm": "HS256", "claims": {"iss": "shop", "aud": "billing"}},
            **fields,
        )
        integration.set_secrets(secrets if secrets is not None else {"key": HMAC_SECRET})
        integration.full_clean()
        integration.save()
        return integration

    return make
