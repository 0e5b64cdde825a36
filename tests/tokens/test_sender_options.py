"""Options of sender-constrained tokens and discovery, and their save-time checks
without I/O (docs/reference.md, Sender-constrained tokens and discovery; security.md
#34-36)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from integrations.certificates import CLIENT_CERTIFICATE
from integrations.models import Integration
from integrations.tokens.dpop import DPoPKey
from integrations.tokens.registry import PROVIDERS, auth_errors
from integrations.tokens.sender import DPOP_KEY, ensure_dpop_key, form_fields
from integrations.tokens.sender_checks import NOT_READ, sender_errors
from integrations.validation import auth_structure_errors
from tests.keys import ec_pem, ed25519_pem
from tests.oidc.server import self_signed

ISSUER = "https://as.example.com"
TOKEN_URL = "https://as.example.com/token"


def assertion(**options: Any) -> dict[str, Any]:
    return {"algorithm": "ES256", "key": ec_pem(), "client_id": "c1", **options}


def errors_of(auth_type: str, options: dict[str, Any]) -> dict[str, list[str]]:
    return auth_errors(auth_type, options)[0]


def cleaned(auth_type: str, options: dict[str, Any]) -> dict[str, Any]:
    errors, result = auth_errors(auth_type, options)
    assert not errors, errors
    return result


def metadata(**values: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "token_endpoint": TOKEN_URL,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "Ed25519"],
        "dpop_signing_alg_values_supported": ["ES256"],
        **values,
    }


# -- the Options forms --


@pytest.mark.parametrize("auth_type", ["jwt_grant", "client_assertion", "client_certificate"])
def test_dpop_issuer_and_params_are_options_of_the_three_flows(auth_type: str) -> None:
    fields = PROVIDERS[auth_type].Options.base_fields
    assert {"issuer", "dpop", "dpop_algorithm", "params", "token_url", "scope"} <= set(fields)
    assert fields["dpop_algorithm"].initial == "ES256"


def test_token_url_or_issuer_is_required() -> None:
    assert "auth.token_url" in errors_of("client_assertion", assertion())
    assert not errors_of("client_assertion", assertion(token_url=TOKEN_URL))
    assert not errors_of("client_assertion", assertion(issuer=ISSUER))
    assert "auth.token_url" in errors_of("client_certificate", {"client_id": "c1"})


@pytest.mark.parametrize(
    "issuer", ["http://as.example.com", "https://as.example.com/?tenant=1", "https://u:p@as/"]
)
def test_the_issuer_is_an_https_url_without_query_or_credentials(issuer: str) -> None:
    assert "auth.issuer" in errors_of("client_assertion", assertion(issuer=issuer))


def test_params_may_hold_lists_sent_once_per_item() -> None:
    """RFC 8707: several resource indicators are several ``resource`` fields."""
    params = {"resource": ["https://a.example/", "https://b.example/"], "audience": "x"}
    options = cleaned("client_assertion", assertion(token_url=TOKEN_URL, params=params))
    assert options["params"] == params
    assert form_fields(params) == [
        ("resource", "https://a.example/"),
        ("resource", "https://b.example/"),
        ("audience", "x"),
    ]


@pytest.mark.parametrize(
    "params",
    [{"resource": []}, {"n": 1}, {"resource": ["a", 2]}, ["resource"]],
)
def test_malformed_params_are_refused(params: Any) -> None:
    errors = errors_of("client_assertion", assertion(token_url=TOKEN_URL, params=params))
    assert "auth.params" in errors


@pytest.mark.parametrize(
    ("auth_type", "name"),
    [
        ("client_assertion", "client_assertion"),
        ("client_assertion", "grant_type"),
        ("jwt_grant", "assertion"),
        ("jwt_grant", "client_secret"),
        ("client_certificate", "grant_type"),
    ],
)
def test_params_cannot_override_what_the_flow_sets(auth_type: str, name: str) -> None:
    options = {"token_url": TOKEN_URL, "params": {name: "x"}, "client_id": "c1"}
    if auth_type != "client_certificate":
        options.update(algorithm="ES256", key=ec_pem())
    assert "set by the app" in errors_of(auth_type, options)["auth.params"][0]


def test_dpop_algorithm_is_one_the_app_can_prove_with() -> None:
    options = assertion(token_url=TOKEN_URL, dpop=True, dpop_algorithm="HS256")
    assert "auth.dpop_algorithm" in errors_of("client_assertion", options)
    default = cleaned("client_assertion", assertion(token_url=TOKEN_URL, dpop=True))
    assert default["dpop_algorithm"] == "ES256"


@pytest.mark.parametrize("algorithm", ["EdDSA", "Ed25519"])
def test_ed25519_is_accepted_under_both_names(algorithm: str) -> None:
    options = {"algorithm": algorithm, "key": ed25519_pem(), "token_url": TOKEN_URL}
    assert cleaned("client_assertion", {**options, "client_id": "c1"})["algorithm"] == algorithm
    assert cleaned("jwt_grant", options)["algorithm"] == algorithm


def test_jwt_grant_client_authentication_needs_a_client_id_and_one_method() -> None:
    grant = {"algorithm": "ES256", "key": ec_pem(), "token_url": TOKEN_URL}
    assert "auth.client_id" in errors_of("jwt_grant", {**grant, "client_secret": "s" * 32})
    assert "auth.client_id" in errors_of("jwt_grant", {**grant, "client_assertion": True})
    both = {**grant, "client_id": "c", "client_secret": "s" * 32, "client_assertion": True}
    assert "auth.client_assertion" in errors_of("jwt_grant", both)
    assert not errors_of("jwt_grant", {**grant, "client_id": "c", "client_secret": "s" * 32})


def test_the_client_secret_is_a_secret() -> None:
    cls = PROVIDERS["jwt_grant"]
    assert "client_secret" in cls.secret_fields
    problems = auth_structure_errors(cls, "jwt_grant", {"client_secret": "s"})
    assert ("auth.client_secret", "is a secret: it is stored encrypted, never among plain "
            "options") in problems


# -- sender_errors: the checks against the cached metadata (no I/O) --


def check(
    auth_type: str, options: dict[str, Any], cached: Any, secrets: dict[str, str] | None = None
) -> dict[str, str]:
    found = sender_errors(PROVIDERS[auth_type], cleaned(auth_type, options), secrets or {}, cached)
    return dict(found)


def test_metadata_must_have_been_read_for_this_issuer() -> None:
    """security.md #36: the cached document's issuer is the configured one, exactly."""
    options = assertion(issuer=ISSUER)
    assert check("client_assertion", options, {}) == {"auth.issuer": NOT_READ}
    other = metadata(issuer=ISSUER + "/")
    assert check("client_assertion", options, other) == {"auth.issuer": NOT_READ}
    assert check("client_assertion", options, metadata()) == {}


