"""A GitHub App's JWT names the app, not an installation: it is signed once per app
and reused for every installation's token exchange, while the installation tokens, the
credentials the API sees, stay one per account (security.md #31). Refused by the
exchange, it is signed anew."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations import services
from integrations.exceptions import TokenEndpointError
from integrations.models import Integration
from integrations.testcalls import run_tests, targets
from integrations.tokens.presets.github import app_jwts
from tests.accounts.emulators import GitHubEmulator
from tests.accounts.helpers import add_accounts, github_app
from tests.loopback import Recorded, Reply

pytestmark = pytest.mark.django_db

ACCOUNTS = 4


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    with GitHubEmulator({n: f"acct-{n}" for n in range(1, ACCOUNTS + 1)}) as emulator:
        yield emulator  # type: ignore[misc]


def exchanges(github: GitHubEmulator) -> list[Recorded]:
    return [r for r in github.server.requests if r.path.endswith("/access_tokens")]


def test_one_app_jwt_for_every_installation_one_token_each(github: GitHubEmulator) -> None:
    app = github_app(base_url=github.base_url)
    add_accounts(app, ACCOUNTS)
    results = run_tests(targets([app]), source="command", parallel=ACCOUNTS)
    assert [r.ok for r in results] == [True] * ACCOUNTS
    sent = exchanges(github)
    assert len(sent) == ACCOUNTS and len({r.bearer for r in sent}) == 1
    # Each account's test call went out with its own installation's token.
    calls = [r for r in github.server.requests if r.path.endswith("/installation/repositories")]
    owners = {github.tokens[r.bearer] for r in calls}
    assert owners == {str(n) for n in range(1, ACCOUNTS + 1)}
    # Another integration signs and keeps its own (here the same app and key, so the
    # same claims: byte for byte the same JWT, signed again).
    other = github_app("gh2", base_url=github.base_url)
    add_accounts(other, 1)
    run_tests(targets([other]), source="command")
    assert sorted(key.split(":")[0] for key in app_jwts._jwts) == ["gh", "gh2"]


def test_a_refused_app_jwt_is_signed_anew(github: GitHubEmulator) -> None:
    app = github_app(base_url=github.base_url)
    add_accounts(app, 2)
    refuse = {"once": True}
    accept = github.access_token

    def flaky(request: Recorded) -> Reply:
        if refuse.pop("once", False):
            return Reply(401, {"message": "A JSON web token could not be decoded"})
        return accept(request)

    github.routes.patterns[0] = (*github.routes.patterns[0][:2], flaky)
    with pytest.raises(TokenEndpointError):
        services.get_session("gh", "acct-1").get("installation/repositories")
    assert services.request("gh", "GET", "installation/repositories", account="acct-2").ok
    first, second = exchanges(github)
    assert first.bearer != second.bearer
    assert Integration.objects.count() == 1
