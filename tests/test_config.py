"""The configuration file: every refusal names the entry and the field and writes
nothing; export holds no secret and round-trips (reference.md: Configuration file; security.md #1-3,
9, 10, 26)."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import override_settings

from integrations import configfile
from integrations.models import Integration
from tests.child import manage_env, run
from tests.config_entries import entry, import_file, preset, refused, secret_env, write  # noqa: F401
from tests.keys import CANARY, HMAC_SECRET, ec_pem, ed25519_pem, rsa_pem
from tests.oidc.server import self_signed

pytestmark = pytest.mark.django_db


def key_case(algorithm: str, key: str) -> dict[str, Any]:
    return {"auth": {"algorithm": algorithm, "key": key}}


REFUSALS: list[tuple[str, Callable[[], dict[str, Any]], str, str]] = [
    ("alg none", lambda: {"auth": {"algorithm": "none"}}, "auth.algorithm", "never"),
    ("alg unknown", lambda: {"auth": {"algorithm": "HS1024"}}, "auth.algorithm", "HS1024"),
    ("EC key, RS256", lambda: key_case("RS256", ec_pem("P-256")), "auth.key", "RSA"),
    ("RSA key, ES256", lambda: key_case("ES256", rsa_pem()), "auth.key", "EC"),
    ("P-384 key, ES256", lambda: key_case("ES256", ec_pem("P-384")), "auth.key", "secp256r1"),
    ("Ed25519 key, RS256", lambda: key_case("RS256", ed25519_pem()), "auth.key", "RSA"),
    ("RSA key, EdDSA", lambda: key_case("EdDSA", rsa_pem()), "auth.key", "Ed25519"),
    ("PEM key, HS256", lambda: key_case("HS256", rsa_pem()), "auth.key", "not a PEM"),
    (
        "malformed PEM",
        lambda: key_case(
            "RS256", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----"
        ),
        "auth.key",
        "does not parse",
    ),
    (
        "HS256 31 bytes",
        lambda: key_case("HS256", secrets.token_hex(16)[:31]),
        "auth.key",
        "32 bytes",
    ),
    (
        "HS384 47 bytes",
        lambda: key_case("HS384", secrets.token_hex(24)[:47]),
        "auth.key",
        "48 bytes",
    ),
    (
        "HS512 63 bytes",
        lambda: key_case("HS512", secrets.token_hex(32)[:63]),
        "auth.key",
        "64 bytes",
    ),
    ("HMAC not random", lambda: key_case("HS256", "a" * 64), "auth.key", "not random"),
    ("RSA 1024", lambda: key_case("RS256", rsa_pem(1024)), "auth.key", "2048"),
    ("lifetime 0", lambda: {"auth": {"lifetime": 0}}, "auth.lifetime", "greater than"),
    ("lifetime negative", lambda: {"auth": {"lifetime": -60}}, "auth.lifetime", "greater than"),
    ("lifetime text", lambda: {"auth": {"lifetime": "soon"}}, "auth.lifetime", "whole number"),
    ("iat in claims", lambda: {"auth": {"claims": {"iat": 1}}}, "auth.claims", "set by the app"),
    ("ftp base_url", lambda: {"base_url": "ftp://files.example.com/"}, "base_url", "http or https"),
    (
        "user:pass@ base_url",
        lambda: {"base_url": "https://user:pass@billing.example.com/"},
        "base_url",
        "user:password@",
    ),
    ("base_url without host", lambda: {"base_url": "https:///api/"}, "base_url", "no host"),
    ("base_url with space", lambda: {"base_url": "https://a b.example/"}, "base_url", "spaces"),
    ("unknown entry field", lambda: {"colour": "blue"}, "colour", "unknown field"),
    ("unknown auth type", lambda: {"auth": {"type": "magic"}}, "auth.type", "magic"),
    ("unknown auth option", lambda: {"auth": {"algorythm": "HS256"}}, "auth", "algorythm"),
    (
        "missing env var",
        lambda: {"auth": {"key": {"env": "NOT_SET_ANYWHERE_42"}}},
        "auth.key",
        "NOT_SET_ANYWHERE_42",
    ),
    (
        "unreadable file",
        lambda: {"auth": {"key": {"file": "missing.pem"}}},
        "auth.key",
        "missing.pem",
    ),
    ("empty literal secret", lambda: {"auth": {"key": ""}}, "auth.key", "empty"),
    ("secret of wrong shape", lambda: {"auth": {"key": {"vault": "x"}}}, "auth.key", '{"env"'),
    ("secret as a number", lambda: {"auth": {"key": 12345}}, "auth.key", '{"env"'),
    ("new without secret", lambda: {"auth": {"key": None}}, "auth.key", "required"),
    ("new without auth", lambda: {"auth": None}, "auth", "required"),
    ("slug with spaces", lambda: {"slug": "bill ing"}, "slug", "slug"),
    ("empty name", lambda: {"name": ""}, "name", "blank"),
    ("timeout as text", lambda: {"timeout": "10"}, "timeout", "must be a number"),
    ("timeout too long", lambda: {"timeout": 3600}, "timeout", "300"),
    ("enabled as text", lambda: {"enabled": "yes"}, "enabled", "true or false"),
    ("log_calls unknown", lambda: {"log_calls": "sometimes"}, "log_calls", "all, errors, none"),
    ("header with CRLF", lambda: {"headers": {"X-A": "1\r\nX-B: 2"}}, "headers", "line break"),
    ("bad header name", lambda: {"headers": {"Bad Header": "1"}}, "headers", "header name"),
    (
        "test_request method",
        lambda: {"test_request": {"method": "FETCH"}},
        "test_request",
        "FETCH",
    ),
]


@pytest.mark.parametrize(
    "changes, field, detail", [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_refusal_names_entry_and_field_and_writes_nothing(tmp_path, changes, field, detail):
    """security.md #1-3, #10; reference.md import: each bad entry gives one line naming the slug and
    the field, exit non-zero, and nothing is written (the good entry before it neither)."""
    bad = entry(**changes())
    slug = bad["slug"]
    error = refused(write(tmp_path, entry("good"), bad))
    message = str(error)
    assert f"{slug}: {field}" in message or (f"{slug}:" in message and field in message)
    assert detail in message
    assert not Integration.objects.exists()


def test_import_creates_then_updates(tmp_path):
    """reference.md import: an upsert by slug; a second import updates the same row in place."""
    path = write(tmp_path, entry("billing"), entry("crm"))
    assert "Imported 2 new and 0 updated" in import_file(path)
    uid = Integration.objects.get(slug="billing").uid
    path = write(tmp_path, entry("billing", name="Billing v2", timeout=3))
    assert "Imported 0 new and 1 updated" in import_file(path)
    billing = Integration.objects.get(slug="billing")
    assert (billing.uid, billing.name, billing.timeout) == (uid, "Billing v2", 3)
    assert billing.get_secrets() == {"key": HMAC_SECRET}
    assert billing.auth_config == {
        "algorithm": "HS256",
        "claims": {"iss": "shop", "aud": "billing"},
        "lifetime": 300,
    }


def test_failed_import_leaves_existing_row_untouched(tmp_path, monkeypatch):
    """reference.md import atomicity: an update to an existing row followed by a bad entry writes
    nothing: the row keeps its fields, auth options and ciphertext byte for byte."""
    import_file(write(tmp_path, entry("billing")))
    before = Integration.objects.values().get(slug="billing")
    monkeypatch.setenv("BILLING_SECRET", secrets.token_urlsafe(48))
    good_update = entry("billing", name="Renamed", auth={"algorithm": "HS384", "lifetime": 60})
    refused(write(tmp_path, good_update, entry("crm", auth={"algorithm": "none"})))
    assert Integration.objects.values().get(slug="billing") == before
    assert Integration.objects.count() == 1


def test_duplicate_slug_is_refused(tmp_path):
    """reference.md import: a slug twice in one file is an error naming the slug;
    nothing written."""
    error = refused(write(tmp_path, entry("billing"), entry("crm"), entry("billing")))
    assert "billing: appears twice" in str(error) and "entry #3" in str(error)
    assert not Integration.objects.exists()


@pytest.mark.parametrize(
    "content, detail",
    [
        ('{"integrations": [', "not valid JSON (line 1"),
        ("[]", '{"integrations": [...]}'),
        ('{"integrations": {}}', '{"integrations": [...]}'),
        ('{"integrations": [], "extra": 1}', "unknown top-level field(s) extra"),
        ('{"integrations": [42]}', "entry #1: must be a JSON object"),
        ('{"integrations": [{"name": "x"}]}', "entry #1: slug: is required"),
    ],
)
def test_malformed_files_are_refused(tmp_path, content, detail):
    """reference.md import: a file that is not a configuration file is refused with what is wrong
    and where."""
    path = tmp_path / "config.json"
    path.write_text(content)
    assert detail in str(refused(path))


def test_missing_and_binary_files_are_refused(tmp_path):
    """reference.md import: an unreadable or non-text file is a clear error, not a traceback."""
    assert "cannot read" in str(refused(tmp_path / "nope.json"))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in str(refused(binary))


def test_secret_from_file_relative_to_config_file(tmp_path, monkeypatch):
    """reference.md secrets: {"file": path} is read relative to the configuration file, whatever
    the working directory; one trailing newline is dropped."""
    folder = tmp_path / "deploy"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "billing.key").write_text(HMAC_SECRET + "\n")
    (folder / "secrets" / "signing.pem").write_text(ec_pem("P-256"))
    path = write(
        folder,
        entry("billing", auth={"key": {"file": "secrets/billing.key"}}),
        entry("app", auth={"algorithm": "ES256", "key": {"file": "secrets/signing.pem"}}),
    )
    monkeypatch.chdir(tmp_path)
    import_file(path)
    assert Integration.objects.get(slug="billing").get_secrets() == {"key": HMAC_SECRET}
    assert Integration.objects.get(slug="app").get_secrets()["key"].startswith("-----BEGIN")


def test_secret_from_env_and_literal(tmp_path, monkeypatch):
    """reference.md secrets: {"env": NAME} reads the variable at import; a literal string is
    stored as given; both end up encrypted, never in auth_config."""
    literal = secrets.token_urlsafe(64)
    import_file(write(tmp_path, entry("billing"), entry("crm", auth={"key": literal})))
    billing, crm = Integration.objects.get(slug="billing"), Integration.objects.get(slug="crm")
    assert billing.get_secrets() == {"key": HMAC_SECRET} and crm.get_secrets() == {"key": literal}
    assert "key" not in billing.auth_config and "key" not in crm.auth_config


def test_empty_env_var_is_refused(tmp_path, monkeypatch):
    """reference.md secrets: an empty variable is an error, not a silent "keep the stored value"."""
    monkeypatch.setenv("BILLING_SECRET", "")
    assert "BILLING_SECRET is empty" in str(refused(write(tmp_path, entry())))


def test_null_secret_with_undecryptable_stored_secret_is_refused(tmp_path):
    """security.md #9: importing with a null secret when the stored one cannot be decrypted
    (wrong key ring) refuses and leaves the ciphertext untouched."""
    import_file(write(tmp_path, entry("billing")))
    before = Integration.objects.values().get(slug="billing")
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        error = refused(write(tmp_path, entry("billing", name="New name", auth={"key": None})))
        assert "billing: auth:" in str(error) and "no key with id" in str(error)
        new_secret = entry("billing", auth={"key": secrets.token_urlsafe(48)})
        assert "no key with id" in str(refused(write(tmp_path, new_secret)))
        other_type = entry("billing", auth={"type": "jwt_bearer", "algorithm": "HS512"})
        refused(write(tmp_path, other_type))
    assert Integration.objects.values().get(slug="billing") == before


def test_cli_errors_have_no_traceback(tmp_path):
    """reference.md commands: run as `manage.py integrations_import`, a bad entry and a broken file
    each exit non-zero with one readable line on stderr and no traceback."""
    env = manage_env(tmp_path, Fernet.generate_key().decode(), BILLING_SECRET="short")
    assert run(["manage.py", "migrate", "-v0"], env).returncode == 0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path, expected in [
        (
            write(tmp_path, entry("billing")),
            "billing: auth.key: HS256 needs a secret of at least 32 bytes",
        ),
        (broken, "is not valid JSON"),
    ]:
        done = run(["manage.py", "integrations_import", str(path)], env)
        assert done.returncode == 1
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    exported = run(["manage.py", "integrations_export"], env)
    assert exported.returncode == 0 and json.loads(exported.stdout) == {"integrations": []}


def test_slug_created_concurrently_is_a_clear_error(tmp_path, monkeypatch):
    """reference.md import: if another process creates the same slug mid-import, the unique
    constraint's error becomes one readable line and the whole import rolls back."""

    build = configfile.apply_entry

    def racing(raw, position, base_dir):
        integration, created = build(raw, position, base_dir)
        if raw["slug"] == "crm":
            rival = Integration(slug="crm", name="Rival", base_url="https://crm.example.com/")
            rival.save()
        return integration, created

    monkeypatch.setattr(configfile, "apply_entry", racing)
    error = refused(write(tmp_path, entry("billing"), entry("crm")))
    assert "crm: was created by someone else during this import" in str(error)
    assert not Integration.objects.exists()


