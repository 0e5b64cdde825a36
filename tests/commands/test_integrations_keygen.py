"""integrations_keygen: a new key pair stored encrypted, only its public half shown."""

from __future__ import annotations

import json

import pytest

from integrations import services
from integrations.models import Integration
from tests import jose
from tests.commands.helpers import manage
from tests.keys import ec_pem, key_for, public_pem
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


def rs256(make_integration, **fields):
    return make_integration(
        auth_config={"algorithm": "RS256", "claims": {"aud": "billing"}},
        secrets={"key": key_for("RS256")}, **fields,
    )


def test_replace_stores_a_new_key_whose_public_half_verifies_tokens(server, make_integration):
    """The printed public PEM verifies the tokens the integration now signs (joserfc);
    the private half never appears in the output (security.md #26, #29)."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    rs256(make_integration, base_url=f"{server.url}/api/")
    ran = manage("integrations_keygen", "billing", "--replace")
    assert ran.code == 0, ran.err
    assert ran.out.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in ran.out + ran.err
    stored = Integration.objects.get().get_secrets()["key"]
    assert stored != key_for("RS256") and public_pem(stored).strip() == ran.out.strip()
    services.request("billing", "GET", "x")
    jose.verify(server.requests[-1].bearer, ran.out, "RS256")


def test_an_existing_key_is_kept_without_replace(make_integration):
    """Overwriting a working key needs --replace: exit 2, stored key unchanged."""
    rs256(make_integration)
    ran = manage("integrations_keygen", "billing")
    assert ran.code == 2 and "--replace" in ran.err
    assert Integration.objects.get().get_secrets()["key"] == key_for("RS256")


def test_preset_gets_the_key_type_its_provider_requires(make_integration):
    """App Store Connect (ES256) gets an EC P-256 key in its private_key field; --jwk
    prints it as a JWK with the configured kid."""
    make_integration(
        "asc", auth_type="app_store_connect",
        auth_config={"issuer_id": "57246542-96fe-1a63-e053-0824d011072a", "key_id": "2X9R4HXF34"},
        secrets={"private_key": ec_pem("P-256")},
    )
    ran = manage("integrations_keygen", "asc", "--replace", "--jwk")
    assert ran.code == 0, ran.err
    jwk = json.loads(ran.out)
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in jwk
    assert Integration.objects.get().get_secrets()["private_key"] != ec_pem("P-256")


def test_public_prints_the_stored_keys_public_half(make_integration):
    """--public shows the stored key's public half and changes nothing."""
    rs256(make_integration)
    ran = manage("integrations_keygen", "billing", "--public")
    assert ran.code == 0 and ran.out.strip() == public_pem(key_for("RS256")).strip()
    assert "thumbprint" in ran.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 2, "no integration with slug 'nope'"),
        (["billing", "--replace"], 2, "shared secret"),
        (["billing", "--public"], 1, "shared secret"),
    ],
)
def test_mistakes_exit_with_one_line(make_integration, args, code, message):
    """Unknown slug and HMAC integrations (no key pair) fail with one clear line."""
    make_integration()
    ran = manage("integrations_keygen", *args)
    assert ran.code == code and message in ran.err


def test_kind_must_suit_the_algorithm(make_integration):
    """--kind that cannot sign the configured algorithm is refused before anything changes."""
    rs256(make_integration)
    ran = manage("integrations_keygen", "billing", "--kind", "ec-p256", "--replace")
    assert ran.code == 2 and "not RS256" in ran.err
    assert Integration.objects.get().get_secrets()["key"] == key_for("RS256")
