"""Secrets at rest: AES-GCM key ring, binding to row and field, failing closed, no
plaintext anywhere it could be read back (security.md #6-9, #26, #29)."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from contextlib import closing

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin import ModelAdmin, site
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.crypto import (
    PREFIX,
    KeyRing,
    associated_data,
    configured_keys,
    key_id,
    keyring,
    parse_key,
)
from integrations.exceptions import IntegrationConfigurationError, SecretDecryptionError
from integrations.models import Integration
from tests.child import manage_env, run
from tests.keys import CANARY, HMAC_SECRET

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
RING = KeyRing.from_strings([KEY_A])
AAD = associated_data("integrations.integration", "row-1", "encrypted_secrets")


def flip(token: str, position: int) -> str:
    """``token`` with one bit of its sealed body flipped at ``position`` (mod length)."""
    head, body = token.rsplit(":", 1)
    blob = bytearray(base64.urlsafe_b64decode(body))
    blob[position % len(blob)] ^= 0x01
    return f"{head}:{base64.urlsafe_b64encode(bytes(blob)).decode()}"


@settings(max_examples=200, deadline=None)
@given(plaintext=st.text(), aad=st.binary(max_size=64))
def test_round_trip_any_unicode(plaintext, aad):
    """security.md #7: any unicode text decrypts to itself under the same associated data."""
    token = RING.encrypt(plaintext, aad)
    assert token.startswith(f"{PREFIX}{RING.primary_id}:")
    assert RING.decrypt(token, aad) == plaintext


@settings(max_examples=100, deadline=None)
@given(secrets=st.dictionaries(st.text(min_size=1), st.text(min_size=1), max_size=5))
def test_model_secrets_round_trip_any_dict(secrets):
    """security.md #7: an integration's secret options round-trip whatever their names and
    values, and the ciphertext never holds a value in clear."""
    integration = Integration(slug="round-trip")
    integration.set_secrets(secrets)
    assert integration.get_secrets() == secrets
    sealed = base64.urlsafe_b64decode(integration.encrypted_secrets.rsplit(":", 1)[-1])
    for value in secrets.values():
        if len(value.encode()) >= 8:
            assert value.encode() not in sealed


def test_same_plaintext_encrypts_differently_each_time():
    """security.md #7: a fresh nonce per encryption: equal secrets give unequal ciphertexts."""
    assert RING.encrypt(CANARY, AAD) != RING.encrypt(CANARY, AAD)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0, max_value=10_000))
def test_flipping_any_bit_fails(position):
    """security.md #7, #9: a single flipped bit in nonce, ciphertext or tag fails to decrypt."""
    token = flip(RING.encrypt(CANARY, AAD), position)
    with pytest.raises(SecretDecryptionError, match="failed authentication"):
        RING.decrypt(token, AAD)


def test_other_field_or_row_in_associated_data_fails():
    """security.md #7: a ciphertext is bound to app.model, row id and field."""
    token = RING.encrypt(CANARY, AAD)
    for aad in [
        associated_data("integrations.integration", "row-1", "other_field"),
        associated_data("integrations.integration", "row-2", "encrypted_secrets"),
        associated_data("other.model", "row-1", "encrypted_secrets"),
    ]:
        with pytest.raises(SecretDecryptionError):
            RING.decrypt(token, aad)


@pytest.mark.django_db
def test_ciphertext_copied_to_another_row_fails(make_integration):
    """security.md #7: copying one row's encrypted secrets into another row does not give the
    second row the first one's key; it fails closed."""
    first = make_integration("first")
    second = make_integration("second", secrets={"key": HMAC_SECRET[::-1]})
    Integration.objects.filter(pk=second.pk).update(encrypted_secrets=first.encrypted_secrets)
    second.refresh_from_db()
    with pytest.raises(SecretDecryptionError) as caught:
        second.get_secrets()
    assert "second" in str(caught.value) and CANARY not in str(caught.value)


@pytest.mark.django_db
def test_unknown_key_id_fails_closed_with_clear_error(make_integration):
    """security.md #9: under a key ring without the row's key, reading the secret raises a
    clear SecretDecryptionError naming the slug: never ciphertext, never empty."""
    integration = make_integration("billing")
    stored = integration.encrypted_secrets
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[KEY_B]):
        with pytest.raises(SecretDecryptionError) as caught:
            integration.get_secrets()
    message = str(caught.value)
    assert "billing" in message and "no key with id" in message
    assert stored.split(":")[-1] not in message and CANARY not in message


@pytest.mark.django_db
def test_update_with_wrong_key_never_overwrites(make_integration):
    """security.md #9: merging a changed secret into one that cannot be read raises and leaves
    the stored ciphertext exactly as it was."""
    integration = make_integration("billing", secrets={"key": HMAC_SECRET, "other": "x" * 40})
    stored = integration.encrypted_secrets
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[KEY_B]):
        with pytest.raises(SecretDecryptionError):
            integration.update_secrets({"key": "y" * 40})
    assert integration.encrypted_secrets == stored


def test_value_not_in_stored_format_is_refused():
    """security.md #9: a plaintext value found in the column is never returned as the secret."""
    integration = Integration(slug="legacy", encrypted_secrets=json.dumps({"key": CANARY}))
    with pytest.raises(SecretDecryptionError, match="enc:v1 format") as caught:
        integration.get_secrets()
    assert CANARY not in str(caught.value)


