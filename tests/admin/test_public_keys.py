"""Key pairs generated in the admin, public keys and fingerprints of pasted keys, and
the token preview."""

from __future__ import annotations

import pytest

from integrations.models import Integration
from tests import jose
from tests.admin.helpers import (
    ADD,
    change_url,
    form_data,
    form_errors,
    integration_url,
    messages_of,
    run_test_url,
)
from tests.keys import CANARY, public_pem, rsa_pem
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("rsa-2048", "PS256"), ("ec-p256", "ES256"), ("ec-p384", "ES384"), ("ed25519", "EdDSA")],
)
def test_generated_key_pair_is_stored_and_its_public_key_shown(as_user, server, kind, algorithm):
    """The private key is stored encrypted and never shown; the page shows the public
    PEM and JWK; a test call's token verifies with that public PEM (joserfc)."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"ok": True}))
    client = as_user("operator")
    response = client.post(
        ADD,
        form_data(
            base_url=f"{server.url}/api/", auth_algorithm=algorithm, auth_key="", generate_key=kind
        ),
        follow=True,
    )
    assert response.status_code == 200, form_errors(response)
    integration = Integration.objects.get(slug="billing")
    private = integration.get_secrets()["key"]
    html = response.content.decode()
    public = public_pem(private)
    assert public.strip() in html
    assert "&quot;kty&quot;" in html and "Thumbprint" in html
    assert private.splitlines()[1] not in html
    assert any("key pair" in m for m in messages_of(response))
    client.post(run_test_url(integration))
    header, claims = jose.verify(server.requests[-1].bearer, public, algorithm)
    assert header["alg"] == algorithm and claims["iss"] == "shop"


def test_generated_key_must_suit_the_algorithm(as_user):
    """A key type that cannot sign the chosen algorithm is refused, saying which would."""
    response = as_user("operator").post(
        ADD, form_data(auth_algorithm="RS256", auth_key="", generate_key="ec-p256")
    )
    assert form_errors(response)["generate_key"] == [
        "An EC P-256 key signs ES256, not RS256: "
        "choose one of those algorithms or another key type."
    ]


def test_pasted_private_key_shows_its_public_key(as_user, make_integration):
    """A pasted PEM is summarised by its public key's SHA-256 and public PEM/JWK."""
    integration = make_integration(
        auth_config={"algorithm": "RS256", "key_id": "k1"}, secrets={"key": rsa_pem()}
    )
    html = as_user("operator").get(change_url(integration)).content.decode()
    assert "Signing key: set · SHA256:" in html
    assert public_pem(rsa_pem()).strip() in html and "&quot;kid&quot;: &quot;k1&quot;" in html
    assert rsa_pem().splitlines()[1] not in html


def test_preview_shows_header_and_claims_without_secret(as_user, make_integration):
    """Preview: decoded header and claims of the next token, no signature or secret."""
    integration = make_integration(
        auth_config={
            "algorithm": "HS256",
            "key_id": "k9",
            "claims": {"iss": "shop", "aud": "billing"},
        }
    )
    response = as_user("viewer").get(integration_url("preview", integration))
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "&quot;alg&quot;: &quot;HS256&quot;" in html and "&quot;kid&quot;: &quot;k9&quot;" in html
    )
    assert "&quot;aud&quot;: &quot;billing&quot;" in html and "&quot;exp&quot;" in html
    assert CANARY not in html and "eyJ" not in html


@pytest.mark.parametrize("value", [1e20, -1e20, 2**70])
def test_preview_of_an_impossible_time_says_so(as_user, make_integration, value):
    """security.md #37: a claim time no calendar holds ({"nbf": 1e20}) is shown as not a
    valid time, not a 500."""
    integration = make_integration(
        auth_config={"algorithm": "HS256", "claims": {"iss": "shop", "nbf": value}}
    )
    response = as_user("viewer").get(integration_url("preview", integration))
    assert response.status_code == 200
    assert "not a valid time" in response.content.decode()
