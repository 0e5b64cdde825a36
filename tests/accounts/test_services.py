"""Per-account tokens end to end through the service layer (security.md #31): the
emulators refuse a token used for another account; one token request per account
across threads; an edit or a 401 of one account touches only that account's token."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integrations import services
from integrations.exceptions import AccountDisabled, AccountNotFound, TokenError
from integrations.models import Account, CallLog, Integration
from tests.accounts.emulators import GitHubEmulator, GrantEmulator
from tests.accounts.helpers import github_app
from tests.keys import rsa_pem
from tests.tokens.emulators import key_file

pytestmark = pytest.mark.django_db

INSTALLATIONS = {1: "alpha", 2: "beta", 3: "gamma"}


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    with GitHubEmulator(INSTALLATIONS) as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
def app(github: GitHubEmulator) -> Integration:
    integration = github_app(base_url=github.base_url)
    for installation, login in INSTALLATIONS.items():
        Account.objects.create(
            integration=integration, key=login, options={"installation_id": str(installation)}
        )
    return integration


def test_installation_token_works_only_for_its_installation(
    github: GitHubEmulator, app: Integration
) -> None:
    """A token minted for alpha's installation is refused at beta's repositories, and
    each account's call goes out with its own installation's token."""
    assert services.request("gh", "GET", "repos/alpha/app", account="alpha").status_code == 200
    assert services.request("gh", "GET", "repos/beta/app", account="beta").status_code == 200
    # The emulator really checks: alpha's token at beta's repository is refused.
    refused = services.request("gh", "GET", "repos/beta/app", account="alpha")
    assert refused.status_code == 404
    assert dict(github.token_requests) == {"1": 1, "2": 1}
    rows = CallLog.objects.order_by("id").values_list("account__key", "status_code")
    assert list(rows) == [("alpha", 200), ("beta", 200), ("alpha", 404)]


def test_threads_times_accounts_make_one_token_request_per_account(
    github: GitHubEmulator, app: Integration
) -> None:
    """8 threads x 3 accounts on a cold token cache: exactly 3 token requests. (Sessions
    are looked up first and calls not logged: in-memory SQLite is one connection.)"""
    Integration.objects.filter(pk=app.pk).update(log_calls="none")
    sessions = {login: services.get_session("gh", login) for login in INSTALLATIONS.values()}
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def work() -> None:
        barrier.wait()
        for login, session in sessions.items():
            statuses.append(session.request("GET", f"repos/{login}/app").status_code)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 24
    assert dict(github.token_requests) == {"1": 1, "2": 1, "3": 1}


def test_a_401_for_one_account_refreshes_only_its_token(
    github: GitHubEmulator, app: Integration
) -> None:
    for login in ("alpha", "beta"):
        services.request("gh", "GET", f"repos/{login}/app", account=login)
    with github.lock:  # the remote revokes alpha's token
        github.tokens = {t: a for t, a in github.tokens.items() if a != "1"}
    assert services.request("gh", "GET", "repos/alpha/app", account="alpha").status_code == 200
    assert services.request("gh", "GET", "repos/beta/app", account="beta").status_code == 200
    assert dict(github.token_requests) == {"1": 2, "2": 1}


def test_editing_one_account_invalidates_only_its_tokens(
    github: GitHubEmulator, app: Integration
) -> None:
    for login in ("alpha", "beta"):
        services.request("gh", "GET", f"repos/{login}/app", account=login)
    alpha = Account.objects.get(key="alpha")
    alpha.options = {"installation_id": "3"}  # moved to another installation
    alpha.save()
    github.installations[3] = "alpha"
    assert services.request("gh", "GET", "repos/alpha/app", account="alpha").status_code == 200
    assert services.request("gh", "GET", "repos/beta/app", account="beta").status_code == 200
    assert dict(github.token_requests) == {"1": 1, "2": 1, "3": 1}


def test_unknown_disabled_and_missing_installation(
    github: GitHubEmulator, app: Integration
) -> None:
    with pytest.raises(AccountNotFound, match="'gh' has no account 'nobody'"):
        services.get_session("gh", "nobody")
    Account.objects.filter(key="beta").update(enabled=False)
    with pytest.raises(AccountDisabled, match="account 'beta' of integration 'gh' is disabled"):
        services.get_session("gh", "beta")
    # The app has no installation of its own: without an account there is no token.
    with pytest.raises(TokenError, match="installation_id is required to call without an account"):
        services.request("gh", "GET", "repos/alpha/app")
    row = services.run_test("gh", account="beta")
    assert (row.ok, row.error, row.account_id) == (
        False,
        "account disabled",
        Account.objects.get(key="beta").pk,
    )
    assert services.run_test("gh", account="alpha").ok


def test_google_like_grant_impersonates_each_account(
    make_integration: Callable[..., Integration],
) -> None:
    """google_service_account with a subject per account: the grant's access token
    belongs to that subject (the emulator answers /whoami with the assertion's sub)."""
    with GrantEmulator() as grant:
        integration = make_integration(
            "gsuite",
            base_url=f"{grant.url}/api/",
            auth_type="google_service_account",
            auth_config={"scopes": ["https://www.googleapis.com/auth/drive"]},
            secrets={"service_account": key_file(grant.token_url)},
        )
        for user in ("alice@example.com", "bob@example.com"):
            Account.objects.create(integration=integration, key=user, options={"subject": user})
        seen: dict[str, Any] = {}
        for _ in range(2):
            for user in ("alice@example.com", "bob@example.com"):
                seen[user] = services.request("gsuite", "GET", "whoami", account=user).json()["sub"]
        assert seen == {
            "alice@example.com": "alice@example.com",
            "bob@example.com": "bob@example.com",
        }
        assert dict(grant.token_requests) == {"alice@example.com": 1, "bob@example.com": 1}
        # Without an account: the service account itself (no sub claim).
        assert services.request("gsuite", "GET", "whoami").json()["sub"] == ""


def test_jwt_grant_claims_per_account(make_integration: Callable[..., Integration]) -> None:
    with GrantEmulator() as grant:
        integration = make_integration(
            "grant",
            base_url=f"{grant.url}/api/",
            auth_type="jwt_grant",
            auth_config={
                "algorithm": "RS256",
                "claims": {"iss": "shop", "sub": "default"},
                "token_url": grant.token_url,
            },
            secrets={"key": rsa_pem()},
        )
        Account.objects.create(
            integration=integration, key="carol", options={"claims": {"sub": "carol"}}
        )
        assert services.request("grant", "GET", "whoami", account="carol").json() == {
            "sub": "carol"
        }
        assert services.request("grant", "GET", "whoami").json() == {"sub": "default"}
