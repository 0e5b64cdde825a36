"""Several keys per integration (docs/key-custody.md): the integrations_keys command,
rollover from the active key to the next one, send_kid, and the JWKS view with its
member allowlist (security.md #33). Device-held keys: tests/signers/test_custody_*."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.test import Client, override_settings

from integrations import keypairs, services, signingkeys
from integrations.exceptions import SecretDecryptionError
from integrations.models import Integration, KeyState, SigningKey
from integrations.signers.base import PUBLIC_JWK_MEMBERS, jwk_thumbprint
from tests import jose
from tests.commands.helpers import manage
from tests.keys import ec_pem, ed25519_pem, public_pem, rsa_pem
from tests.loopback import Reply
from tests.signers.verify import PRIVATE_MEMBERS, assert_public

pytestmark = pytest.mark.django_db


def bearer(make_integration: Any, slug: str = "billing", **fields: Any) -> Integration:
    config = {"algorithm": "RS256", "claims": {"iss": "shop"}, **fields.pop("config", {})}
    return make_integration(
        slug,
        auth_type="jwt_bearer",
        auth_config=config,
        secrets={"key": fields.pop("key", rsa_pem())},
        **fields,
    )


def jwks_of(slug: str, **headers: str) -> Any:
    return Client().get(f"/integrations/{slug}/jwks.json", **headers)


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


def keys(*args: str) -> Any:
    return manage("integrations_keys", *args)


@pytest.fixture
def api(server: Any) -> Any:
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    return server


def sent_token(api: Any, slug: str = "billing") -> str:
    services.request(slug, "GET", "x")
    token: str = api.requests[-1].bearer
    return token


# -- the JWKS view ---------------------------------------------------------------------


def test_jwks_publishes_the_active_key_with_cache_headers(make_integration):
    """security.md #33: allowlisted members only; kid is the RFC 7638 thumbprint."""
    bearer(make_integration)
    response = jwks_of("billing")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert_public(key)
    assert key["kid"] == jwk_thumbprint(key) and key["alg"] == "RS256" and key["use"] == "sig"
    again = jwks_of("billing", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["ETag"] == response["ETag"] and not again.content
    other = jwks_of("billing", HTTP_IF_NONE_MATCH='"something-else"')
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("algorithm", "material", "kty"),
    [("PS256", rsa_pem, "RSA"), ("ES256", ec_pem, "EC"), ("EdDSA", ed25519_pem, "OKP")],
)
def test_every_jwk_member_is_on_the_allowlist(make_integration, algorithm, material, kty):
    """security.md #33, for each key family, active and next."""
    bearer(make_integration, config={"algorithm": algorithm}, key=material())
    kind = {"RSA": "rsa-2048", "EC": "ec-p256", "OKP": "ed25519"}[kty]
    assert keys("billing", "--add-next", "--kind", kind).code == 0
    published = jwks_of("billing").json()["keys"]
    assert len(published) == 2
    for jwk in published:
        assert set(jwk) <= set(PUBLIC_JWK_MEMBERS) and not set(jwk) & PRIVATE_MEMBERS
        assert jwk["kty"] == kty and jwk["use"] == "sig"


def test_jwks_is_404_for_unknown_disabled_and_hmac_integrations(make_integration):
    make_integration("shared")  # HS256
    bearer(make_integration, "off", enabled=False)
    for slug in ("nope", "shared", "off"):
        response = jwks_of(slug)
        assert response.status_code == 404, slug
        assert "keys" not in response.json()
    assert Client().post("/integrations/billing/jwks.json").status_code == 405


def test_a_private_member_stored_by_mistake_is_not_published(make_integration):
    """security.md #33: the view filters through the allowlist whatever a row holds."""
    integration = bearer(make_integration)
    assert keys("billing", "--add-next").code == 0
    row = integration.signing_keys.get()
    SigningKey.objects.filter(pk=row.pk).update(public_jwk={**row.public_jwk, "d": "AAAA"})
    for jwk in jwks_of("billing").json()["keys"]:
        assert "d" not in jwk


# -- rollover --------------------------------------------------------------------------


