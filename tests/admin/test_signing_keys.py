"""The admin's signing keys (docs/key-custody.md): the change page lists every key's
kid, state, algorithm, thumbprint and public half; the keys page rolls them over under
the manage_signing_keys permission, with CSRF-checked POSTs (security.md #28), and no
page shows private material (security.md #33)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from integrations.models import Integration, KeyState
from tests.admin.helpers import change_url, form_data, form_errors, integration_url, messages_of
from tests.keys import ec_pem, rsa_pem

pytestmark = pytest.mark.django_db


@pytest.fixture
def signing(make_integration: Any) -> Integration:
    integration: Integration = make_integration(
        auth_type="jwt_bearer",
        auth_config={"algorithm": "ES256", "claims": {"iss": "shop"}},
        secrets={"key": ec_pem()},
    )
    return integration


@pytest.fixture
def key_manager(users: dict[str, Any]) -> Client:
    """The operator, also allowed to manage signing keys."""
    operator = users["operator"]
    operator.user_permissions.add(Permission.objects.get(codename="manage_signing_keys"))
    client = Client()
    client.force_login(operator)
    return client


def keys_url(integration: Integration) -> str:
    return integration_url("keys", integration)


def test_the_change_page_lists_the_keys(as_user, signing):
    html = as_user("operator").get(change_url(signing)).content.decode()
    assert 'class="signing-keys"' in html and "active" in html and "ES256" in html
    assert "BEGIN PUBLIC KEY" in html and "PRIVATE" not in html
    assert keys_url(signing) in html


def test_rollover_from_the_keys_page(key_manager, signing):
    page = key_manager.get(keys_url(signing))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Add next key" in html and "Promote" not in html
    assert "/integrations/billing/jwks.json" in html
    added = key_manager.post(keys_url(signing), {"action": "add_next", "kind": "ec-p256"})
    assert added.status_code == 302
    assert any("Added next key" in m and "send_kid is now on" in m for m in messages_of(added))
    html = key_manager.get(keys_url(signing)).content.decode()
    assert "Promote next key" in html and "Drop next key" in html
    nxt = signing.signing_keys.get()
    promoted = key_manager.post(keys_url(signing), {"action": "promote"})
    assert any(f"{nxt.kid} is now active" in m for m in messages_of(promoted))
    assert signing.signing_keys.get().state == KeyState.RETIRED
    dropped = key_manager.post(keys_url(signing), {"action": "drop_retired"})
    assert any("Dropped retired key" in m for m in messages_of(dropped))
    assert not signing.signing_keys.exists()
    for url in (keys_url(signing), change_url(signing)):
        assert "PRIVATE" not in key_manager.get(url).content.decode()


def test_managing_keys_needs_its_own_permission(as_user, signing):
    """Operators and viewers see the keys but cannot change them; viewers see no public
    key, as on the change page (security.md #29)."""
    for name in ("operator", "viewer"):
        client = as_user(name)
        page = client.get(keys_url(signing))
        assert page.status_code == 200
        html = page.content.decode()
        assert "Add next key" not in html and "active" in html
        assert ("BEGIN PUBLIC KEY" in html) == (name == "operator")
        refused = client.post(keys_url(signing), {"action": "add_next"})
        assert refused.status_code == 403
    assert not signing.signing_keys.exists()
    assert 'class="signing-keys"' not in as_user("viewer").get(change_url(signing)).content.decode()


def test_actions_are_csrf_checked(users, signing):
    operator = users["superuser"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(keys_url(signing), {"action": "add_next"}).status_code == 403
    assert not signing.signing_keys.exists()


def test_mistakes_are_messages_not_errors(key_manager, signing, make_integration):
    refused = key_manager.post(keys_url(signing), {"action": "promote"})
    assert refused.status_code == 302
    assert any("has no next key" in m for m in messages_of(refused))
    wrong = key_manager.post(keys_url(signing), {"action": "add_next", "kind": "rsa-2048"})
    assert wrong.status_code == 302  # a flow's algorithm follows its next key's type
    shared = make_integration("shared")
    page = key_manager.get(keys_url(shared)).content.decode()
    assert "signs with a shared secret" in page and "Add next key" not in page


def test_the_change_form_still_saves_with_a_next_key(as_user, key_manager, signing):
    """The keys live beside the form: saving the integration keeps them."""
    key_manager.post(keys_url(signing), {"action": "add_next"})
    data = form_data(auth_algorithm="ES256", auth_key="", auth_send_kid="on")
    response = as_user("operator").post(change_url(signing), data)
    assert response.status_code == 302
    assert signing.signing_keys.filter(state=KeyState.NEXT).exists()
    signing.refresh_from_db()
    assert signing.auth_config["send_kid"] is True


def test_a_device_signer_is_configured_in_the_form(as_user, make_integration, monkeypatch):
    """The signer option replaces the key; a stored key is dropped, not kept unused. (The
    KMS endpoint here cannot be reached: that is no reason to refuse the save.)"""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    integration = make_integration(
        auth_type="jwt_bearer",
        auth_config={"algorithm": "RS256", "claims": {}},
        secrets={"key": rsa_pem()},
    )
    signer = '{"type": "aws_kms", "key_id": "alias/x", "region": "eu-west-1", ' \
             '"endpoint_url": "http://127.0.0.1:9"}'
    data = form_data(auth_algorithm="RS256", auth_key="", auth_signer=signer)
    response = as_user("operator").post(change_url(integration), data)
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.auth_config["signer"]["type"] == "aws_kms"
    assert integration.get_secrets() == {}
