"""The integration admin: lists, auth-type forms, write-only secrets, key pairs, previews
and test calls, through Django's test client against loopback servers."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import CallLog, Integration
from integrations.tokens import PROVIDERS
from tests import jose
from tests.admin.helpers import form_data
from tests.keys import CANARY, HMAC_SECRET, ec_pem, public_pem, rsa_pem
from tests.loopback import Reply

pytestmark = pytest.mark.django_db

ADD = reverse("admin:integrations_integration_add")
LIST = reverse("admin:integrations_integration_changelist")


def change_url(integration: Integration) -> str:
    return reverse("admin:integrations_integration_change", args=[integration.pk])


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_errors(response: Any) -> dict[str, list[str]]:
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


# Lists ------------------------------------------------------------------------------


def seed(count: int) -> None:
    """``count`` integrations, each with two test calls (the newest failed)."""
    Integration.objects.bulk_create(
        Integration(
            slug=f"api-{n:04d}",
            name=f"API {n:04d}",
            base_url="http://127.0.0.1:9/",
            auth_config={"algorithm": "HS256"},
        )
        for n in range(count)
    )
    CallLog.objects.bulk_create(
        CallLog(
            integration=integration,
            source="admin",
            is_test=True,
            method="GET",
            url="http://127.0.0.1:9/",
            status_code=status_code,
            ok=ok,
            duration_ms=duration_ms,
        )
        for integration in Integration.objects.all()
        for status_code, ok, duration_ms in [(200, True, 5), (503, False, 7)]
    )


def changelist_queries(client: Any, count: int) -> int:
    Integration.objects.all().delete()
    seed(count)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == count
    return len(queries)


def test_changelist_query_count_is_constant(as_user):
    """No N+1: the list costs the same number of queries at 10 and 1,000 integrations."""
    client = as_user("operator")
    assert changelist_queries(client, 10) == changelist_queries(client, 1000)


def test_changelist_shows_last_test_result(as_user):
    """Each row shows its newest test call: ok/failed, status, latency."""
    seed(1)
    html = as_user("operator").get(LIST).content.decode()
    assert "503 · 7 ms" in html and 'alt="failed"' in html
    assert "200 · 5 ms" not in html


def test_changelist_filters_and_search(as_user, make_integration):
    """Filters by last test result and search by slug narrow the list."""
    seed(3)
    make_integration("never-tested")
    client = as_user("operator")
    assert client.get(LIST, {"last_test": "never"}).context["cl"].result_count == 1
    assert client.get(LIST, {"last_test": "failed"}).context["cl"].result_count == 3
    assert client.get(LIST, {"q": "api-0001"}).context["cl"].result_count == 1
    assert client.get(LIST, {"auth_type": "jwt_bearer"}).context["cl"].result_count == 4


# Forms ------------------------------------------------------------------------------


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


def test_add_stores_secret_encrypted_and_options_plain(as_user):
    """SECURITY 29: the key lands encrypted, never among plain options; the new
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
    """SECURITY 2: a short HS256 secret is refused on the key field with the rule."""
    response = as_user("operator").post(ADD, form_data(auth_key="0123456789"))
    assert response.status_code == 200
    assert form_errors(response)["auth_key"] == [
        "HS256 needs a secret of at least 32 bytes; this one has 10"
    ]
    assert not Integration.objects.exists()


def test_wrong_key_type_is_a_field_error(as_user):
    """SECURITY 3: an EC key with RS256 is refused on the key field, without a traceback."""
    response = as_user("operator").post(ADD, form_data(auth_algorithm="RS256", auth_key=ec_pem()))
    assert "RS256 needs an RSA private key" in form_errors(response)["auth_key"][0]


def test_blank_secret_keeps_the_stored_value(as_user, make_integration):
    """SECURITY 29: saving the change form with the key left blank keeps the key."""
    integration = make_integration()
    response = as_user("operator").post(
        change_url(integration), form_data(auth_key="", name="Renamed")
    )
    assert response.status_code == 302, form_errors(response)
    integration.refresh_from_db()
    assert integration.name == "Renamed"
    assert integration.get_secrets() == {"key": HMAC_SECRET}


def test_secret_typed_with_an_error_elsewhere_is_not_echoed(as_user):
    """SECURITY 29: a form re-rendered for another field's error never holds the secret."""
    response = as_user("operator").post(ADD, form_data(base_url="ftp://nope"))
    assert "base_url" in form_errors(response)
    assert CANARY not in response.content.decode()


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


def test_unreadable_secrets_ask_to_be_entered_again(as_user, make_integration):
    """SECURITY 9: stored secrets that cannot be decrypted are never dropped silently."""
    integration = make_integration()
    Integration.objects.filter(pk=integration.pk).update(encrypted_secrets="v9:garbage")
    response = as_user("operator").post(change_url(integration), form_data(auth_key=""))
    assert response.status_code == 200
    assert "cannot be decrypted" in response.content.decode()
    response = as_user("operator").post(change_url(integration), form_data())
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.get_secrets() == {"key": HMAC_SECRET}


