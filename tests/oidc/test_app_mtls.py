"""Mutual TLS through the real app against node-oidc-provider (security.md #35): the
``client_certificate`` auth type (tls_client_auth, self_signed_tls_client_auth) with the
token endpoint taken from the metadata's mtls_endpoint_aliases, certificate-bound tokens
accepted at ``/resource/mtls`` because the same certificate reaches it, and a wrong
certificate refused clearly."""

from __future__ import annotations

import json

import pytest

from integrations import services
from integrations.certificates import parse_client_certificate
from integrations.exceptions import InvalidConfiguration, TokenEndpointError
from integrations.http.mtls import client_ssl_context, mount_client_certificate
from integrations.http.session import GuardedSession
from integrations.models import CallLog
from integrations.tokens.endpoint import TokenEndpoint
from tests.commands.helpers import manage
from tests.oidc.app import body, entry, load
from tests.oidc.server import OIDCProvider, self_signed

pytestmark = pytest.mark.django_db


def certificate_client(
    oidc: OIDCProvider, slug: str, client_id: str, certificate: str, **options: object
) -> None:
    auth = {"type": "client_certificate", "client_id": client_id, "issuer": oidc.issuer,
            "scope": "api:read", **options}
    load(entry(oidc, slug, auth, path="mtls", client_certificate=certificate))


@pytest.mark.parametrize("client_id", ["tls", "selfsigned"])
def test_certificate_bound_token_through_the_mtls_alias(oidc: OIDCProvider, client_id: str) -> None:
    certificate = oidc.certificates[client_id]
    certificate_client(oidc, client_id, client_id, certificate)
    session = services.get_session(client_id)
    provider = session.provider
    assert isinstance(provider, TokenEndpoint) and provider.uses_certificate
    aliases = session.integration.server_metadata["mtls_endpoint_aliases"]
    assert provider.endpoint == aliases["token_endpoint"]
    response = services.request(client_id, "GET", "mtls")
    assert response.status_code == 200, body(response)
    assert body(response)["x5t#S256"] == parse_client_certificate(certificate).thumbprint
    assert services.run_test(client_id).ok
    ran = manage("integrations_token", client_id)
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert report["token_type"] == "Bearer"
    assert report["cnf"] == {"x5t#S256": parse_client_certificate(certificate).thumbprint}


def test_the_bound_token_with_another_certificate_is_refused(oidc: OIDCProvider) -> None:
    certificate_client(oidc, "tls", "tls", oidc.certificates["tls"])
    token = json.loads(manage("integrations_token", "tls", "--reveal").out)["token"]
    other = GuardedSession(ca_bundle=oidc.ca_path)
    mount_client_certificate(
        other, client_ssl_context(oidc.certificates["other"], ca_bundle=oidc.ca_path)
    )
    answer = other.get(oidc.url + "/resource/mtls", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["error_description"] == "the token is bound to another certificate"


def test_a_wrong_certificate_is_refused_clearly(oidc: OIDCProvider) -> None:
    """The tls client presents another client's certificate: the token endpoint refuses
    it, and the error carries the server's error and description."""
    certificate_client(oidc, "impostor", "tls", oidc.certificates["other"])
    with pytest.raises(TokenEndpointError) as caught:
        services.request("impostor", "GET", "mtls")
    assert caught.value.status_code == 401 and caught.value.error == "invalid_client"
    assert "impostor: the token URL (127.0.0.1:" in str(caught.value)
    result = services.run_test("impostor")
    assert not result.ok and "invalid_client" in result.error
    assert "invalid_client" in CallLog.objects.latest("id").error


def test_a_client_certificate_is_presented_by_any_auth_type(oidc: OIDCProvider) -> None:
    """The certificate belongs to the integration: a private_key_jwt client presents it
    too (here to the mTLS resource, which wants a certificate-bound token: refused, but
    with the certificate seen)."""
    auth = {"type": "client_assertion", "algorithm": "ES256", "client_id": "assertion",
            "key": oidc.assertion_keys["assertion"], "issuer": oidc.issuer}
    load(entry(oidc, "both", auth, path="mtls", client_certificate=oidc.certificates["tls"]))
    session = services.get_session("both")
    assert session.client_certificate is not None
    assert session.client_certificate.thumbprint == parse_client_certificate(
        oidc.certificates["tls"]
    ).thumbprint
    response = services.request("both", "GET", "mtls")
    assert response.status_code == 401  # a private_key_jwt token is not certificate-bound
    assert body(response)["error_description"] == "unknown or unbound token"


def test_an_expired_certificate_is_refused_on_import(oidc: OIDCProvider) -> None:
    expired, _ = self_signed("expired-client", days=-1)
    with pytest.raises(InvalidConfiguration, match="expired on") as caught:
        certificate_client(oidc, "expired", "selfsigned", expired)
    assert caught.value.field == "client_certificate"


def test_a_certificate_that_does_not_match_its_key_is_refused(oidc: OIDCProvider) -> None:
    tls = oidc.certificates["tls"]
    other = oidc.certificates["other"]
    cert_of_tls = tls[tls.index("-----BEGIN CERTIFICATE-----") :]
    key_of_other = other[: other.index("-----BEGIN CERTIFICATE-----")]
    with pytest.raises(InvalidConfiguration, match="does not belong") as caught:
        certificate_client(oidc, "mismatch", "tls", key_of_other + cert_of_tls)
    assert caught.value.field == "client_certificate"


def test_the_client_certificate_type_needs_a_certificate(oidc: OIDCProvider) -> None:
    auth = {"type": "client_certificate", "client_id": "tls", "issuer": oidc.issuer}
    with pytest.raises(InvalidConfiguration, match="needs a client certificate") as caught:
        load(entry(oidc, "nocert", auth, path="mtls"))
    assert caught.value.field == "client_certificate"
