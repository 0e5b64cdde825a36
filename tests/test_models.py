"""Integration validation on save, secret storage semantics, CallLog indexes and
retention (reference.md: models, Call log; security.md #9, #10, #27, #29)."""

from __future__ import annotations

import base64
import copy
import io
import pickle
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from integrations.exceptions import SecretDecryptionError
from integrations.models import Account, CallLog, Integration
from tests.keys import CANARY, HMAC_SECRET, ec_pem

pytestmark = pytest.mark.django_db


def errors_of(integration: Integration) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        integration.full_clean()
    return caught.value.message_dict


def test_clean_names_the_field(make_integration):
    """reference.md models: clean() puts each problem on the field it belongs to; auth option
    problems name the option inside auth_config."""
    integration = make_integration()
    integration.base_url = "ftp://billing.example.com/"
    integration.timeout = 0
    integration.auth_config = {**integration.auth_config, "algorithm": "RS256"}
    errors = errors_of(integration)
    assert errors["base_url"] == ["must be an http or https URL"]
    assert errors["timeout"] == ["must be between 0 and 300 seconds"]
    assert any(message.startswith("key: RS256 needs") for message in errors["auth_config"])


def test_secret_among_plain_options_is_refused(make_integration):
    """security.md #29: a secret option put into auth_config (stored and exported in clear)
    is refused on save."""
    integration = make_integration()
    integration.auth_config = {**integration.auth_config, "key": HMAC_SECRET}
    errors = errors_of(integration)
    assert errors["auth_config"] == [
        "key: is a secret: it is stored encrypted, never among plain options"
    ]
    assert CANARY not in str(errors)


def test_unknown_auth_option_and_bad_headers_are_refused(make_integration):
    """reference.md models: an option the auth type does not have, and a header value with a line
    break (header injection), are refused."""
    integration = make_integration()
    integration.auth_config = {**integration.auth_config, "lifetme": 60}
    integration.headers = {"X-Tenant": "a\r\nX-Evil: 1"}
    errors = errors_of(integration)
    assert errors["auth_config"] == ["unknown option(s) lifetme for jwt_bearer"]
    assert errors["headers"] == ["the value of X-Tenant contains a line break or NUL"]


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://user:pw@api.example.com/", "user:password@"),
        ("https://:pw@api.example.com/", "user:password@"),
        ("http://", "has no host"),
        ("https://api.example.com:99999/", "not a valid URL"),
        ("javascript:alert(1)", "http or https"),
        ("https://api.example.com/\nHost: evil", "control characters"),
    ],
)
def test_base_url_rules(make_integration, url, message):
    """security.md #10: base_url is http(s), has a host, carries no credentials."""
    integration = make_integration()
    integration.base_url = url
    assert any(message in text for text in errors_of(integration)["base_url"])


def test_update_secrets_keeps_what_is_not_given(make_integration):
    """reference.md secrets: None or absent keeps the stored value; a value replaces it; empty
    values are never stored."""
    integration = make_integration(secrets={"key": HMAC_SECRET, "extra": "e" * 40})
    integration.update_secrets({"key": None})
    assert integration.get_secrets() == {"key": HMAC_SECRET, "extra": "e" * 40}
    integration.update_secrets({"extra": "f" * 40})
    assert integration.get_secrets() == {"key": HMAC_SECRET, "extra": "f" * 40}
    integration.set_secrets({"key": HMAC_SECRET, "blank": ""})
    assert integration.secret_names() == ["key"]


def test_auth_fingerprint_follows_auth_changes(make_integration):
    """security.md #21: the fingerprint (part of token cache keys) changes with the key, the
    auth options or the base URL, and only then."""
    integration = make_integration()
    first = integration.auth_fingerprint
    assert Integration.objects.get(pk=integration.pk).auth_fingerprint == first
    integration.update_secrets({"key": HMAC_SECRET[::-1]})
    second = integration.auth_fingerprint
    integration.auth_config = {**integration.auth_config, "lifetime": 60}
    third = integration.auth_fingerprint
    integration.base_url = "http://127.0.0.1:10/api/"
    fourth = integration.auth_fingerprint
    integration.auth_config["lifetime"] = 30  # changed in place: no new dict to notice
    assert len({first, second, third, fourth, integration.auth_fingerprint}) == 5


def test_decrypted_secrets_kept_on_the_instance_never_leave_it(make_integration):
    """security.md #9, #29: get_secrets keeps what it decrypted on the instance (one
    decryption for a run over 10,000 accounts), but a pickle or a copy of the instance
    holds none of it, a caller's change to the returned dict does not stick, and a new
    ciphertext or key ring is decrypted anew (failing closed without the key)."""
    integration = make_integration(secrets={"key": HMAC_SECRET})
    secrets = integration.get_secrets()
    secrets["key"] = "changed by the caller"
    assert integration.get_secrets() == {"key": HMAC_SECRET}
    for held in (pickle.dumps(integration), repr(copy.copy(integration).__dict__)):
        assert CANARY not in str(held)
    assert copy.deepcopy(integration).get_secrets() == {"key": HMAC_SECRET}
    integration.update_secrets({"key": HMAC_SECRET[::-1]})
    assert integration.get_secrets() == {"key": HMAC_SECRET[::-1]}
    other_key = base64.urlsafe_b64encode(bytes(32)).decode()
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[other_key]):
        with pytest.raises(SecretDecryptionError):
            integration.get_secrets()