# Key pairs, public keys and previews ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("rsa-2048", "PS256"), ("ec-p256", "ES256"), ("ec-p384", "ES384"), ("ed25519", "EdDSA")],
)
def test_generated_key_pair_is_stored_and_its_public_key_shown(as_user, server, kind, algorithm):
    """The private key is stored encrypted and never shown; the page shows the public
    PEM and JWK; a test call's token verifies with that public PEM (joserfc)."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"ok": True}))
    client = as_user("operator")
    response = client.post(
        ADD,
        form_data(
            base_url=f"{server.url}/api/", auth_algorithm=algorithm, auth_key="", generate_key=kind
        ),
        follow=True,
    )
    assert response.status_code == 200, form_errors(response)
    integration = Integration.objects.get(slug="billing")
    private = integration.get_secrets()["key"]
    html = response.content.decode()
    public = public_pem(private)
    assert public.strip() in html
    assert "&quot;kty&quot;" in html and "Thumbprint" in html
    assert private.splitlines()[1] not in html
    assert any("key pair" in m for m in texts(response))
    client.post(reverse("admin:integrations_integration_test", args=[integration.pk]))
    header, claims = jose.verify(server.requests[-1].bearer, public, algorithm)
    assert header["alg"] == algorithm and claims["iss"] == "shop"


def test_generated_key_must_suit_the_algorithm(as_user):
    """A key type that cannot sign the chosen algorithm is refused, saying which would."""
    response = as_user("operator").post(
        ADD, form_data(auth_algorithm="RS256", auth_key="", generate_key="ec-p256")
    )
    assert form_errors(response)["generate_key"] == [
        "An EC P-256 key signs ES256, not RS256: "
        "choose one of those algorithms or another key type."
    ]


def test_pasted_private_key_shows_its_public_key(as_user, make_integration):
    """A pasted PEM is summarised by its public key's SHA-256 and public PEM/JWK."""
    integration = make_integration(
        auth_config={"algorithm": "RS256", "key_id": "k1"}, secrets={"key": rsa_pem()}
    )
    html = as_user("operator").get(change_url(integration)).content.decode()
    assert "Signing key: set · SHA256:" in html
    assert public_pem(rsa_pem()).strip() in html and "&quot;kid&quot;: &quot;k1&quot;" in html
    assert rsa_pem().splitlines()[1] not in html


def test_preview_shows_header_and_claims_without_secret(as_user, make_integration):
    """Preview: decoded header and claims of the next token, no signature or secret."""
    integration = make_integration(
        auth_config={
            "algorithm": "HS256",
            "key_id": "k9",
            "claims": {"iss": "shop", "aud": "billing"},
        }
    )
    response = as_user("viewer").get(
        reverse("admin:integrations_integration_preview", args=[integration.pk])
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "&quot;alg&quot;: &quot;HS256&quot;" in html and "&quot;kid&quot;: &quot;k9&quot;" in html
    )
    assert "&quot;aud&quot;: &quot;billing&quot;" in html and "&quot;exp&quot;" in html
    assert CANARY not in html and "eyJ" not in html


# Test calls ---------------------------------------------------------------------------


def test_run_test_button_calls_and_logs(as_user, server, make_integration):
    """The change page's button fires the test request with a valid JWT, logs it with
    source admin and reports status and latency."""
    server.route("GET", "/api/health", lambda r: Reply(200, {"ok": True}))
    integration = make_integration(base_url=f"{server.url}/api/", test_request={"path": "health"})
    client = as_user("operator")
    assert "Run test call" in client.get(change_url(integration)).content.decode()
    response = client.post(
        reverse("admin:integrations_integration_test", args=[integration.pk]), follow=True
    )
    assert response.redirect_chain[-1][0] == change_url(integration)
    [message] = texts(response)
    assert message.startswith("Billing: ok, 200 in ") and message.endswith(" ms")
    jose.verify(server.requests[-1].bearer, HMAC_SECRET, "HS256")
    row = CallLog.objects.get()
    assert row.source == "admin" and row.ok and row.is_test
    assert "/api/health" in response.content.decode()


def test_failed_test_call_reports_the_error(as_user, server, make_integration):
    """A refused call is an error message with the status, not a success."""
    server.route("GET", "/api/health", lambda r: Reply(500, {}))
    integration = make_integration(base_url=f"{server.url}/api/", test_request={"path": "health"})
    response = as_user("operator").post(
        reverse("admin:integrations_integration_test", args=[integration.pk]), follow=True
    )
    [message] = texts(response)
    assert message.startswith("Billing: failed (500, ") and "unexpected status 500" in message


def test_run_test_view_refuses_get(as_user, make_integration):
    """A test call is a POST (CSRF-protected), never a link a page could embed."""
    integration = make_integration()
    assert (
        as_user("operator")
        .get(reverse("admin:integrations_integration_test", args=[integration.pk]))
        .status_code
        == 405
    )


