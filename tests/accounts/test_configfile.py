"""Accounts in the configuration file: upserted by key, never deleted by an import,
exported, atomic with the rest; a bad account names integration, account and field
(docs/reference.md, Accounts; security.md #31)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from integrations import configfile
from integrations.exceptions import InvalidConfiguration
from integrations.models import Account, Integration
from tests.commands.helpers import manage
from tests.keys import CANARY, rsa_pem

pytestmark = pytest.mark.django_db


def app_entry(accounts: list[dict[str, Any]] | None = None, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": "gh",
        "base_url": "https://api.github.com/",
        "auth": {"type": "github_app", "app_id": "Iv1.app", "private_key": rsa_pem()},
        **changes,
    }
    if accounts is not None:
        data["accounts"] = accounts
    return data


ACME = {"key": "acme", "name": "Acme Inc", "enabled": True, "options": {"installation_id": "4711"}}
GLOBEX = {"key": "globex", "options": {"installation_id": "4712"}}


def load(*entries: dict[str, Any]) -> configfile.ImportResult:
    return configfile.import_config({"integrations": list(entries)})


def test_import_creates_then_upserts_and_never_deletes() -> None:
    result = load(app_entry([ACME, GLOBEX]))
    assert (result.accounts_created, result.accounts_updated) == (2, 0)
    result = load(app_entry([{"key": "acme", "enabled": False}], auth=None))
    assert (result.accounts_created, result.accounts_updated) == (0, 1)
    acme = Account.objects.get(key="acme")
    assert (acme.name, acme.enabled, acme.options) == (
        "Acme Inc",
        False,
        {"installation_id": "4711"},
    )
    assert Account.objects.filter(key="globex").exists()  # not named: kept


def test_export_round_trips_accounts_without_secrets() -> None:
    load(app_entry([ACME, GLOBEX]))
    exported = configfile.export_config()
    assert CANARY not in json.dumps(exported) and "PRIVATE KEY" not in json.dumps(exported)
    assert exported["integrations"][0]["accounts"] == [
        ACME,
        {"key": "globex", "name": "", "enabled": True, "options": {"installation_id": "4712"}},
    ]
    before = list(Account.objects.values_list("key", "name", "enabled", "options", "updated_at"))
    again = copy.deepcopy(exported)
    result = configfile.import_config(again)
    assert result.accounts_updated == 2
    after = list(Account.objects.values_list("key", "name", "enabled", "options"))
    assert after == [row[:4] for row in before]


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        (
            [{"key": "acme", "options": {"installation_id": "47x"}}],
            "gh: accounts[acme].options.installation_id: ",
        ),
        (
            [{"key": "acme", "options": {"subject": "a"}}],
            "gh: accounts[acme].options: subject cannot be set per account for github_app",
        ),
        ([{"key": "acme"}], "gh: accounts[acme].options.installation_id: is required"),
        ([ACME, ACME], "gh: accounts[acme]: appears twice in this entry"),
        ([{"key": "no spaces"}], "gh: accounts[#1].key: must be 1-100 characters"),
        ([{"key": "acme", "colour": "red"}], "gh: accounts[acme]: unknown field(s) colour"),
        ([{"key": "acme", "enabled": "yes"}], "gh: accounts[acme].enabled: must be true or false"),
        ({"acme": {}}, "gh: accounts: must be a list of objects"),
    ],
)
def test_invalid_account_fails_whole_import(accounts: Any, expected: str) -> None:
    """Atomic: the other entry and the integration itself are not written either."""
    other = app_entry([GLOBEX], slug="other")
    with pytest.raises(InvalidConfiguration) as caught:
        load(other, app_entry(accounts))
    assert expected in str(caught.value)
    assert not Integration.objects.exists() and not Account.objects.exists()


def test_auth_change_checks_the_accounts_the_file_does_not_name() -> None:
    """Switching gh to jwt_bearer would strand acme's installation_id: refused."""
    load(app_entry([ACME]))
    bearer = {"type": "jwt_bearer", "algorithm": "HS256", "key": CANARY + "-" * 40}
    with pytest.raises(
        InvalidConfiguration, match=r"gh: accounts\[acme\]\.options: installation_id"
    ):
        load(app_entry(None, auth=bearer))
    assert Integration.objects.get().auth_type == "github_app"


def test_dry_run_checks_accounts_and_writes_nothing() -> None:
    with pytest.raises(InvalidConfiguration):
        configfile.import_config({"integrations": [app_entry([{"key": "a"}])]}, dry_run=True)
    configfile.import_config({"integrations": [app_entry([ACME])]}, dry_run=True)
    assert not Account.objects.exists()


def test_the_import_command_says_how_many_accounts(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"integrations": [app_entry([ACME, GLOBEX])]}))
    ran = manage("integrations_import", str(path))
    assert ran.code == 0, ran.err
    assert "accounts: 2 new, 0 updated" in ran.err and CANARY not in ran.err
    path.write_text(json.dumps({"integrations": [app_entry([ACME])]}))
    assert "accounts: 0 new, 1 updated" in manage("integrations_import", str(path)).err
