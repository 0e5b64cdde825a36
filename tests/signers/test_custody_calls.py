"""Key custody end to end (docs/key-custody.md): a configuration file naming a SoftHSM2
or moto KMS key is imported, a test call goes to a loopback API that verifies the token
with joserfc against the device's own public key, and the call log says ok. Faults are
clear errors on save or in the call and its log row; the PIN never shows (security.md
#32); tokens are cached, so the device signs once per token lifetime."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from django.core.cache import cache
from django.test import Client

from integrations import services
from integrations.models import CallLog, Integration
from integrations.signers.pkcs11 import Pkcs11Signer
from integrations.tokens.cache import token_cache
from integrations.tokens.custody import signer_cache
from tests import jose
from tests.commands.helpers import manage
from tests.keys import ec_pem, rsa_pem
from tests.loopback import LoopbackServer, Recorded, Reply
from tests.signers.devices import HSM_KEY_FOR, KMS_SPEC_FOR, USER_PIN, free_port
from tests.signers.verify import assert_public

pytestmark = pytest.mark.django_db

HSM_ALGORITHMS = ["RS256", "PS384", "ES256", "ES512", "EdDSA"]
# PS* is end to end on SoftHSM2: moto salts PSS with the maximum length, not the hash
# length RFC 7518 §3.5 (and joserfc) want; tests/signers/test_aws_kms.py covers it.
KMS_ALGORITHMS = ["RS256", "RS512", "ES256", "ES384", "ES512"]


def hsm_signer(softhsm: dict[str, Any], algorithm: str, **changes: Any) -> dict[str, Any]:
    return {
        "type": "pkcs11",
        "module": softhsm["module"],
        "token_label": softhsm["token_label"],
        "key_label": HSM_KEY_FOR[algorithm],
        "pin": {"env": "HSM_PIN"},
        **changes,
    }


def kms_signer(kms: dict[str, Any], algorithm: str, **changes: Any) -> dict[str, Any]:
    return {
        "type": "aws_kms",
        "key_id": kms["keys"][KMS_SPEC_FOR[algorithm]],
        "region": kms["region"],
        "endpoint_url": kms["endpoint_url"],
        **changes,
    }


def kms_pem(kms: dict[str, Any], key_id: str) -> str:
    """The public key as KMS itself reports it (not the app's cached copy)."""
    der = kms["client"].get_public_key(KeyId=key_id)["PublicKey"]
    return serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def hsm_pem(softhsm: dict[str, Any], algorithm: str) -> str:
    """The public key read from the token by a signer of its own (not the app's)."""
    return fresh_hsm(softhsm, algorithm).public_pem()


def fresh_hsm(softhsm: dict[str, Any], algorithm: str) -> Pkcs11Signer:
    return Pkcs11Signer(
        algorithm,
        module=softhsm["module"],
        token_label=softhsm["token_label"],
        key_label=HSM_KEY_FOR[algorithm],
        pin=softhsm["pin"],
    )


def verifying_api(server: LoopbackServer, pem: str, algorithm: str) -> list[dict[str, Any]]:
    """GET /api/ping answers 200 only to a token that verifies with ``pem``."""
    headers: list[dict[str, Any]] = []

    def ping(request: Recorded) -> Reply:
        try:
            header, _ = jose.verify(request.bearer, pem, algorithm)
        except Exception as exc:  # noqa: BLE001
            return Reply(401, {"error": type(exc).__name__})
        headers.append(header)
        return Reply(200, {"ok": True})

    server.route("GET", "/api/ping", ping)
    return headers


def import_entry(tmp_path: Path, signer: dict[str, Any], *, slug: str = "hsm",
                 base_url: str = "http://127.0.0.1:9/api/", algorithm: str = "RS256",
                 **auth: Any) -> Any:
    entry = {
        "slug": slug,
        "base_url": base_url,
        "test_request": {"path": "ping", "expect_status": [200]},
        "auth": {"type": "jwt_bearer", "algorithm": algorithm, "claims": {"iss": "shop"},
                 "lifetime": 300, "signer": signer, **auth},
    }
    path = tmp_path / f"{slug}.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    return manage("integrations_import", str(path))


def no_pin_in(*texts: str) -> None:
    for text in texts:
        assert USER_PIN not in text and "CANARY-wrong" not in text


@pytest.fixture
def pin_env(monkeypatch: pytest.MonkeyPatch, softhsm: dict[str, Any]) -> None:
    monkeypatch.setenv("HSM_PIN", softhsm["pin"])


@pytest.fixture(autouse=True)
def _fresh_signers() -> Any:
    signer_cache.clear()
    yield
    signer_cache.clear()


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


# -- what is stored, what is shown ---------------------------------------------------


def test_export_writes_the_signer_without_its_pin(softhsm, pin_env, tmp_path):
    assert import_entry(tmp_path, hsm_signer(softhsm, "RS256")).code == 0
    exported = manage("integrations_export")
    assert exported.code == 0
    auth = json.loads(exported.out)["integrations"][0]["auth"]
    assert auth["signer"]["pin"] is None and "signer_pin" not in auth and auth["key"] is None
    no_pin_in(exported.out)
    # Exported, then imported again: the PIN is kept.
    path = tmp_path / "exported.json"
    path.write_text(exported.out)
    assert manage("integrations_import", str(path)).code == 0
    assert Integration.objects.get(slug="hsm").get_secrets() == {"signer_pin": USER_PIN}


def test_a_signer_replaces_a_stored_key(softhsm, pin_env, tmp_path, make_integration):
    """Moving a key into an HSM: the stored PEM is removed, not left unused."""
    make_integration("hsm", auth_type="jwt_bearer",
                     auth_config={"algorithm": "RS256", "claims": {}},
                     secrets={"key": rsa_pem()})
    assert import_entry(tmp_path, hsm_signer(softhsm, "RS256")).code == 0
    assert Integration.objects.get(slug="hsm").get_secrets() == {"signer_pin": USER_PIN}


def test_token_cache_keeps_the_device_to_one_signature_per_token(
    softhsm, pin_env, kms, server, tmp_path
):
    """The device signs when a token is minted, not per call: 50 calls, 1 signature per
    integration; a refresh (the cached token gone) is the second."""
    for slug, signer, algorithm in (
        ("hsm", hsm_signer(softhsm, "ES256"), "ES256"),
        ("kms", kms_signer(kms, "ES256"), "ES256"),
    ):
        server.route("GET", f"/{slug}/x", lambda r: Reply(200, {}))
        assert import_entry(tmp_path, signer, slug=slug, base_url=f"{server.url}/{slug}/",
                            algorithm=algorithm).code == 0
        for _ in range(50):
            assert services.request(slug, "GET", "x").status_code == 200
        (device,) = signer_cache.signers(slug)
        assert device.sign_count == 1, slug  # type: ignore[attr-defined]
        # Another process (this one's tokens forgotten) finds the token in the shared
        # cache: still one signature cluster-wide.
        token_cache.clear()
        services.request(slug, "GET", "x")
        assert device.sign_count == 1  # type: ignore[attr-defined]
        cache.clear()  # the shared cache too: the token is minted again
        token_cache.clear()
        services.request(slug, "GET", "x")
        assert device.sign_count == 2  # type: ignore[attr-defined]


def test_rollover_onto_a_device_key(softhsm, pin_env, server, tmp_path, make_integration):
    """A stored key rolled over to an HSM key: add next (--signer), promote; the call
    then verifies with the device's key and the database keeps no private key."""
    make_integration("hsm", base_url=f"{server.url}/api/", auth_type="jwt_bearer",
                     auth_config={"algorithm": "ES256", "claims": {}},
                     secrets={"key": ec_pem()},
                     test_request={"path": "ping"})
    signer = hsm_signer(softhsm, "ES256")
    verifying_api(server, hsm_pem(softhsm, "ES256"), "ES256")
    added = manage("integrations_keys", "hsm", "--add-next", "--signer", json.dumps(signer))
    assert added.code == 0, added.err
    assert "pkcs11 device" in added.err
    promoted = manage("integrations_keys", "hsm", "--promote")
    assert promoted.code == 0, promoted.err
    row = services.run_test("hsm")
    assert row.ok, row.error
    integration = Integration.objects.get(slug="hsm")
    assert integration.get_secrets() == {"signer_pin": USER_PIN}
    assert integration.auth_config["signer"]["key_label"] == "p256"
    assert all(not key.encrypted_secrets for key in integration.signing_keys.all())
    no_pin_in(added.out, added.err, promoted.out, promoted.err,
              manage("integrations_keys", "hsm", "--json").out)


@pytest.mark.slow
def test_database_and_outputs_hold_no_device_secret(softhsm, kms, server, tmp_path):
    """security.md #32 through the real manage.py: import an HSM and a KMS integration,
    test them, list, export, show a token, dump the data. No output shows the PIN; the
    database file and its dump hold no private key and no PIN (the PIN is encrypted);
    the HSM integration's only secret is its PIN, the KMS one has none."""
    database = tmp_path / "db.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{database}", "HSM_PIN": softhsm["pin"]}
    assert manage("migrate", "-v", "0", env=env).code == 0
    server.route("GET", "/api/ping", lambda r: Reply(200, {}))
    entries = []
    for slug, signer, algorithm in (
        ("hsm", hsm_signer(softhsm, "ES256"), "ES256"),
        ("kms", kms_signer(kms, "RS256"), "RS256"),
    ):
        entries.append({
            "slug": slug,
            "base_url": f"{server.url}/api/",
            "test_request": {"path": "ping"},
            "auth": {"type": "jwt_bearer", "algorithm": algorithm, "claims": {},
                     "signer": signer},
        })
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"integrations": entries}))
    runs = [
        manage("integrations_import", str(config), env=env),
        manage("integrations_test", "--all", env=env),
        manage("integrations_keys", "hsm", env=env),
        manage("integrations_keys", "kms", "--json", env=env),
        manage("integrations_export", env=env),
        manage("integrations_token", "hsm", env=env),
        manage("dumpdata", "integrations", env=env),
    ]
    for ran in runs:
        assert ran.code == 0, ran.err
        no_pin_in(ran.out, ran.err)
        assert "PRIVATE KEY" not in ran.out + ran.err and "Traceback" not in ran.err
    dump = runs[-1].out
    assert '"signer_pin"' not in dump  # the PIN's name is inside the ciphertext too
    stored = database.read_bytes()
    assert USER_PIN.encode() not in stored
    assert b"PRIVATE KEY" not in stored and b"-----BEGIN" not in stored
    names = manage(
        "shell", "-c",
        "from integrations.models import Integration as I; "
        "print({i.slug: sorted(i.get_secrets()) for i in I.objects.all()})",
        env=env,
    )
    assert names.out.strip().splitlines()[-1] == "{'hsm': ['signer_pin'], 'kms': []}", names.err
