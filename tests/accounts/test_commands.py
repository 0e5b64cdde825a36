"""Commands with accounts (docs/reference.md, Accounts): --account on integrations_test,
_call and _token, --all over every enabled account, integrations_accounts listing at a
constant query count and --sync over several pages of installations (security.md #31)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.fanout import can_fork
from integrations.models import Account, CallLog, Integration
from tests.accounts.emulators import GitHubEmulator
from tests.accounts.helpers import add_accounts, github_app
from tests.child import FORKS
from tests.commands.helpers import manage
from tests.keys import CANARY, rsa_pem

pytestmark = pytest.mark.django_db

INSTALLATIONS = {11: "alpha", 12: "beta", 13: "gamma", 14: "delta", 15: "epsilon"}


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    with GitHubEmulator(INSTALLATIONS, per_page=2) as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
def app(github: GitHubEmulator) -> Integration:
    return github_app(base_url=github.base_url)


def test_sync_follows_every_page_is_idempotent_and_disables_the_gone(
    github: GitHubEmulator, app: Integration
) -> None:
    ran = manage("integrations_accounts", "gh", "--sync", "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == {
        "added": sorted(INSTALLATIONS.values()),
        "kept": [],
        "disabled": [],
        "reinstalled_disabled": [],
    }
    assert "gh: 5 added, 0 kept, 0 disabled." in ran.err
    assert len(github.server.calls("GET", "/api/v3/app/installations")) == 3  # 2 + 2 + 1
    options = dict(Account.objects.values_list("key", "options"))
    assert options["epsilon"] == {"installation_id": "15"}

    again = manage("integrations_accounts", "gh", "--sync")
    assert again.code == 0 and "gh: 0 added, 5 kept, 0 disabled." in again.err

    del github.installations[12]
    github.installations[16] = "zeta"
    third = manage("integrations_accounts", "gh", "--sync")
    assert "gh: 1 added, 4 kept, 1 disabled." in third.err and "disabled  beta" in third.err
    assert (
        not Account.objects.get(key="beta").enabled and Account.objects.filter(key="zeta").exists()
    )
    assert CANARY not in third.err + third.out and "PRIVATE" not in third.err + third.out

    github.installations[17] = "beta"  # beta's owner installs the app again: a new id
    fourth = manage("integrations_accounts", "gh", "--sync")
    assert "installed again, still disabled  beta" in fourth.err
    beta = Account.objects.get(key="beta")
    assert (beta.enabled, beta.options) == (False, {"installation_id": "17"})


def test_sync_refused_for_other_auth_types(make_integration) -> None:  # type: ignore[no-untyped-def]
    make_integration()
    ran = manage("integrations_accounts", "billing", "--sync")
    assert ran.code == 2 and "--sync lists GitHub App installations" in ran.err


def test_test_all_covers_each_enabled_account(
    github: GitHubEmulator, app: Integration, make_integration
) -> None:  # type: ignore[no-untyped-def]
    manage("integrations_accounts", "gh", "--sync")
    Account.objects.filter(key="delta").update(enabled=False)
    make_integration("plain", base_url=f"{github.url}/plain/")
    ran = manage("integrations_test", "--all", "--json")
    results = json.loads(ran.out)
    pairs = sorted((r["slug"], r["account"]) for r in results)
    assert pairs == [("gh", k) for k in ("alpha", "beta", "epsilon", "gamma")] + [("plain", None)]
    assert all(r["ok"] for r in results if r["slug"] == "gh"), ran.err
    assert dict(github.token_requests) == {"11": 1, "12": 1, "13": 1, "15": 1}
    assert CallLog.objects.filter(account__key="alpha", is_test=True).count() == 1


@FORKS
@pytest.mark.skipif(not can_fork(), reason="needs fork()")
def test_test_all_on_worker_processes_logs_every_account_once(
    github: GitHubEmulator, app: Integration
) -> None:
    """--processes 2: the workers make the calls (one token request per account, the
    token checked to be that account's by the emulator), this process logs them."""
    manage("integrations_accounts", "gh", "--sync")
    ran = manage("integrations_test", "--all", "--parallel", "4", "--processes", "2", "--json")

    assert ran.code == 0, ran.err
    results = json.loads(ran.out)
    assert sorted(r["account"] for r in results) == sorted(INSTALLATIONS.values())
    assert all(r["ok"] and r["log_id"] for r in results), results
    assert dict(github.token_requests) == {str(n): 1 for n in INSTALLATIONS}
    assert CallLog.objects.filter(integration=app, is_test=True, ok=True).count() == 5
    assert manage("integrations_test", "--all", "--processes", "0").code == 2


def test_enqueue_json_names_slug_and_account_apart(
    github: GitHubEmulator, app: Integration
) -> None:
    """As a run's results do: "slug" is the integration's, "account" the account's key."""
    manage("integrations_accounts", "gh", "--sync")
    ran = manage("integrations_test", "gh", "--enqueue", "--json")

    assert ran.code == 0, ran.err
    items = json.loads(ran.out)
    assert {(item["slug"], item["account"]) for item in items} == {
        ("gh", key) for key in INSTALLATIONS.values()
    }
    assert all(item["task_id"] for item in items)


def test_account_option_on_commands(github: GitHubEmulator, app: Integration) -> None:
    manage("integrations_accounts", "gh", "--sync")
    ran = manage("integrations_test", "gh", "--account", "beta", "--json")
    assert ran.code == 0 and json.loads(ran.out)[0]["account"] == "beta"
    assert "ok    gh[beta]" in ran.err
    call = manage("integrations_call", "gh", "GET", "repos/gamma/app", "--account", "gamma")
    assert call.code == 0 and "gamma/app" in call.out
    token = manage("integrations_token", "gh", "--account", "alpha")
    report = json.loads(token.out)
    assert token.code == 0 and report["account"] == "alpha" and "token" not in report
    for command in (
        ("integrations_test", "gh", "--account", "nobody"),
        ("integrations_call", "gh", "GET", "x", "--account", "nobody"),
        ("integrations_token", "gh", "--account", "nobody"),
    ):
        ran = manage(*command)
        assert ran.code == 2 and ran.err.strip().count("\n") == 0, (command, ran.err)
        assert "has no account 'nobody'" in ran.err


@pytest.mark.parametrize("count", [3, 30])
def test_listing_runs_constant_queries(app: Integration, count: int) -> None:
    add_accounts(app, count)
    with CaptureQueriesContext(connection) as queries:
        ran = manage("integrations_accounts", "gh", "--json")
    rows = json.loads(ran.out)
    assert len(rows) == count and rows[0]["last_test"] is None
    assert len(queries) == 2  # the integration, the accounts with their last test


def test_listing_shows_last_test(github: GitHubEmulator, app: Integration) -> None:
    manage("integrations_accounts", "gh", "--sync")
    manage("integrations_test", "gh", "--account", "alpha")
    ran = manage("integrations_accounts", "gh")
    lines = dict(line.split("\t", 1) for line in ran.out.splitlines())
    assert lines["alpha"].startswith("enabled\tok 200 at ") and "never tested" in lines["beta"]
    assert rsa_pem() not in ran.out



def log_test(account: Account, *, ok: bool) -> None:
    CallLog.objects.create(
        integration=account.integration, account=account, source="api", is_test=True,
        method="GET", url="http://x/", ok=ok, status_code=200 if ok else 500,
    )


def test_only_failed_picks_the_accounts_whose_own_last_test_failed(
    github: GitHubEmulator, app: Integration
) -> None:
    """--only-failed with accounts: alpha's own last test failed, so alpha is tested
    again, although the integration's newest test (beta's) passed; beta, and the
    accounts never tested, are not. The same queries with 5 accounts as with 30."""
    manage("integrations_accounts", "gh", "--sync")
    alpha, beta = Account.objects.get(key="alpha"), Account.objects.get(key="beta")
    counts = []
    for extra in (0, 25):
        if extra:
            add_accounts(app, extra, start=100)  # never tested
        for args in (("--only-failed",), ("gh", "--only-failed")):
            log_test(alpha, ok=True)
            log_test(alpha, ok=False)
            log_test(beta, ok=True)  # the integration's newest test: passed
            with CaptureQueriesContext(connection) as queries:
                ran = manage("integrations_test", *args, "--json")
            tested = [(r["slug"], r["account"]) for r in json.loads(ran.out)]
            assert tested == [("gh", "alpha")], (args, ran.err)
            counts.append(len(queries))
    assert counts[:2] == counts[2:], counts