def test_error_report_during_import_hides_secrets(tmp_path, monkeypatch):
    """security.md #26: if import crashes after reading secrets, Django's error report (what
    a 500 e-mail or Sentry would hold) shows the import frames without their secrets."""
    import sys

    from django.views.debug import ExceptionReporter


    def explode(self, changes):
        raise RuntimeError("storage failed")

    monkeypatch.setattr(Integration, "update_secrets", explode)
    path = write(tmp_path, entry("billing", auth={"key": HMAC_SECRET}))
    try:
        configfile.import_config(configfile.read_file(path), base_dir=tmp_path)
    except RuntimeError:
        report = ExceptionReporter(None, *sys.exc_info()).get_traceback_html()
    assert "apply_auth" in report and "import_config" in report and "base_dir" in report
    assert CANARY not in report


@pytest.mark.parametrize(
    "auth, field, detail",
    [
        (
            {"type": "github_app", "app_id": "Iv1.abc", "installation_id": "42",
             "private_key": {"file": "rsa.pem"}, "lifetime": 900},
            "auth.lifetime",
            "600",
        ),
        (
            {"type": "github_app", "app_id": "Iv1.abc", "installation_id": "42",
             "private_key": {"file": "ec.pem"}},
            "auth.private_key",
            "RSA",
        ),
        (
            {"type": "app_store_connect", "issuer_id": "69a6de70", "key_id": "2X9R4HXF34",
             "private_key": {"file": "rsa.pem"}},
            "auth.private_key",
            "EC",
        ),
        (
            {"type": "app_store_connect", "issuer_id": "69a6de70", "key_id": "2X9R4HXF34",
             "private_key": {"file": "ec.pem"}, "lifetime": 1800},
            "auth.lifetime",
            "1200",
        ),
    ],
)  # fmt: skip
def test_preset_rules_are_enforced_at_import(tmp_path, auth, field, detail):
    """security.md #2-3, PROVIDERS: a preset's key type and lifetime cap are checked at
    import, naming the preset's own field; nothing is written."""
    (tmp_path / "rsa.pem").write_text(rsa_pem())
    (tmp_path / "ec.pem").write_text(ec_pem("P-256"))
    message = str(refused(write(tmp_path, preset("vendor", auth))))
    assert f"vendor: {field}:" in message and detail in message
    assert not Integration.objects.exists()


