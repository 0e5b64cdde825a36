"""The integration form: the auth type chosen first, exactly its fields, write-only
secrets, field-level validation messages and switching the auth type."""

from __future__ import annotations

import pytest

from integrations.models import Integration
from integrations.tokens import PROVIDERS
from tests.admin.helpers import ADD, change_url, form_data, form_errors
from tests.keys import CANARY, HMAC_SECRET, ec_pem, rsa_pem

pytestmark = pytest.mark.django_db


def test_add_starts_by_choosing_the_auth_type(as_user):
    """Without JavaScript the add page first asks for the auth type, listing each one."""
    html = as_user("operator").get(ADD).content.decode()
    for name in PROVIDERS:
        assert f'value="{name}"' in html
    assert 'name="auth_key"' not in html


@pytest.mark.parametrize("auth_type", sorted(PROVIDERS))
def test_add_form_shows_only_the_chosen_types_fields(as_user, auth_type):
    """The add form for a type renders that type's options and no other type's."""
    response = as_user("operator").get(ADD, {"auth_type": auth_type})
    html = response.content.decode()
    own = {f"auth_{name}" for name in PROVIDERS[auth_type].Options.base_fields}
    others = {
        f"auth_{name}" for cls in PROVIDERS.values() for name in cls.Options.base_fields
    } - own
    for name in own:
        assert f'name="{name}"' in html
    for name in others:
        assert f'name="{name}"' not in html


def test_editor_without_add_permission_cannot_add(as_user):
    """The auth-type chooser is behind the add permission too."""
    assert as_user("viewer").get(ADD).status_code == 403


def test_add_stores_secret_encrypted_and_options_plain(as_user):
    """security.md #29: the key lands encrypted, never among plain options; the new
    integration's page says 'set' with a fingerprint, not the secret."""
    response = as_user("operator").post(ADD + "?auth_type=jwt_bearer", form_data(), follow=True)
    assert response.status_code == 200, form_errors(response)
    integration = Integration.objects.get(slug="billing")
    assert integration.get_secrets() == {"key": HMAC_SECRET}
    assert "key" not in integration.auth_config
    assert CANARY not in integration.encrypted_secrets
    assert integration.auth_config["claims"] == {"iss": "shop", "aud": "billing"}
    html = response.content.decode()
    assert "Signing key: set · secret:" in html
    assert CANARY not in html


def test_validation_message_names_the_field_and_says_what_to_do(as_user):
    """security.md #2: a short HS256 secret is refused on the key field with the rule."""
    response = as_user("operator").post(ADD, form_data(auth_key="0123456789"))
    assert response.status_code == 200
    assert form_errors(response)["auth_key"] == [
        "HS256 needs a secret of at least 32 bytes; this one has 10"
    ]
    assert not Integration.objects.exists()


def test_wrong_key_type_is_a_field_error(as_user):
    """security.md #3: an EC key with RS256 is refused on the key field, without a traceback."""
    response = as_user("operator").post(ADD, form_data(auth_algorithm="RS256", auth_key=ec_pem()))
    assert "RS256 needs an RSA private key" in form_errors(response)["auth_key"][0]


def test_blank_secret_keeps_the_stored_value(as_user, make_integration):
    """security.md #29: saving the change form with the key left blank keeps the key."""
    integration = make_integration()
    response = as_user("operator").post(
        change_url(integration), form_data(auth_key="", name="Renamed")
    )
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.name == "Renamed"
    assert integration.get_secrets() == {"key": HMAC_SECRET}


def test_secret_typed_with_an_error_elsewhere_is_not_echoed(as_user):
    """security.md #29: a form re-rendered for another field's error never holds the secret."""
    response = as_user("operator").post(ADD, form_data(base_url="ftp://nope"))
    assert "base_url" in form_errors(response)
    assert CANARY not in response.content.decode()


def test_viewer_sees_set_or_not_set_only(as_user, make_integration):
    """security.md #29: a view-only user sees whether the secret is set, no fingerprint, no
    input, and no public key."""
    integration = make_integration(auth_config={"algorithm": "RS256"}, secrets={"key": rsa_pem()})
    html = as_user("viewer").get(change_url(integration)).content.decode()
    assert "Signing key: set" in html
    assert "SHA256:" not in html and "secret:" not in html and "BEGIN PUBLIC KEY" not in html
    assert 'name="auth_key"' not in html


def test_unreadable_secrets_ask_to_be_entered_again(as_user, make_integration):
    """security.md #9: stored secrets that cannot be decrypted are never dropped silently."""
    integration = make_integration()
    Integration.objects.filter(pk=integration.pk).update(encrypted_secrets="v9:garbage")
    response = as_user("operator").post(change_url(integration), form_data(auth_key=""))
    assert response.status_code == 200
    assert "cannot be decrypted" in response.content.decode()
    response = as_user("operator").post(change_url(integration), form_data())
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.get_secrets() == {"key": HMAC_SECRET}


def test_changing_the_auth_type_shows_the_new_fields_first(as_user, make_integration):
    """Without JavaScript: picking another type re-renders with that type's options at
    their defaults, without errors on fields not yet seen, and saves nothing; filling
    them in and saving again switches the type."""
    integration = make_integration()
    client = as_user("operator")
    response = client.post(
        change_url(integration), form_data(auth_type="jwt_grant", shown_type="jwt_bearer")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "fill in its options below and save again" in html
    assert 'name="auth_token_url"' in html and 'name="auth_header_name"' not in html
    form = response.context["adminform"].form
    assert list(form.errors) == ["__all__"] and len(form.errors["__all__"]) == 1
    assert form["shown_type"].value() == "jwt_grant" and form["auth_lifetime"].value() == "300"
    integration.refresh_from_db()
    assert integration.auth_type == "jwt_bearer"
    again = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    again.update(auth_token_url="https://idp.example.com/token", enabled="on")
    again.pop("follow_redirects", None)
    response = client.post(change_url(integration), again)
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.auth_type == "jwt_grant"
    assert integration.auth_config["token_url"] == "https://idp.example.com/token"
    assert integration.get_secrets() == {"key": HMAC_SECRET}


def test_switching_type_keeps_shared_secrets_and_drops_the_rest(as_user, make_integration):
    """A secret the new type also has (key) is kept when left blank; one it does not
    have is dropped, so no orphan secret lingers encrypted in the row."""
    integration = make_integration()
    client = as_user("operator")
    # The token URL is on the API's own server: the kept key goes nowhere new (see
    # test_credential_destinations for another server).
    grant = form_data(auth_type="jwt_grant", auth_key="", auth_token_url="http://127.0.0.1:9/token")
    for name in ["auth_header_name", "auth_scheme"]:
        grant.pop(name)
    assert client.post(change_url(integration), grant).status_code == 302
    integration.refresh_from_db()
    assert integration.auth_type == "jwt_grant"
    assert integration.get_secrets() == {"key": HMAC_SECRET}
    github = {
        **{k: v for k, v in grant.items() if not k.startswith("auth_")},
        "auth_type": "github_app",
        "shown_type": "github_app",
        "auth_app_id": "123",
        "auth_installation_id": "42",
        "auth_private_key": rsa_pem(),
        "auth_lifetime": "540",
    }
    response = client.post(change_url(integration), github)
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.get_secrets() == {"private_key": rsa_pem()}
    assert integration.auth_config == {"app_id": "123", "installation_id": "42", "lifetime": 540}
