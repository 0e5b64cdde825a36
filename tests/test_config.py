"""The configuration file: every refusal names the entry and the field and writes
nothing; export holds no secret and round-trips (reference.md: Configuration file; security.md #1-3,
9, 10, 26)."""

from __future__ import annotations

import io
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations import configfile
from integrations.models import Integration
from tests.child import manage_env, run
from tests.keys import CANARY, HMAC_SECRET, ec_pem, ed25519_pem, rsa_pem

pytestmark = pytest.mark.django_db


def entry(slug: str = "billing", **changes: Any) -> dict[str, Any]:
    """A valid entry; ``auth`` in ``changes`` is merged into the default auth (None
    leaves auth out)."""
    auth: dict[str, Any] | None = {
        "type": "jwt_bearer",
        "algorithm": "HS256",
        "key": {"env": "BILLING_SECRET"},
        "claims": {"iss": "shop", "aud": "billing"},
        "lifetime": 300,
    }
    auth_changes = changes.pop("auth", {})
    if auth_changes is None:
        auth = None
    else:
        auth.update(auth_changes)
    data: dict[str, Any] = {
        "slug": slug,
        "name": f"{slug.title()} API",
        "base_url": f"https://{slug}.example.com/api/",
        "enabled": True,
        "headers": {"Accept": "application/json"},
        "timeout": 10,
        "log_calls": "all",
        "test_request": {"method": "GET", "path": "health", "expect_status": [200]},
    }
    if auth is not None:
        data["auth"] = auth
    data.update(changes)
    return data


def write(folder: Path, *entries: dict[str, Any], name: str = "config.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"integrations": list(entries)}))
    return path


def import_file(path: Path) -> str:
    """Run integrations_import; its stderr."""
    err = io.StringIO()
    call_command("integrations_import", str(path), stderr=err)
    return err.getvalue()


def refused(path: Path) -> CommandError:
    with pytest.raises(CommandError) as caught:
        import_file(path)
    assert caught.value.returncode != 0
    message = str(caught.value)
    assert "\n" not in message and CANARY not in message
    return caught.value


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch):
    monkeypatch.setenv("BILLING_SECRET", HMAC_SECRET)


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


def test_export_has_no_secret_values(tmp_path):
    """reference.md export, security.md #26: every secret field is null; the canary
    appears nowhere."""
    import_file(write(tmp_path, entry("billing"), entry("crm")))
    out = io.StringIO()
    call_command("integrations_export", stdout=out)
    assert CANARY not in out.getvalue()
    data = json.loads(out.getvalue())
    assert [e["slug"] for e in data["integrations"]] == ["billing", "crm"]
    for item in data["integrations"]:
        assert item["auth"]["key"] is None and item["auth"]["type"] == "jwt_bearer"


def test_export_named_slugs_and_unknown_slug(tmp_path):
    """reference.md export: only the named slugs; an unknown slug exits 2 naming it."""
    import_file(write(tmp_path, entry("billing"), entry("crm")))
    out = io.StringIO()
    call_command("integrations_export", "crm", stdout=out)
    assert [e["slug"] for e in json.loads(out.getvalue())["integrations"]] == ["crm"]
    with pytest.raises(CommandError, match="nosuch") as caught:
        call_command("integrations_export", "crm", "nosuch", stdout=io.StringIO())
    assert caught.value.returncode == 2


def test_export_edit_import_round_trips_without_secrets(tmp_path):
    """reference.md: export → edit → import keeps the stored secret (null means keep) and applies
    the edits; exporting again gives the edited file."""
    import_file(write(tmp_path, entry("billing")))
    stored = Integration.objects.get(slug="billing").get_secrets()
    out = io.StringIO()
    call_command("integrations_export", stdout=out)
    data = json.loads(out.getvalue())
    data["integrations"][0]["name"] = "Billing (edited)"
    data["integrations"][0]["auth"]["lifetime"] = 120
    path = tmp_path / "exported.json"
    path.write_text(json.dumps(data))
    import_file(path)
    billing = Integration.objects.get(slug="billing")
    assert billing.get_secrets() == stored
    assert billing.name == "Billing (edited)" and billing.auth_config["lifetime"] == 120
    again = io.StringIO()
    call_command("integrations_export", stdout=again)
    assert json.loads(again.getvalue()) == data


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


def preset(slug: str, auth: dict[str, Any]) -> dict[str, Any]:
    data = entry(slug)
    data["auth"] = auth
    return data


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


def test_preset_secret_from_file_round_trips_through_export(tmp_path):
    """reference.md: a preset's secret (GitHub App PEM from a file) is stored encrypted and
    exported as null under its own name; re-importing the export keeps it."""
    (tmp_path / "app.pem").write_text(rsa_pem())
    auth = {
        "type": "github_app",
        "app_id": "Iv1.abc",
        "installation_id": "42",
        "private_key": {"file": "app.pem"},
    }
    import_file(write(tmp_path, preset("github", auth)))
    out = io.StringIO()
    call_command("integrations_export", "github", stdout=out)
    exported = json.loads(out.getvalue())
    assert exported["integrations"][0]["auth"]["private_key"] is None
    assert "BEGIN" not in out.getvalue()
    path = tmp_path / "exported.json"
    path.write_text(out.getvalue())
    import_file(path)
    stored = Integration.objects.get(slug="github").get_secrets()
    assert stored == {"private_key": rsa_pem().removesuffix("\n")}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
