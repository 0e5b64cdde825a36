"""Key custody end to end (docs/key-custody.md): a configuration file naming a SoftHSM2
or moto KMS key is imported, a test call goes to a loopback API that verifies the token
with joserfc against the device's own public key, and the call log says ok. Faults are
clear errors on save or in the call and its log row; the PIN never shows (security.md
#32); tokens are cached, so the device signs once per token lifetime."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import requests
from django.test import Client

from integrations import services
from integrations.models import CallLog, Integration
from tests.commands.helpers import manage
from tests.loopback import LoopbackServer, Recorded, Reply
from tests.signers.custody import (
    HSM_ALGORITHMS,
    KMS_ALGORITHMS,
    fresh_hsm,
    hsm_pem,
    hsm_signer,
    import_entry,
    kms_pem,
    kms_signer,
    no_pin_in,
    verifying_api,
)
from tests.signers.devices import free_port
from tests.signers.verify import assert_public

pytestmark = pytest.mark.django_db


# -- end to end ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", HSM_ALGORITHMS)
def test_hsm_key_import_test_call_verified(softhsm, pin_env, server, tmp_path, algorithm):
    if algorithm == "EdDSA" and not softhsm["ed25519"]:
        pytest.skip("this SoftHSM2 build cannot make Ed25519 keys")
    signer = hsm_signer(softhsm, algorithm)
    seen = verifying_api(server, hsm_pem(softhsm, algorithm), algorithm)
    ran = import_entry(tmp_path, signer, base_url=f"{server.url}/api/", algorithm=algorithm)
    assert ran.code == 0, ran.err
    tested = manage("integrations_test", "hsm")
    assert tested.code == 0, tested.out + tested.err
    row = CallLog.objects.get(integration__slug="hsm")
    assert row.ok and row.status_code == 200 and row.is_test
    assert seen and seen[0]["alg"] == algorithm
    no_pin_in(ran.out, ran.err, tested.out, tested.err)


@pytest.mark.parametrize("algorithm", KMS_ALGORITHMS)
def test_kms_key_import_test_call_verified(kms, server, tmp_path, algorithm):
    signer = kms_signer(kms, algorithm)
    seen = verifying_api(server, kms_pem(kms, signer["key_id"]), algorithm)
    ran = import_entry(tmp_path, signer, slug="kms", base_url=f"{server.url}/api/",
                       algorithm=algorithm)
    assert ran.code == 0, ran.err
    tested = manage("integrations_test", "kms")
    assert tested.code == 0, tested.out + tested.err
    assert CallLog.objects.get(integration__slug="kms").ok
    assert seen[0]["alg"] == algorithm


def test_the_jwks_publishes_the_device_key(softhsm, pin_env, tmp_path):
    """security.md #33 on a device key: the JWK is the device's public key, allowlisted."""
    signer = hsm_signer(softhsm, "ES256")
    assert import_entry(tmp_path, signer, algorithm="ES256").code == 0
    (jwk,) = Client().get("/integrations/hsm/jwks.json").json()["keys"]
    assert_public(jwk)
    fresh = fresh_hsm(softhsm, "ES256").public_jwk()
    assert {k: jwk[k] for k in ("kty", "crv", "x", "y")} == {
        k: fresh[k] for k in ("kty", "crv", "x", "y")
    }
    assert jwk["kid"] == fresh["kid"]  # the thumbprint


# -- faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "algorithm", "field", "message"),
    [
        ({"pin": {"env": "WRONG_PIN"}}, "RS256", "auth.signer_pin", "wrong PIN"),
        ({"key_label": "no-such-key"}, "RS256", "auth.signer", "key_label: "),
        ({"key_label": "p256"}, "RS256", "auth.signer", "RS256 needs an RSA key"),
        ({"token_label": "no-such-token"}, "RS256", "auth.signer", "token_label: "),
        ({"module": "/nonexistent/lib.so"}, "RS256", "auth.signer", "does not exist"),
        ({"pin": None}, "RS256", "auth.signer_pin", "needs the token's PIN"),
    ],
    ids=["wrong-pin", "unknown-label", "wrong-key-type", "unknown-token", "no-module", "no-pin"],
)
def test_hsm_faults_are_refused_on_import(
    softhsm, pin_env, monkeypatch, tmp_path, changes, algorithm, field, message
):
    monkeypatch.setenv("WRONG_PIN", "CANARY-wrong-pin-0000")
    ran = import_entry(tmp_path, hsm_signer(softhsm, algorithm, **changes), algorithm=algorithm)
    assert ran.code == 1
    assert f"hsm: {field}: " in ran.err and message in ran.err, ran.err
    assert len(ran.err.strip().splitlines()) == 1 and "Traceback" not in ran.err
    no_pin_in(ran.out, ran.err)
    assert not Integration.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key_id": "ECC"}, "RS256 needs RSASSA_PKCS1_V1_5_SHA_256"),
        ({"key_id": "arn:aws:kms:eu-west-1:123456789012:key/nope"}, "no such key"),
        ({"key_id": "ENCRYPT"}, "not a SIGN_VERIFY key"),
        ({"endpoint_url": "REFUSING"}, "refused get_public_key"),
    ],
    ids=["wrong-key-spec", "unknown-key", "encrypt-key", "access-denied"],
)
def test_kms_faults_are_refused_on_import(kms, server, tmp_path, changes, message):
    ids = {"ECC": kms["keys"]["ECC_NIST_P256"], "ENCRYPT": kms["encrypt"]}
    refusing_kms(server, kms, refuse={"GetPublicKey": "AccessDeniedException"})
    changes = {
        name: ids.get(value, server.url if value == "REFUSING" else value)
        for name, value in changes.items()
    }
    signer = kms_signer(kms, "RS256", **changes)
    ran = import_entry(tmp_path, signer, slug="kms")
    assert ran.code == 1 and "kms: auth.signer" in ran.err and message in ran.err, ran.err
    assert len(ran.err.strip().splitlines()) == 1