def test_tampered_key_id_names_the_missing_key():
    """security.md #9: a ciphertext claiming an unknown key id fails with that id named."""
    token = RING.encrypt(CANARY, AAD).replace(RING.primary_id, "deadbeef")
    with pytest.raises(SecretDecryptionError, match="no key with id deadbeef"):
        RING.decrypt(token, AAD)


def test_empty_ring_cannot_encrypt_and_says_which_setting():
    """security.md #9: without keys nothing is stored; the error names the setting."""
    with pytest.raises(IntegrationConfigurationError, match="INTEGRATIONS_ENCRYPTION_KEYS"):
        KeyRing(()).encrypt(CANARY, AAD)
    with pytest.raises(SecretDecryptionError, match="INTEGRATIONS_ENCRYPTION_KEYS is empty"):
        KeyRing(()).decrypt(RING.encrypt(CANARY, AAD), AAD)


def test_every_key_decrypts_and_the_first_encrypts():
    """security.md #8: with [new, old], old ciphertexts still decrypt; new ones use the first."""
    old = KeyRing.from_strings([KEY_B]).encrypt(CANARY, AAD)
    both = KeyRing.from_strings([KEY_A, KEY_B])
    assert both.decrypt(old, AAD) == CANARY
    assert both.needs_rotation(old)
    fresh = both.encrypt(CANARY, AAD)
    assert fresh.split(":")[2] == key_id(parse_key(KEY_A)) and not both.needs_rotation(fresh)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("not base64 at all!", "not URL-safe base64"),
        (base64.urlsafe_b64encode(b"x" * 16).decode(), "16 bytes"),
        (KEY_A[:10] + "*" + KEY_A[11:], "not URL-safe base64"),
        ("ключ", "not URL-safe base64"),
    ],
)
def test_malformed_storage_keys_are_refused_without_echo(text, problem):
    """security.md #6: a key that is not 32 bytes of URL-safe base64 is refused, and the
    message never repeats the key."""
    with pytest.raises(IntegrationConfigurationError, match=problem) as caught:
        parse_key(text)
    assert text not in str(caught.value)


def test_key_ring_repr_shows_no_key_material():
    """security.md #26: repr of the key ring reveals no key."""
    ring = KeyRing.from_strings([KEY_A])
    assert KEY_A not in repr(ring) and repr(parse_key(KEY_A)) not in repr(ring)


def test_keys_setting_accepts_a_comma_separated_string():
    """A hand-written comma string in settings.py is split, not iterated per character."""
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=f" {KEY_A} , {KEY_B} ,"):
        assert configured_keys() == [KEY_A, KEY_B]
        assert keyring().ids == (key_id(parse_key(KEY_A)), key_id(parse_key(KEY_B)))


@pytest.mark.django_db
def test_storage_key_is_independent_of_secret_key(make_integration):
    """security.md #6: changing SECRET_KEY leaves every stored secret readable."""
    integration = make_integration("billing")
    with override_settings(SECRET_KEY="a-completely-different-secret-key-0123456789-abcdef"):
        assert Integration.objects.get(pk=integration.pk).get_secrets() == {"key": HMAC_SECRET}


@pytest.mark.django_db
def test_no_secret_in_repr_str_dumpdata_or_admin_log(make_integration):
    """security.md #26, #29: the secret is in none of repr(), str(), dumpdata output or the
    admin LogEntry written when the integration is added and changed."""
    integration = make_integration("billing", name="Billing API")
    assert CANARY not in repr(integration) and CANARY not in str(integration)
    out = io.StringIO()
    call_command("dumpdata", "integrations", stdout=out)
    assert "billing" in out.getvalue() and CANARY not in out.getvalue()

    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    request = RequestFactory().post("/admin/")
    request.user = user
    model_admin = site._registry.get(Integration) or ModelAdmin(Integration, site)
    model_admin.log_addition(request, integration, [{"added": {}}])
    model_admin.log_change(request, integration, [{"changed": {"fields": ["Signing key"]}}])
    for entry in LogEntry.objects.all():
        assert CANARY not in json.dumps(
            [entry.object_repr, entry.change_message, entry.get_change_message()]
        )


def test_no_plaintext_in_database_file_or_dumpdata(tmp_path):
    """security.md #7, #26: after a real import into a file-based SQLite database the secret
    appears nowhere in the file's bytes, nor in `manage.py dumpdata`."""
    config = tmp_path / "integrations.json"
    auth = {"type": "jwt_bearer", "algorithm": "HS512", "key": {"env": "DISK_SECRET"}}
    entry = {"slug": "disk", "name": "Disk", "base_url": "https://disk.example.com/", "auth": auth}
    config.write_text(json.dumps({"integrations": [entry]}))
    env = manage_env(tmp_path, KEY_A, DISK_SECRET=HMAC_SECRET)
    for args in (["migrate", "-v0"], ["integrations_import", str(config)]):
        done = run(["manage.py", *args], env)
        assert done.returncode == 0, done.stderr
    dumped = run(["manage.py", "dumpdata", "integrations", "--indent", "1"], env)
    assert dumped.returncode == 0, dumped.stderr
    assert '"slug": "disk"' in dumped.stdout and CANARY not in dumped.stdout

    # The files first, as the commands left them: a connection of ours opened before
    # would add a -wal file that its closing (whenever it is collected) deletes again.
    for path in tmp_path.glob("db.sqlite3*"):
        raw = path.read_bytes()
        assert CANARY.encode() not in raw
        assert CANARY.encode("utf-16-le") not in raw
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as database:
        query = "select encrypted_secrets from integrations_integration where slug = 'disk'"
        (stored,) = database.execute(query).fetchone()
    assert stored.startswith(PREFIX)