def test_bulk_action_reports_each_integration(as_user, server, make_integration):
    """The list action fires each selected test call and reports one message each."""
    server.route("GET", "/api/ok", lambda r: Reply(200, {}))
    a = make_integration("alpha", base_url=f"{server.url}/api/", test_request={"path": "ok"})
    b = make_integration("beta", base_url=f"{server.url}/api/", test_request={"path": "missing"})
    response = as_user("operator").post(
        LIST, {"action": "run_test_calls", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    messages = texts(response)
    assert len(messages) == 2
    assert messages[0].startswith("Alpha: ok, 200") and messages[1].startswith("Beta: failed (404")
    assert CallLog.objects.filter(source="admin").count() == 2


def test_bulk_action_over_many_goes_through_tasks(as_user, server, make_integration):
    """More than five selected run as background tasks (immediate backend here), still
    logged with source admin and reported one by one."""
    server.route("GET", "/api/ok", lambda r: Reply(200, {}))
    ids = [
        make_integration(f"api-{n}", base_url=f"{server.url}/api/", test_request={"path": "ok"}).pk
        for n in range(6)
    ]
    response = as_user("operator").post(
        LIST, {"action": "run_test_calls", "_selected_action": ids}, follow=True
    )
    assert len(server.requests) == 6
    assert CallLog.objects.filter(source="admin").count() == 6
    assert sum("ok, 200" in m for m in texts(response)) == 6


@pytest.mark.parametrize("user", ["editor", "viewer"])
def test_without_permission_no_action_no_button_and_forged_posts_call_nothing(
    as_user, server, make_integration, user
):
    """SECURITY 28: staff without run_test_call see neither the action nor the button,
    and forged POSTs to both make zero outbound requests."""
    server.route("GET", "/api/health", lambda r: Reply(200, {}))
    integration = make_integration(base_url=f"{server.url}/api/", test_request={"path": "health"})
    client = as_user(user)
    assert "run_test_calls" not in client.get(LIST).content.decode()
    assert "Run test call" not in client.get(change_url(integration)).content.decode()
    client.post(LIST, {"action": "run_test_calls", "_selected_action": [integration.pk]})
    forged = client.post(reverse("admin:integrations_integration_test", args=[integration.pk]))
    assert forged.status_code == 403
    assert server.requests == []
    assert not CallLog.objects.exists()


@pytest.mark.parametrize("user", ["superuser", "operator"])
def test_with_permission_action_and_button_are_offered(as_user, make_integration, user):
    """SECURITY 28: superusers and staff holding run_test_call get the action and button."""
    integration = make_integration()
    client = as_user(user)
    assert "run_test_calls" in client.get(LIST).content.decode()
    assert "Run test call" in client.get(change_url(integration)).content.decode()


def test_viewer_sees_set_or_not_set_only(as_user, make_integration):
    """SECURITY 29: a view-only user sees whether the secret is set, no fingerprint, no
    input, and no public key."""
    integration = make_integration(auth_config={"algorithm": "RS256"}, secrets={"key": rsa_pem()})
    html = as_user("viewer").get(change_url(integration)).content.decode()
    assert "Signing key: set" in html
    assert "SHA256:" not in html and "secret:" not in html and "BEGIN PUBLIC KEY" not in html
    assert 'name="auth_key"' not in html


def test_editor_without_add_permission_cannot_add(as_user):
    """The auth-type chooser is behind the add permission too."""
    assert as_user("viewer").get(ADD).status_code == 403


def test_deleting_an_integration_takes_its_call_logs(as_user, make_integration):
    """The confirmation counts the call logs instead of listing them, and deleting is not
    blocked by the call log admin being read-only."""
    integration = make_integration()
    for _ in range(3):
        CallLog.objects.create(integration=integration, source="api", method="GET", url="u")
    delete = reverse("admin:integrations_integration_delete", args=[integration.pk])
    client = as_user("superuser")
    page = client.get(delete).content.decode()
    assert "3 call logs" in page and "permission to delete" not in page
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Integration.objects.exists() and not CallLog.objects.exists()


def test_bulk_delete_counts_call_logs(as_user, make_integration):
    """The delete_selected action confirms with per-model counts and then deletes."""
    ids = [make_integration(f"api-{n}").pk for n in range(2)]
    CallLog.objects.create(integration_id=ids[0], source="api", method="GET", url="u")
    client = as_user("superuser")
    page = client.post(
        LIST, {"action": "delete_selected", "_selected_action": ids}
    ).content.decode()
    assert "1 call logs" in page or "Call logs: 1" in page
    client.post(LIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert not Integration.objects.exists()


def test_switching_type_keeps_shared_secrets_and_drops_the_rest(as_user, make_integration):
    """A secret the new type also has (key) is kept when left blank; one it does not
    have is dropped, so no orphan secret lingers encrypted in the row."""
    integration = make_integration()
    client = as_user("operator")
    grant = form_data(
        auth_type="jwt_grant", auth_key="", auth_token_url="https://idp.example.com/token"
    )
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


@pytest.mark.parametrize("view", ["test", "preview"])
def test_unknown_integration_is_a_404(as_user, view):
    """A stale or malformed id in the URL is a 404, not a server error."""
    client = as_user("operator")
    for object_id in ["999", "not-a-number"]:
        url = reverse(f"admin:integrations_integration_{view}", args=[object_id])
        response = client.post(url) if view == "test" else client.get(url)
        assert response.status_code == 404
