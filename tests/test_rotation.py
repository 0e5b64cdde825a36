"""Storage-key rotation: re-encrypt under the first key, idempotently, in batches; report
what cannot be decrypted and leave it untouched (security.md #8, #9)."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from integrations.crypto import key_id, parse_key
from integrations.models import Integration
from tests.keys import HMAC_SECRET

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
LOST = Fernet.generate_key().decode()


def kid(key: str) -> str:
    return key_id(parse_key(key))


def stored() -> dict[str, str]:
    return dict(Integration.objects.values_list("slug", "encrypted_secrets"))


def rotate(*args: str) -> str:
    """Run integrations_rotate_keys; its stderr."""
    err = io.StringIO()
    call_command("integrations_rotate_keys", *args, stderr=err)
    return err.getvalue()


def secret_for(slug: str) -> str:
    return f"{HMAC_SECRET}-{slug}"


@pytest.fixture
def three_under_old(make_integration):
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[OLD]):
        for slug in ("alpha", "beta", "gamma"):
            make_integration(slug, secrets={"key": secret_for(slug)})


def test_rotate_then_remove_old_key(three_under_old):
    """security.md #8: with [new, old] every secret is re-encrypted under new; a second run
    changes nothing; then with only [new] everything still decrypts."""
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[NEW, OLD]):
        assert "Rotated 3, already current 0, failed 0." in rotate()
        first = stored()
        assert all(token.split(":")[2] == kid(NEW) for token in first.values())
        updated = dict(Integration.objects.values_list("slug", "updated_at"))
        assert "Rotated 0, already current 3, failed 0." in rotate()
        assert stored() == first
        assert dict(Integration.objects.values_list("slug", "updated_at")) == updated
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[NEW]):
        for integration in Integration.objects.all():
            assert integration.get_secrets() == {"key": secret_for(integration.slug)}


def test_undecryptable_row_is_reported_and_untouched(three_under_old, make_integration):
    """security.md #8, #9: a secret under a key no longer configured fails the command (exit 1,
    naming its slug) and keeps its ciphertext; every other secret is still rotated."""
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[LOST]):
        make_integration("orphan", secrets={"key": secret_for("orphan")})
    orphan_before = stored()["orphan"]
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[NEW, OLD]):
        err = io.StringIO()
        with pytest.raises(CommandError) as caught:
            call_command("integrations_rotate_keys", stderr=err)
        assert caught.value.returncode == 1
        assert "orphan" in str(caught.value)
        assert f"integration 'orphan': no key with id {kid(LOST)}" in err.getvalue()
        assert "Rotated 3, already current 0, failed 1." in err.getvalue()
        after = stored()
    assert after["orphan"] == orphan_before
    assert {slug for slug, token in after.items() if token.split(":")[2] == kid(NEW)} == {
        "alpha",
        "beta",
        "gamma",
    }


def test_one_transaction_per_batch(three_under_old, make_integration):
    """security.md #8: rows are rotated in batches of --batch-size, each in its own
    transaction (a savepoint here, inside the test's transaction)."""
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[OLD]):
        make_integration("delta", secrets={"key": secret_for("delta")})
        make_integration("epsilon", secrets={"key": secret_for("epsilon")})
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[NEW, OLD]):
        with CaptureQueriesContext(connection) as queries:
            assert "Rotated 5," in rotate("--batch-size", "2")
    opened = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]
    # Batches of 2, 2 and 1, the empty read that ends the loop, and the signing keys'
    # table (next keys' secrets), read once and empty.
    assert len(opened) == 5
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[NEW]):
        assert all(i.get_secrets() for i in Integration.objects.all())


def test_rows_without_secrets_are_skipped(make_integration):
    """security.md #8: an integration with no stored secret is neither counted nor changed."""
    integration = make_integration("plain")
    Integration.objects.filter(pk=integration.pk).update(encrypted_secrets="")
    assert "Rotated 0, already current 0, failed 0." in rotate()
    assert stored() == {"plain": ""}


def test_bad_batch_size_and_empty_ring_are_usage_errors(three_under_old):
    """reference.md commands: a non-positive --batch-size or an empty key ring is a clear error
    naming the option or setting, not a traceback; nothing changes."""
    before = stored()
    with pytest.raises(CommandError, match="batch-size"):
        rotate("--batch-size", "0")
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[]):
        with pytest.raises(CommandError, match="INTEGRATIONS_ENCRYPTION_KEYS is empty"):
            rotate()
    assert stored() == before