def test_unreachable_kms_fails_the_call_not_the_save(kms, server, tmp_path):
    """An endpoint that cannot be reached now may be right (a VPC endpoint seen only
    from workers): saved; the call fails with a clear SigningError, logged; commands
    print one line and exit 1."""
    signer = kms_signer(kms, "ES256", endpoint_url=f"http://127.0.0.1:{free_port()}")
    ran = import_entry(tmp_path, signer, slug="kms", base_url=f"{server.url}/api/",
                       algorithm="ES256")
    assert ran.code == 0, ran.err
    tested = manage("integrations_test", "kms")
    assert tested.code == 1
    row = CallLog.objects.get(integration__slug="kms")
    assert not row.ok and row.status_code is None
    assert "unreachable" in row.error and "Traceback" not in row.error
    token = manage("integrations_token", "kms")
    assert token.code == 1 and "unreachable" in token.err
    assert len(token.err.strip().splitlines()) == 1 and "Traceback" not in token.err
    assert not server.requests  # nothing was sent without a token
    # The JWKS cannot be served without the key that signs: 503, not a JWKS without it.
    jwks = Client().get("/integrations/kms/jwks.json")
    assert jwks.status_code == 503 and jwks["Cache-Control"] == "no-store"


def refusing_kms(server: LoopbackServer, kms: dict[str, Any], refuse: dict[str, str]) -> None:
    """A KMS endpoint on ``server`` that answers like moto except for the operations in
    ``refuse`` (X-Amz-Target name -> error code), which it refuses as KMS does (HTTP 400
    with ``__type``; moto models neither key policies nor disabled keys when signing)."""

    def answer(request: Recorded) -> Reply:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        if operation in refuse:
            body = {"__type": refuse[operation], "message": "User: CANARY is not authorized"}
            return Reply(400, body, {"Content-Type": "application/x-amz-json-1.1"})
        names = ("Content-Type", "X-Amz-Target", "X-Amz-Date", "Authorization")
        relayed = requests.post(
            kms["endpoint_url"] + "/",
            data=request.body,
            headers={n: request.headers[n] for n in names if n in request.headers},
            timeout=10,
        )
        content_type = relayed.headers.get("Content-Type", "application/x-amz-json-1.1")
        return Reply(relayed.status_code, relayed.content, {"Content-Type": content_type})

    server.route("POST", "/", answer)


def test_a_kms_that_refuses_at_call_time_is_in_the_call_log(kms, server, tmp_path):
    api = LoopbackServer()
    with api:
        refusing_kms(server, kms, refuse={"Sign": "AccessDeniedException"})
        signer = kms_signer(kms, "ES256", endpoint_url=server.url)
        verifying_api(api, kms_pem(kms, signer["key_id"]), "ES256")
        ran = import_entry(tmp_path, signer, slug="kms", base_url=f"{api.url}/api/",
                           algorithm="ES256")
        assert ran.code == 0, ran.err
        row = services.run_test("kms")
    assert not row.ok and row.status_code is None
    assert "refused sign" in row.error and "access denied" in row.error
    assert "CANARY" not in row.error and not api.requests


def test_a_pin_changed_on_the_token_fails_the_call_clearly(softhsm, pin_env, server, tmp_path):
    """The stored PIN no longer opens the token (changed by the HSM's officer): the
    call fails with 'wrong PIN', in the log row too, and no PIN is shown anywhere."""
    assert import_entry(tmp_path, hsm_signer(softhsm, "RS256"),
                        base_url=f"{server.url}/api/").code == 0
    integration = Integration.objects.get(slug="hsm")
    integration.set_secrets({"signer_pin": "CANARY-wrong-pin-0000"})
    Integration.objects.filter(pk=integration.pk).update(
        encrypted_secrets=integration.encrypted_secrets
    )
    tested = manage("integrations_test", "hsm")
    assert tested.code == 1
    row = CallLog.objects.get(integration__slug="hsm")
    assert not row.ok and "wrong PIN" in row.error
    no_pin_in(tested.out, tested.err, row.error)


def test_a_missing_extra_names_the_pip_command(softhsm, pin_env, kms, monkeypatch, tmp_path):
    """Without python-pkcs11 or boto3 a configured signer fails validation naming the
    extra to install."""
    monkeypatch.setitem(sys.modules, "pkcs11", None)
    monkeypatch.setitem(sys.modules, "boto3", None)
    ran = import_entry(tmp_path, hsm_signer(softhsm, "RS256"))
    assert ran.code == 1 and 'pip install "django-integrations[pkcs11]"' in ran.err
    ran = import_entry(tmp_path, kms_signer(kms, "RS256"), slug="kms")
    assert ran.code == 1 and 'pip install "django-integrations[kms]"' in ran.err