def test_dry_run_validates_everything_and_writes_nothing(tmp_path):
    """reference.md import: --dry-run reads secrets and validates every entry like a real import,
    reports what would change, and writes nothing; a bad entry still fails."""
    import_file(write(tmp_path, entry("billing")))
    before = Integration.objects.values().get(slug="billing")
    err = io.StringIO()
    path = write(tmp_path, entry("billing", name="Renamed"), entry("crm"))
    call_command("integrations_import", str(path), "--dry-run", stderr=err)
    assert "Would import 1 new and 1 updated integration(s)." in err.getvalue()
    assert "new: crm" in err.getvalue() and "updated: billing" in err.getvalue()
    assert list(Integration.objects.values()) == [before]
    with pytest.raises(CommandError, match="crm: auth.algorithm"):
        call_command(
            "integrations_import",
            str(write(tmp_path, entry("crm", auth={"algorithm": "none"}))),
            "--dry-run",
            stderr=io.StringIO(),
        )


def test_a_client_certificate_near_expiry_is_imported_with_a_warning(tmp_path, monkeypatch):
    """security.md #35: as the admin form does, the import says that the client
    certificate expires within 30 days (and still imports it); no key in the output."""
    monkeypatch.setenv("BILLING_CERT", self_signed("billing", days=10)[0])
    path = write(tmp_path, entry("billing", client_certificate={"env": "BILLING_CERT"}))
    err = import_file(path)
    assert "warning: billing: the client certificate expires on" in err and " days)" in err
    assert "PRIVATE KEY" not in err
    monkeypatch.setenv("BILLING_CERT", self_signed("billing", days=90)[0])
    assert "warning" not in import_file(path)
