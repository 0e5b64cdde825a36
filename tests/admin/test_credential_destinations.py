"""Changing where a kept secret is sent needs the secret again (security.md #28, #29):
someone who may change an integration but never sees its key must not be able to point
it at their own server and receive a token signed with it."""

from __future__ import annotations

import pytest

from integrations.destinations import credential_destination_errors
from integrations.models import Integration
from tests.admin.helpers import change_url, form_data, form_errors
from tests.keys import HMAC_SECRET

pytestmark = pytest.mark.django_db

ELSEWHERE = "https://attacker.example.net/"
ASK_AGAIN = "This would send the stored key to another server: enter it again"


def grant_form(**overrides: str) -> dict[str, str]:
    data = form_data(
        auth_type="jwt_grant", auth_key="", auth_token_url="https://idp.example.com/token"
    )
    for name in ["auth_header_name", "auth_scheme"]:
        del data[name]
    data.update(overrides)
    return data


@pytest.fixture
def grant(make_integration) -> Integration:
    return make_integration(
        auth_type="jwt_grant",
        auth_config={"algorithm": "HS256", "token_url": "https://idp.example.com/token"},
    )


def refused(client, integration: Integration, data: dict[str, str], field: str) -> None:
    """The change is refused on ``field`` asking for the secret, and nothing is saved."""
    before = Integration.objects.get(pk=integration.pk)
    response = client.post(change_url(integration), data)
    assert response.status_code == 200
    assert any(ASK_AGAIN in message for message in form_errors(response)[field])
    after = Integration.objects.get(pk=integration.pk)
    assert (after.base_url, after.auth_type, after.auth_config) == (
        before.base_url,
        before.auth_type,
        before.auth_config,
    )


@pytest.mark.parametrize("user", ["editor", "superuser"])
def test_new_base_url_with_the_key_kept_is_refused(as_user, make_integration, user):
    """A JWT bearer token goes to base_url: another host with the key left blank is
    refused on base_url, whoever asks."""
    integration = make_integration()
    data = form_data(base_url=ELSEWHERE, auth_key="")
    refused(as_user(user), integration, data, "base_url")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"auth_token_url": ELSEWHERE + "token"}, "auth_token_url"),
        ({"base_url": ELSEWHERE}, "base_url"),
    ],
)
def test_new_token_url_or_base_url_of_a_grant_is_refused(as_user, grant, changes, field):
    """The grant's assertion goes to token_url and the token it buys to base_url."""
    refused(as_user("editor"), grant, grant_form(**changes), field)


def test_switching_to_a_type_that_sends_the_key_elsewhere_is_refused(as_user, make_integration):
    """A new auth type that would send the kept key to a new server (its exchange URL)
    asks for the key too."""
    data = form_data(
        auth_type="jwt_exchange",
        auth_key="",
        auth_exchange_url=ELSEWHERE + "exchange",
        auth_exchange_method="POST",
        auth_token_field="token",
    )
    for name in ["auth_header_name", "auth_scheme"]:
        del data[name]
    refused(as_user("editor"), make_integration(), data, "auth_exchange_url")


def test_entering_the_secret_again_allows_the_move(as_user, grant):
    """With the secret typed again the change is the operator's own: saved."""
    data = grant_form(auth_key=HMAC_SECRET, auth_token_url=ELSEWHERE + "token")
    assert as_user("editor").post(change_url(grant), data).status_code == 302
    grant.refresh_from_db()
    assert grant.auth_config["token_url"] == ELSEWHERE + "token"


def test_same_server_changes_keep_the_secret(as_user, grant):
    """A new path on the same origin, or a token URL on a server the key already
    reaches, is no new destination: the blank key is kept."""
    data = grant_form(
        base_url="http://127.0.0.1:9/v2/", auth_token_url="https://idp.example.com/oauth/token"
    )
    assert as_user("editor").post(change_url(grant), data).status_code == 302
    grant.refresh_from_db()
    assert grant.base_url == "http://127.0.0.1:9/v2/"
    assert grant.get_secrets() == {"key": HMAC_SECRET}


def test_the_rule_for_the_import(make_integration):
    """The function the import shares: nothing kept (a new integration, every secret
    entered) means nothing to refuse; dotted field names as validation uses them."""
    integration = make_integration()
    moved = {"base_url": ELSEWHERE, "auth_type": "jwt_bearer", "auth_config": {}}
    assert credential_destination_errors(integration, moved, entered=[]) == {
        "base_url": ASK_AGAIN + " to confirm, or keep the previous address."
    }
    assert credential_destination_errors(integration, moved, entered=["key"]) == {}
    assert credential_destination_errors(None, moved, entered=[]) == {}
    grant = {
        "base_url": integration.base_url,
        "auth_type": "jwt_grant",
        "auth_config": {"token_url": ELSEWHERE},
    }
    assert list(credential_destination_errors(integration, grant, entered=[])) == ["auth.token_url"]