def test_an_assertion_algorithm_the_server_does_not_list_is_refused() -> None:
    options = assertion(issuer=ISSUER, algorithm="EdDSA", key=ed25519_pem())
    found = check("client_assertion", options, metadata())
    assert "does not accept 'EdDSA'" in found["auth.algorithm"]
    # Listed under its fully specified name only: EdDSA is refused, Ed25519 accepted.
    assert check("client_assertion", {**options, "algorithm": "Ed25519"}, metadata()) == {}


def test_a_dpop_algorithm_the_server_does_not_list_is_refused() -> None:
    key = {DPOP_KEY: DPoPKey.generate("EdDSA").to_pem()}
    options = assertion(issuer=ISSUER, dpop=True, dpop_algorithm="EdDSA")
    found = check("client_assertion", options, metadata(), key)
    assert "does not accept 'EdDSA' DPoP proofs" in found["auth.dpop_algorithm"]
    silent = metadata(dpop_signing_alg_values_supported=[])
    assert "lists no DPoP algorithms" in check("client_assertion", options, silent, key)[
        "auth.dpop_algorithm"
    ]


def test_dpop_on_needs_a_stored_proof_key_of_its_algorithm() -> None:
    options = assertion(token_url=TOKEN_URL, dpop=True)
    assert "no DPoP proof key" in check("client_assertion", options, {})["auth.dpop"]


def test_without_token_url_the_metadata_must_name_the_token_endpoint() -> None:
    found = check("client_assertion", assertion(issuer=ISSUER), metadata(token_endpoint=""))
    assert "names no token_endpoint" in found["auth.token_url"]


def test_the_client_certificate_type_wants_a_tls_method() -> None:
    certificate = self_signed("c")[0]
    options = {"client_id": "c1", "issuer": ISSUER}
    secrets = {CLIENT_CERTIFICATE: certificate}
    methods = metadata(token_endpoint_auth_methods_supported=["private_key_jwt"])
    assert "tls_client_auth" in check("client_certificate", options, methods, secrets)[
        "auth.issuer"
    ]
    ok = metadata(token_endpoint_auth_methods_supported=["self_signed_tls_client_auth"])
    assert check("client_certificate", options, ok, secrets) == {}
    assert "needs a client certificate" in check("client_certificate", options, ok)[
        CLIENT_CERTIFICATE
    ]


@pytest.mark.django_db
def test_a_bad_client_certificate_is_refused_on_any_integration(make_integration: Any) -> None:
    """security.md #35: checked on save whatever the auth type, under its own name."""
    expired = self_signed("old", days=-3)[0]
    integration = make_integration()
    integration.update_secrets({CLIENT_CERTIFICATE: expired})
    with pytest.raises(ValidationError) as caught:
        integration.full_clean()
    assert "expired on" in caught.value.message_dict[CLIENT_CERTIFICATE][0]
    integration.update_secrets({CLIENT_CERTIFICATE: self_signed("new", days=10)[0]})
    integration.full_clean()  # valid; the expiry within 30 days is a warning, not an error


@pytest.mark.django_db
def test_ensure_dpop_key_generates_once_and_follows_the_algorithm() -> None:
    integration = Integration(slug="d", auth_type="client_assertion")
    integration.auth_config = {"dpop": True, "dpop_algorithm": "ES256"}
    first = ensure_dpop_key(integration)
    assert first is not None and first.algorithm == "ES256"
    again = ensure_dpop_key(integration)
    assert again is not None and again.jkt() == first.jkt()
    integration.auth_config = {"dpop": True, "dpop_algorithm": "EdDSA"}
    changed = ensure_dpop_key(integration)
    assert changed is not None and changed.jkt() != first.jkt()
    integration.auth_config = {"dpop": False}
    assert ensure_dpop_key(integration) is None