def test_rollover_by_command(make_integration, api):
    """add next (published, send_kid on) -> promote (next signs, active retired, still
    published) -> drop retired; tokens verify with the key the JWKS names."""
    bearer(make_integration, base_url=f"{api.url}/api/")
    first = sent_token(api)
    assert "kid" not in header_of(first)  # send_kid is off by default
    added = keys("billing", "--add-next", "--kind", "ec-p256")
    assert added.code == 0, added.err
    assert "send_kid is now on" in added.err
    assert "BEGIN PUBLIC KEY" in added.out and '"kty": "EC"' in added.out
    active, nxt = jwks_of("billing").json()["keys"]
    assert (active["alg"], nxt["alg"]) == ("RS256", "ES256")
    # Still signed by the active key, now naming it.
    assert header_of(sent_token(api))["kid"] == active["kid"]
    listing = keys("billing")
    assert listing.code == 0
    assert [line.split()[:3] for line in listing.out.splitlines()[1:]] == [
        [active["kid"], "active", "RS256"],
        [nxt["kid"], "next", "ES256"],
    ]
    promoted = keys("billing", "--promote")
    assert promoted.code == 0, promoted.err
    assert f"{nxt['kid']} is now active" in promoted.out
    token = sent_token(api)
    assert header_of(token) == {"alg": "ES256", "typ": "JWT", "kid": nxt["kid"]}
    pem = signingkeys.pem_of(signingkeys.public_key_from_jwk(nxt))
    jose.verify(token, pem, "ES256")
    assert [k["kid"] for k in jwks_of("billing").json()["keys"]] == [nxt["kid"], active["kid"]]
    retired = SigningKey.objects.get(kid=active["kid"])
    assert retired.state == KeyState.RETIRED and retired.encrypted_secrets == ""
    dropped = keys("billing", "--drop-retired")
    assert dropped.code == 0 and active["kid"] in dropped.out
    assert [k["kid"] for k in jwks_of("billing").json()["keys"]] == [nxt["kid"]]


def test_key_id_names_the_key_and_follows_it_on_promotion(make_integration, api):
    """A configured key_id is the kid (always sent, as before); the next key's --kid
    becomes key_id when promoted."""
    bearer(make_integration, base_url=f"{api.url}/api/", config={"key_id": "k1"})
    assert header_of(sent_token(api))["kid"] == "k1"
    assert jwks_of("billing").json()["keys"][0]["kid"] == "k1"
    assert keys("billing", "--add-next", "--kid", "k2").code == 0
    assert keys("billing", "--promote").code == 0
    integration = Integration.objects.get(slug="billing")
    assert integration.auth_config["key_id"] == "k2"
    assert header_of(sent_token(api))["kid"] == "k2"
    assert [k["kid"] for k in jwks_of("billing").json()["keys"]] == ["k2", "k1"]


def test_app_store_connect_takes_the_kid_from_the_operator(make_integration, api, tmp_path):
    """Apple issues the key id: the next key needs --kid; promotion sets key_id."""
    make_integration(
        "asc",
        base_url=f"{api.url}/api/",
        auth_type="app_store_connect",
        auth_config={"issuer_id": "iss-1", "key_id": "ABC123DEFG"},
        secrets={"private_key": ec_pem()},
    )
    refused = keys("asc", "--add-next")
    assert refused.code == 1 and "--kid" in refused.err and len(refused.err.splitlines()) == 1
    p8 = tmp_path / "AuthKey_NEW.p8"
    p8.write_text(keypairs.generate("ec-p256").private_pem)  # as Apple hands it out
    added = keys("asc", "--add-next", "--key-file", str(p8), "--kid", "XYZ987WVUT")
    assert added.code == 0, added.err
    assert keys("asc", "--promote").code == 0
    assert Integration.objects.get(slug="asc").auth_config["key_id"] == "XYZ987WVUT"
    assert header_of(sent_token(api, "asc"))["kid"] == "XYZ987WVUT"


def test_thumbprint_presets_take_no_kid(make_integration):
    make_integration(
        "gh",
        auth_type="github_app",
        auth_config={"app_id": "1", "installation_id": "2"},
        secrets={"private_key": rsa_pem()},
    )
    ran = keys("gh", "--add-next", "--kid", "mine")
    assert ran.code == 1 and "takes no kid" in ran.err
    assert keys("gh", "--add-next").code == 0
    assert Integration.objects.get(slug="gh").auth_config["send_kid"] is True


