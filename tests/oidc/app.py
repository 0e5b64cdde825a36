"""Integrations of the real app against node-oidc-provider: configuration entries
imported through ``configfile.import_config`` (so discovery and the DPoP key happen as
on any import), and a counter of the token requests a session's provider sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from integrations import services
from integrations.configfile import import_config
from integrations.http.auth import TokenAuth
from integrations.models import Integration
from tests.oidc.server import OIDCProvider


def entry(
    oidc: OIDCProvider, slug: str, auth: dict[str, Any], *, path: str = "dpop", **fields: Any
) -> dict[str, Any]:
    """A configuration entry calling the provider's resources (``/resource/<path>``)."""
    return {
        "slug": slug,
        "name": slug,
        "base_url": oidc.url + "/resource/",
        "ca_bundle": oidc.ca_path,
        "test_request": {"method": "GET", "path": path, "expect_status": [200]},
        "auth": auth,
        **fields,
    }


def private_key_jwt(oidc: OIDCProvider, client_id: str = "dpop", **options: Any) -> dict[str, Any]:
    """client_assertion options for one of the provider's private_key_jwt clients,
    the token endpoint discovered from the issuer."""
    return {
        "type": "client_assertion",
        "algorithm": "ES256",
        "key": oidc.assertion_keys[client_id],
        "client_id": client_id,
        "issuer": oidc.issuer,
        "scope": "api:read",
        **options,
    }


def load(*entries: dict[str, Any]) -> list[Integration]:
    import_config({"integrations": list(entries)})
    return [Integration.objects.get(slug=raw["slug"]) for raw in entries]


@contextmanager
def token_requests(slug: str) -> Iterator[list[requests.Response]]:
    """The token endpoint's answers to ``slug``'s session, as they come."""
    auth = services.get_session(slug).auth
    assert isinstance(auth, TokenAuth)
    answers: list[requests.Response] = []
    post = auth.http.post

    def counted(*args: Any, **kwargs: Any) -> requests.Response:
        answer = post(*args, **kwargs)
        answers.append(answer)
        return answer

    auth.http.post = counted  # type: ignore[method-assign]
    try:
        yield answers
    finally:
        del auth.http.post


def body(response: requests.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None
