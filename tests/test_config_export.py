"""Export holds no secret and round-trips through import (reference.md: Configuration
file; security.md #26)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from integrations.models import Integration
from tests.config_entries import entry, import_file, preset, secret_env, write  # noqa: F401
from tests.keys import CANARY, rsa_pem

pytestmark = pytest.mark.django_db


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
