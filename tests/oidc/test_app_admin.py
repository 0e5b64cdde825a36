"""The admin form with sender-constrained options against node-oidc-provider: discovery
on save (another issuer, an algorithm the server does not list: refused naming the
field), the DPoP key generated and kept, the client certificate in its own fieldset
(write-only, what is stored shown), and the preview's DPoP proofs (security.md #34-36)."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.models import Integration
from integrations.tokens.sender import DPOP_KEY
from tests.admin.helpers import ADD, change_url, form_data, form_errors, integration_url
from tests.keys import key_for
from tests.oidc.server import OIDCProvider

pytestmark = pytest.mark.django_db


def assertion_form(oidc: OIDCProvider, **overrides: Any) -> dict[str, Any]:
    values = {
        "base_url": oidc.url + "/resource/",
        "ca_bundle": oidc.ca_path,
        "test_request": '{"method": "GET", "path": "dpop-nonce"}',
        "auth_algorithm": "ES256",
        "auth_key": oidc.assertion_keys["dpop"],
        "auth_client_id": "dpop",
        "auth_issuer": oidc.issuer,
        "auth_scope": "api:read",
        "auth_params": "{}",
        "auth_dpop": "on",
        "auth_dpop_algorithm": "ES256",
        "client_certificate": "",
    }
    return form_data("client_assertion", **{**values, **overrides})


def add(client: Any, data: dict[str, Any], auth_type: str = "client_assertion") -> Any:
    return client.post(f"{ADD}?auth_type={auth_type}", data, follow=True)


def test_saving_discovers_generates_the_key_and_previews_the_proofs(
    as_user: Any, oidc: OIDCProvider
) -> None:
    client = as_user("operator")
    response = add(client, assertion_form(oidc))
    assert response.status_code == 200 and not form_errors(response), form_errors(response)
    integration = Integration.objects.get(slug="billing")
    assert integration.server_metadata["issuer"] == oidc.issuer
    key = integration.get_secrets()[DPOP_KEY]
    html = response.content.decode()
    assert "Client certificate (mutual TLS)" in html and 'name="client_certificate"' in html
    # Saved again without touching secrets: the proof key stays (tokens bound to it too).
    data = assertion_form(oidc, auth_key="")
    response = client.post(change_url(integration), data)
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.get_secrets()[DPOP_KEY] == key
    preview = client.get(integration_url("preview", integration)).content.decode()
    assert "DPoP proofs" in preview and "dpop+jwt" in preview
    assert "/resource/dpop-nonce" in preview
    assert '"d":' not in preview and "PRIVATE KEY" not in preview


def test_another_issuer_is_refused_on_the_issuer_field(as_user: Any, oidc: OIDCProvider) -> None:
    response = add(as_user("operator"), assertion_form(oidc, auth_issuer=oidc.issuer + "/"))
    errors = form_errors(response)
    assert "not the configured" in " ".join(errors["auth_issuer"])
    assert not Integration.objects.filter(slug="billing").exists()


def test_an_algorithm_the_server_does_not_list_is_refused_on_its_field(
    as_user: Any, oidc: OIDCProvider
) -> None:
    data = assertion_form(oidc, auth_algorithm="ES512", auth_key=key_for("ES512"))
    errors = form_errors(add(as_user("operator"), data))
    assert "does not accept 'ES512'" in " ".join(errors["auth_algorithm"])


def test_the_client_certificate_is_write_only_and_kept(as_user: Any, oidc: OIDCProvider) -> None:
    client = as_user("operator")
    pem = oidc.certificates["selfsigned"]
    data = form_data(
        "client_certificate",
        base_url=oidc.url + "/resource/",
        ca_bundle=oidc.ca_path,
        test_request='{"method": "GET", "path": "mtls"}',
        auth_client_id="selfsigned",
        auth_issuer=oidc.issuer,
        auth_scope="api:read",
        auth_params="{}",
        auth_dpop_algorithm="ES256",
        client_certificate=pem,
    )
    response = add(client, data, "client_certificate")
    assert not form_errors(response), form_errors(response)
    integration = Integration.objects.get(slug="billing")
    html = client.get(change_url(integration)).content.decode()
    assert "Stored: CN=selfsigned-client" in html and "x5t#S256" in html
    assert "PRIVATE KEY" not in html
    response = client.post(change_url(integration), {**data, "client_certificate": ""})
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.get_secrets()["client_certificate"]
    broken = {**data, "client_certificate": pem.replace("BEGIN CERTIFICATE-----\n", "X")}
    errors = form_errors(client.post(change_url(integration), broken))
    assert errors["client_certificate"] == [
        "needs the client certificate (PEM CERTIFICATE) with the key"
    ]
