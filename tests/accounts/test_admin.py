"""The account admin at scale: the changelist and the integration page at a constant
query count (pinned at two sizes), filters that never list every account, the test-call
action behind run_test_call, and no secret on any page (security.md #28, #29, #31)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from integrations.models import Account, CallLog
from tests.accounts.emulators import GitHubEmulator
from tests.accounts.helpers import add_accounts, github_app
from tests.admin.helpers import logged_test_call
from tests.keys import rsa_pem

pytestmark = pytest.mark.django_db


def client_for(codenames: list[str] | None = None, name: str = "staff") -> Client:
    if codenames is None:
        user = User.objects.create_superuser("root", password="pw")
    else:
        user = User.objects.create_user(name, password="pw", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="integrations", codename__in=codenames
            )
        )
    client = Client()
    client.force_login(user)
    return client


def queries_for(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def log_tests(accounts: list[Account]) -> None:
    CallLog.objects.bulk_create(logged_test_call(a.integration, account=a) for a in accounts)


def test_changelist_and_integration_page_at_constant_queries() -> None:
    app = github_app()
    client = client_for()
    client.get(f"/admin/integrations/integration/{app.pk}/change/")  # warm up the session
    counts = []
    for size in (5, 60):
        created = add_accounts(
            app, size - Account.objects.count(), start=Account.objects.count() + 1
        )
        log_tests(created)
        listing, html = queries_for(client, "/admin/integrations/account/")
        page, page_html = queries_for(client, f"/admin/integrations/integration/{app.pk}/change/")
        counts.append((listing, page))
        assert "acct-1" in html and f"{size} accounts; the first" in page_html or size <= 20
        assert "ok 200" in html  # the last test, fetched for the page's rows only
    assert counts[0] == counts[1], counts
    # A later page costs what the first does (the page's ids first, then its rows).
    deep, html = queries_for(client, "/admin/integrations/account/?p=2")
    assert deep == counts[1][0] and "acct-9" in html and "ok 200" in html


def test_filters_and_search() -> None:
    app = github_app()
    accounts = add_accounts(app, 3)
    log_tests(accounts[:1])
    client = client_for()
    html = client.get("/admin/integrations/account/?last_test=never").content.decode()
    assert "acct-2" in html and "acct-1<" not in html
    html = client.get("/admin/integrations/account/?q=acct-3").content.decode()
    assert "acct-3" in html and "acct-2" not in html
    calls = client.get("/admin/integrations/calllog/?account=acct-1").content.decode()
    assert 'placeholder="account key, then Enter"' in calls and "1 call log" in calls


def test_action_needs_run_test_call_permission() -> None:
    with GitHubEmulator({7: "acme"}) as github:
        app = github_app(base_url=github.base_url)
        account = Account.objects.create(
            integration=app, key="acme", options={"installation_id": "7"}
        )
        data = {"action": "run_test_calls", "_selected_action": [account.pk]}
        editor = client_for(["view_account", "change_account"])
        editor.post("/admin/integrations/account/", data)
        assert not CallLog.objects.exists() and not github.server.requests
        operator = client_for(["view_account", "change_account", "run_test_call"], "operator")
        response = operator.post("/admin/integrations/account/", data, follow=True)
        text = response.content.decode()
        assert "gh[acme]: http 200" in text.lower(), re.findall(
            r"<li class=\"(?:success|error|info|warning)\">.*?</li>", text
        )
        assert CallLog.objects.get().account == account


def test_bad_account_refused_in_admin_naming_the_field() -> None:
    app = github_app()
    client = client_for()
    response = client.post(
        "/admin/integrations/account/add/",
        {
            "integration": app.pk,
            "key": "acme",
            "name": "",
            "enabled": "on",
            "options": '{"installation_id": "x1"}',
        },
    )
    assert "account acme: options.installation_id:" in response.content.decode()
    assert not Account.objects.exists()


def test_no_secret_on_account_pages() -> None:
    """security.md #29: the app's private key appears on no account page."""
    app = github_app()
    account = add_accounts(app, 2)[0]
    client = client_for()
    for url in (
        "/admin/integrations/account/",
        f"/admin/integrations/account/{account.pk}/change/",
        f"/admin/integrations/integration/{app.pk}/change/",
    ):
        html = client.get(url).content.decode()
        assert "PRIVATE KEY" not in html and rsa_pem().splitlines()[1] not in html, url