def test_str_and_repr_hold_no_secret(make_integration):
    """security.md #29: __str__ (what admin LogEntry stores) and repr hold no secret."""
    integration = make_integration(
        "app", auth_config={"algorithm": "ES256"}, secrets={"key": ec_pem("P-256")}
    )
    for text in (str(integration), repr(integration)):
        assert "BEGIN" not in text and CANARY not in text
    assert (
        str(integration) == "App"
        and repr(integration) == "<Integration 'app' auth_type='jwt_bearer'>"
    )


def test_call_log_indexes_serve_latest_calls_and_pruning():
    """reference.md call log: indexed for the latest calls of one integration and for pruning by
    date."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, CallLog._meta.db_table)
    indexed = [tuple(c["columns"]) for c in constraints.values() if c["index"]]
    # On PostgreSQL the index also INCLUDEs duration_ms and ok, for the charts (0004).
    assert any(columns[:2] == ("integration_id", "created_at") for columns in indexed)
    assert ("account_id", "created_at") in indexed
    assert ("created_at",) in indexed


def test_latest_calls_query_uses_the_index(make_integration):
    """reference.md call log: the admin's "latest calls of one integration" query is answered by
    the (integration, -created_at) index on SQLite."""
    if connection.vendor != "sqlite":
        pytest.skip("query plans of tiny tables differ by database")
    integration = make_integration()
    plan = CallLog.objects.filter(integration=integration).order_by("-created_at")[:20].explain()
    assert "calllog_integration_latest" in plan


def _account_index() -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'calllog_account_latest'"
            )
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'calllog_account_latest'")
        (definition,) = cursor.fetchone()
    return str(definition).translate(str.maketrans("", "", '"()'))


def test_account_index_holds_only_rows_with_an_account(make_integration):
    """reference.md call log: calllog_account_latest is partial (account_id IS NOT NULL,
    migration 0006), so rows without an account cost it nothing, and "latest calls of one
    account" and the last test per account are still answered by it."""
    assert "WHERE account_id IS NOT NULL" in _account_index()
    if connection.vendor != "sqlite":
        return  # query plans of tiny tables differ by database
    integration = make_integration()
    account = integration.accounts.create(key="acme", name="Acme")
    plan = CallLog.objects.filter(account=account).order_by("-created_at")[:20].explain()
    assert "calllog_account_latest" in plan
    plan = Account.objects.with_last_test().explain()
    assert "calllog_account_latest" in plan


@pytest.mark.django_db(transaction=True)
def test_partial_account_index_migration_runs_both_ways():
    """Migration 0006 goes back to the full index and forward again (on PostgreSQL
    concurrently, outside a transaction), keeping the index's name."""
    executor = MigrationExecutor(connection)
    executor.migrate([("integrations", "0005_calllog_no_foreign_key_constraints")])
    try:
        assert "WHERE" not in _account_index()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate([("integrations", "0006_calllog_account_index_partial")])
    assert "WHERE account_id IS NOT NULL" in _account_index()


def make_logs(integration: Integration, *ages_in_days: int) -> None:
    now = timezone.now()
    for age in ages_in_days:
        row = CallLog.objects.create(
            integration=integration, source="api", method="GET", url="https://x/", ok=True
        )
        CallLog.objects.filter(pk=row.pk).update(created_at=now - timedelta(days=age))


def prune(*args: str) -> str:
    err = io.StringIO()
    call_command("integrations_prune_logs", *args, stderr=err)
    return err.getvalue()


def test_prune_deletes_only_older_rows_in_batches(make_integration):
    """security.md #27: rows older than the cutoff go, in batches; newer rows stay."""
    integration = make_integration()
    make_logs(integration, 90, 45, 31, 29, 5, 0)
    assert "Deleted 3 call log row(s) older than 30 day(s)." in prune(
        "--older-than", "30", "--batch-size", "2"
    )
    ages = sorted(
        (timezone.now() - c).days for c in CallLog.objects.values_list("created_at", flat=True)
    )
    assert ages == [0, 5, 29]


def test_prune_defaults_to_retention_setting(make_integration):
    """security.md #27: without --older-than, INTEGRATIONS_LOG_RETENTION_DAYS applies."""
    integration = make_integration()
    make_logs(integration, 10, 3, 1)
    with override_settings(INTEGRATIONS_LOG_RETENTION_DAYS=2):
        assert "Deleted 2" in prune()
    assert CallLog.objects.count() == 1


@pytest.mark.parametrize(
    "args", [["--older-than", "-1"], ["--older-than", "5", "--batch-size", "0"]]
)
def test_prune_refuses_bad_arguments(make_integration, args):
    """security.md #27: a negative age (which would delete everything, including future rows)
    or an empty batch is a usage error; nothing is deleted."""
    make_logs(make_integration(), 40)
    with pytest.raises(CommandError) as caught:
        prune(*args)
    assert caught.value.returncode == 2
    assert CallLog.objects.count() == 1