def test_the_next_keys_private_half_is_encrypted_and_bound_to_its_row(make_integration):
    """security.md #9: a next key's ciphertext copied to another row does not decrypt."""
    integration = bearer(make_integration)
    bearer(make_integration, "other")
    assert keys("billing", "--add-next").code == 0
    assert keys("other", "--add-next").code == 0
    mine = integration.signing_keys.get()
    theirs = SigningKey.objects.exclude(pk=mine.pk).get()
    assert "PRIVATE" not in mine.encrypted_secrets
    assert "BEGIN PRIVATE KEY" in mine.get_secrets()["key"]
    theirs.encrypted_secrets = mine.encrypted_secrets
    with pytest.raises(SecretDecryptionError):
        theirs.get_secrets()


def test_storage_key_rotation_covers_next_keys(make_integration):
    """security.md #8: integrations_rotate_keys re-encrypts next keys' secrets too."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[old]):
        bearer(make_integration)
        assert keys("billing", "--add-next").code == 0
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[new, old]):
        assert manage("integrations_rotate_keys").code == 0
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[new]):
        assert SigningKey.objects.get().get_secrets()["key"].startswith("-----BEGIN")


# -- listing and mistakes ----------------------------------------------------------------


def test_listing_never_shows_private_material(make_integration):
    material = rsa_pem()
    bearer(make_integration, key=material)
    assert keys("billing", "--add-next").code == 0
    secret_line = material.splitlines()[3]
    stored = SigningKey.objects.get().get_secrets()["key"].splitlines()[3]
    for ran in (keys("billing"), keys("billing", "--json")):
        assert ran.code == 0
        for text in (ran.out, ran.err):
            assert "PRIVATE" not in text and secret_line not in text and stored not in text
    listed = json.loads(keys("billing", "--json").out)["keys"]
    assert [k["state"] for k in listed] == ["active", "next"]
    assert all(set(k["jwk"]) <= set(PUBLIC_JWK_MEMBERS) for k in listed)
    assert listed[0]["jwk"]["n"] in json.dumps(listed)  # the public half is there
    assert public_pem(material).strip().splitlines()[1] not in keys("billing").out  # no PEM


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 2, "no integration with slug 'nope'"),
        (["billing", "--promote"], 1, "has no next key"),
        (["billing", "--drop-next"], 1, "has no next key"),
        (["billing", "--promote", "--kind", "ec-p256"], 2, "go with --add-next"),
        (["billing", "--add-next", "--kind", "ec-p256", "--key-file", "x"], 2, "give one of"),
        (["billing", "--add-next", "--key-file", "/nonexistent.pem"], 1, "cannot read"),
        (["billing", "--add-next", "--signer", "{bad"], 2, "--signer is not JSON"),
        (["shared", "--add-next"], 1, "signs with a shared secret"),
    ],
)
def test_mistakes_are_one_line(make_integration, args, code, message):
    bearer(make_integration)
    make_integration("shared")
    ran = keys(*args)
    assert ran.code == code, ran.err
    assert message in ran.err and len(ran.err.strip().splitlines()) == 1
    assert "Traceback" not in ran.err


def test_a_second_next_key_is_refused_and_drop_next_removes_it(make_integration):
    bearer(make_integration)
    assert keys("billing", "--add-next").code == 0
    again = keys("billing", "--add-next")
    assert again.code == 1 and "already has a next key" in again.err
    assert keys("billing", "--drop-next").code == 0
    assert not SigningKey.objects.exists()


def test_a_pin_on_the_command_line_is_refused(make_integration):
    """A PIN typed as an argument would stay in shell history and process lists."""
    bearer(make_integration)
    signer = json.dumps({"type": "pkcs11", "module": "/x.so", "token_label": "t",
                         "key_label": "k", "pin": "CANARY-cli-pin"})
    ran = keys("billing", "--add-next", "--signer", signer)
    assert ran.code == 2 and "never on the command line" in ran.err
    assert "CANARY-cli-pin" not in ran.err + ran.out


def test_keygen_keeps_replacing_the_active_key(make_integration):
    """integrations_keygen keeps its meaning; next and retired keys are left alone."""
    integration = bearer(make_integration)
    assert keys("billing", "--add-next").code == 0
    before = jwks_of("billing").json()["keys"]
    assert manage("integrations_keygen", "billing", "--replace").code == 0
    after = jwks_of("billing").json()["keys"]
    assert after[0]["kid"] != before[0]["kid"] and after[1] == before[1]
    assert integration.signing_keys.count() == 1
