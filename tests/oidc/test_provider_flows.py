"""Discovery, DPoP and mutual TLS against node-oidc-provider, a certified OpenID
provider, and its protected resources (tests/oidc/provider.mjs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integrations.exceptions import DiscoveryError
from integrations.http.mtls import parse_client_certificate
from integrations.tokens.discovery import ServerMetadata, discover
from integrations.tokens.dpop import DPoPKey, NonceStore
from tests.oidc import client
from tests.oidc.server import OIDCProvider


@pytest.fixture(scope="module")
def metadata(oidc: OIDCProvider) -> ServerMetadata:
    return discover(client.session(oidc.ca_path), oidc.issuer)


def assertion_form(
    oidc: OIDCProvider, client_id: str, **extra: str
) -> Callable[[], dict[str, str]]:
    def form() -> dict[str, str]:
        signed = client.assertion(client_id, oidc.assertion_keys[client_id], oidc.issuer)
        return client.with_assertion({**client.client_credentials(client_id), **extra}, signed)

    return form


# -- discovery (security.md #36) --


def test_discovery_reads_the_provider_metadata(
    oidc: OIDCProvider, metadata: ServerMetadata
) -> None:
    assert metadata.issuer == oidc.issuer
    assert metadata.token_endpoint == oidc.token_url
    assert metadata.jwks_uri == oidc.url + "/jwks"
    assert metadata.endpoint(mtls=True) == oidc.token_url  # mtls_endpoint_aliases
    assert "ES256" in metadata.dpop_signing_alg_values_supported
    assert "Ed25519" in metadata.token_endpoint_auth_signing_alg_values_supported
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        metadata.token_endpoint_auth_methods_supported
    )
    assert metadata.tls_client_certificate_bound_access_tokens
    # RFC 8414's address first (the fallback is tested in test_discovery.py).
    assert metadata.source == oidc.issuer + "/.well-known/oauth-authorization-server"
    metadata.check_dpop_algorithm("ES256")


def test_discovery_refuses_an_issuer_that_differs(oidc: OIDCProvider) -> None:
    """security.md #36: a trailing slash is already another issuer."""
    with pytest.raises(DiscoveryError, match="not the configured") as caught:
        discover(client.session(oidc.ca_path), oidc.issuer + "/")
    assert caught.value.issuer == oidc.issuer + "/"


def test_discovery_refuses_an_unknown_issuer_path(oidc: OIDCProvider) -> None:
    with pytest.raises(DiscoveryError, match="no authorization server metadata"):
        discover(client.session(oidc.ca_path), oidc.issuer + "/tenant")


# -- private_key_jwt + DPoP (security.md #34) --


def assertion_token_request(oidc: OIDCProvider, client_id: str, **dpop: Any) -> client.Answer:
    """A client_credentials grant at the token URL with ``client_id``'s private_key_jwt
    assertion (and a DPoP proof with ``dpop=key, nonces=...``)."""
    return client.token_request(
        client.session(oidc.ca_path), oidc.token_url, assertion_form(oidc, client_id), **dpop
    )


def dpop_token(oidc: OIDCProvider, key: DPoPKey, nonces: NonceStore) -> str:
    answer = assertion_token_request(oidc, "dpop", dpop=key, nonces=nonces)
    assert answer.status == 200, answer.json
    assert answer.json["token_type"] == "DPoP"
    return str(answer.json["access_token"])


def test_private_key_jwt_with_dpop_retries_once_for_the_nonce(oidc: OIDCProvider) -> None:
    key, nonces = DPoPKey.generate(), NonceStore()
    answer = assertion_token_request(oidc, "dpop", dpop=key, nonces=nonces)
    assert answer.status == 200, answer.json
    assert answer.attempts == 2  # use_dpop_nonce, then the retry with the nonce
    assert answer.json["token_type"] == "DPoP"
    assert nonces.get(oidc.token_url)
    # The nonce is kept: the next request needs no retry.
    again = assertion_token_request(oidc, "dpop", dpop=key, nonces=nonces)
    assert again.status == 200 and again.attempts == 1, again.json


def test_dpop_client_without_a_proof_is_refused(oidc: OIDCProvider) -> None:
    answer = assertion_token_request(oidc, "dpop")
    assert answer.status == 400
    assert answer.json["error"] == "invalid_grant"


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "Ed25519", "ES384", "PS256"])
def test_dpop_bound_token_accepted_at_the_resource(oidc: OIDCProvider, algorithm: str) -> None:
    key, nonces = DPoPKey.generate(algorithm), NonceStore()
    token = dpop_token(oidc, key, nonces)
    answer = client.resource_call(
        client.session(oidc.ca_path), oidc.url + "/resource/dpop?page=2", token, dpop=key
    )
    assert answer.status == 200, answer.json
    assert answer.json["jkt"] == key.jkt()


def test_the_resource_nonce_is_answered_by_one_retry(oidc: OIDCProvider) -> None:
    key, nonces = DPoPKey.generate(), NonceStore()
    token = dpop_token(oidc, key, nonces)
    http = client.session(oidc.ca_path)
    url = oidc.url + "/resource/dpop-nonce"
    first = client.resource_call(http, url, token, dpop=key, nonces=nonces)
    assert first.status == 200 and first.attempts == 2, first.json
    second = client.resource_call(http, url, token, dpop=key, nonces=nonces)
    assert second.status == 200 and second.attempts == 1, second.json