AUTH_KEYS = [
    "type",
    "algorithm",
    "key",
    "key_id",
    "claims",
    "lifetime",
    "clock_skew",
    "scheme",
    "header_name",
    "private_key",
    "app_id",
    "installation_id",
    "token_url",
    "scope",
]
ENTRY_KEYS = ["slug", "name", "base_url", "enabled", "headers", "timeout", "log_calls",
              "test_request", "auth", "follow_redirects"]  # fmt: skip


@st.composite
def fuzzed_entries(draw: st.DrawFn) -> dict[str, Any]:
    """A valid entry with some fields replaced by arbitrary JSON."""
    data = entry(draw(st.sampled_from(["billing", "crm"])))
    for name in draw(st.lists(st.sampled_from(ENTRY_KEYS), max_size=3)):
        data[name] = draw(JSON_VALUES)
    if isinstance(data.get("auth"), dict):
        for name in draw(st.lists(st.sampled_from(AUTH_KEYS), max_size=3)):
            data["auth"][name] = draw(
                JSON_VALUES | st.sampled_from(["HS256", "github_app", "none"])
            )
    return data


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(fuzzed_entries(), min_size=1, max_size=2))
def test_any_json_is_imported_or_refused_cleanly(tmp_path, entries):
    """reference.md import: whatever JSON an entry holds, import either succeeds or raises
    InvalidConfiguration (one line, no secret): never another exception."""
    from integrations.configfile import import_config
    from integrations.exceptions import InvalidConfiguration

    try:
        import_config({"integrations": entries}, base_dir=tmp_path)
    except InvalidConfiguration as exc:
        assert "\n" not in str(exc) and CANARY not in str(exc)


NAN_OR_INFINITY = "NaN and Infinity are not JSON numbers"
NUL = "must not contain NUL characters"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"auth": {"key_id": float("inf")}}, f"billing: auth: {NAN_OR_INFINITY}"),
        (
            {"test_request": {"path": "health", "expect_status": [float("-inf")]}},
            f"billing: test_request: {NAN_OR_INFINITY}",
        ),
        ({"auth": {"claims": {"iss": "sh\x00op", "aud": "b"}}}, f"billing: auth: {NUL}"),
        ({"auth": {"claims": {"\x00": "x", "aud": "b"}}}, f"billing: auth: {NUL}"),
        ({"test_request": {"path": "he\x00alth"}}, f"billing: test_request: {NUL}"),
        ({"name": "Bill\x00ing"}, f"billing: name: {NUL}"),
        ({"slug": "bill\x00ing"}, "entry #1: slug: Enter a valid"),
        ({"name": "Bill\ud800"}, "billing: name: must be valid Unicode"),
        ({"auth": {"claims": {"iss": "\udc00", "aud": "b"}}}, "billing: auth: must be valid"),
    ],
)
def test_values_postgresql_cannot_store_are_refused(tmp_path, monkeypatch, change, message):
    """Python's json accepts NaN, Infinity and lone surrogates, and SQLite keeps NUL
    characters; JSON, UTF-8 and PostgreSQL refuse them. Such an entry is refused naming
    its field, on every database, instead of failing at the query."""
    from integrations.configfile import import_config
    from integrations.exceptions import InvalidConfiguration

    monkeypatch.setenv("BILLING_SECRET", HMAC_SECRET)
    data = entry()
    for name, value in change.items():
        data[name] = {**data[name], **value} if isinstance(data[name], dict) else value
    with pytest.raises(InvalidConfiguration, match=re.escape(message)):
        import_config({"integrations": [data]}, base_dir=tmp_path)
    assert not Integration.objects.exists()


def test_secret_that_is_not_unicode_text_is_refused(tmp_path, monkeypatch):
    """A secret spelled with a lone surrogate in the file, or an environment variable
    holding non-UTF-8 bytes, is refused naming its source (it could not be encrypted)."""
    from integrations.configfile import import_config
    from integrations.exceptions import InvalidConfiguration

    monkeypatch.setenv("NOT_UTF8", "k8Jq2vX9mZ4pL7wR1tY6nB3cF5hD0gS-aE\udcff")
    for key, source in [
        ("k8Jq2vX9mZ4pL7wR1tY6nB3cF5hD0gS-aE\ud800", "the value"),
        ({"env": "NOT_UTF8"}, "environment variable NOT_UTF8"),
    ]:
        data = {"integrations": [entry(auth={"key": key})]}
        with pytest.raises(InvalidConfiguration, match=f"auth.key: {source} is not valid Unicode"):
            import_config(data, base_dir=tmp_path)
    assert not Integration.objects.exists()


def test_unreadable_secret_source_has_its_own_exception_type(tmp_path):
    """Callers of import_config can tell an unreadable secret source (SecretUnavailable,
    an InvalidConfiguration) from other configuration errors."""
    from integrations.configfile import import_config
    from integrations.exceptions import SecretUnavailable

    for secret in ({"env": "NOT_SET_ANYWHERE_42"}, {"file": "missing.pem"}):
        data = {"integrations": [entry(auth={"key": secret})]}
        with pytest.raises(SecretUnavailable, match="billing: auth.key: "):
            import_config(data, base_dir=tmp_path)


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
