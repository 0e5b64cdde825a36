"""Key custody: what is stored and what is shown (docs/key-custody.md). Export writes
the signer without its PIN, a signer replaces a stored key, the token cache keeps a
device to one signature per token lifetime, rollover onto a device key, and neither the
database nor any output holds a PIN or a device's private key (security.md #32)."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from integrations import services
from integrations.models import Integration
from integrations.tokens.cache import token_cache
from integrations.tokens.custody import signer_cache
from tests.commands.helpers import manage
from tests.keys import ec_pem, rsa_pem
from tests.loopback import Reply
from tests.signers.custody import (
    hsm_pem,
    hsm_signer,
    import_entry,
    kms_signer,
    no_pin_in,
    verifying_api,
)
from tests.signers.devices import USER_PIN

pytestmark = pytest.mark.django_db


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