def test_dpop_token_sent_as_bearer_is_refused(oidc: OIDCProvider) -> None:
    key = DPoPKey.generate()
    token = dpop_token(oidc, key, NonceStore())
    answer = client.resource_call(client.session(oidc.ca_path), oidc.url + "/resource/dpop", token)
    assert answer.status == 401
    assert answer.json["error"] == "invalid_token"
    assert answer.headers["WWW-Authenticate"].startswith("DPoP ")


def test_a_replayed_proof_is_refused(oidc: OIDCProvider) -> None:
    key = DPoPKey.generate()
    token = dpop_token(oidc, key, NonceStore())
    url = oidc.url + "/resource/dpop"
    proof = key.proof("GET", url, access_token=token)
    http = client.session(oidc.ca_path)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert http.get(url, headers=headers).status_code == 200
    replay = http.get(url, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error_description"] == "DPoP proof replay detected"


def test_a_proof_from_another_key_is_refused(oidc: OIDCProvider) -> None:
    token = dpop_token(oidc, DPoPKey.generate(), NonceStore())
    answer = client.resource_call(
        client.session(oidc.ca_path), oidc.url + "/resource/dpop", token, dpop=DPoPKey.generate()
    )
    assert answer.status == 401
    assert "does not match the token binding" in answer.json["error_description"]


def test_a_proof_for_another_url_or_method_is_refused(oidc: OIDCProvider) -> None:
    key = DPoPKey.generate()
    token = dpop_token(oidc, key, NonceStore())
    url = oidc.url + "/resource/dpop"
    http = client.session(oidc.ca_path)
    wrong = key.proof("POST", oidc.url + "/resource/other", access_token=token)
    answer = http.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": wrong})
    assert answer.status_code == 401
    assert "htm mismatch" in answer.json()["error_description"]
    assert "htu mismatch" in answer.json()["error_description"]


def test_a_proof_without_ath_is_refused(oidc: OIDCProvider) -> None:
    key = DPoPKey.generate()
    token = dpop_token(oidc, key, NonceStore())
    url = oidc.url + "/resource/dpop"
    headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url)}
    answer = client.session(oidc.ca_path).get(url, headers=headers)
    assert answer.status_code == 401
    assert "ath mismatch" in answer.json()["error_description"]


def test_a_stored_key_reloaded_from_pem_proves_the_same_binding(oidc: OIDCProvider) -> None:
    """The key is stored as PEM and shared by processes: a reloaded key still fits."""
    key = DPoPKey.generate()
    token = dpop_token(oidc, key, NonceStore())
    reloaded = DPoPKey.from_pem(key.to_pem())
    answer = client.resource_call(
        client.session(oidc.ca_path), oidc.url + "/resource/dpop", token, dpop=reloaded
    )
    assert answer.status == 200, answer.json


def test_private_key_jwt_without_dpop_gives_a_bearer_token(oidc: OIDCProvider) -> None:
    answer = assertion_token_request(oidc, "assertion")
    assert answer.status == 200, answer.json
    assert answer.json["token_type"] == "Bearer"


def test_a_client_registered_by_jwks_uri(oidc: OIDCProvider) -> None:
    answer = assertion_token_request(oidc, "rollover")
    assert answer.status == 200, answer.json


# -- mutual TLS (security.md #35) --


@pytest.mark.parametrize("client_id", ["tls", "selfsigned"])
def test_certificate_bound_token_works_with_its_certificate(
    oidc: OIDCProvider, client_id: str, metadata: ServerMetadata
) -> None:
    certificate = oidc.certificates[client_id]
    http = client.session(oidc.ca_path, certificate)
    answer = client.token_request(
        http, metadata.endpoint(mtls=True), client.client_credentials(client_id)
    )
    assert answer.status == 200, answer.json
    token = answer.json["access_token"]
    resource = client.resource_call(http, oidc.url + "/resource/mtls", token)
    assert resource.status == 200, resource.json
    assert resource.json["x5t#S256"] == parse_client_certificate(certificate).thumbprint

    other = client.session(oidc.ca_path, oidc.certificates["other"])
    refused = client.resource_call(other, oidc.url + "/resource/mtls", token)
    assert refused.status == 401
    assert "bound to another certificate" in refused.json["error_description"]
    without = client.resource_call(client.session(oidc.ca_path), oidc.url + "/resource/mtls", token)
    assert without.status == 401


def test_tls_client_auth_with_another_certificate_is_refused(oidc: OIDCProvider) -> None:
    http = client.session(oidc.ca_path, oidc.certificates["other"])
    answer = client.token_request(http, oidc.token_url, client.client_credentials("tls"))
    assert answer.status == 401
    assert answer.json["error"] == "invalid_client"


def test_self_signed_client_without_a_certificate_is_refused(oidc: OIDCProvider) -> None:
    answer = client.token_request(
        client.session(oidc.ca_path), oidc.token_url, client.client_credentials("selfsigned")
    )
    assert answer.status == 401
    assert answer.json["error"] == "invalid_client"
