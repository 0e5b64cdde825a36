"""Operators' flows in a real browser: create an integration of each main auth type by
filling the form, run its test call against a loopback API that verifies the token with
joserfc, and see the result and the logged row."""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import pytest
from playwright.sync_api import Page

from integrations.models import CallLog, Integration
from tests import jose
from tests.keys import HMAC_SECRET, ec_pem, public_pem, rsa_pem
from tests.loopback import LoopbackServer, Recorded, Reply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class VerifyingAPI:
    """A loopback API whose routes accept only tokens that verify with ``key``."""

    def __init__(self, server: LoopbackServer, algorithm: str) -> None:
        self.server = server
        self.algorithm = algorithm
        self.key = ""
        self.claims: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def verify(self, token: str) -> bool:
        try:
            _, claims = jose.verify(token, self.key, self.algorithm)
        except Exception:
            return False
        with self.lock:
            self.claims.append(claims)
        return True

    def bearer_route(self, method: str, path: str) -> None:
        self.server.route(
            method,
            path,
            lambda r: Reply(200, {"ok": True}) if self.verify(r.bearer) else Reply(401, {}),
        )


def choose_type(page: Page, auth_type: str, shot: Any = None) -> None:
    page.goto("/admin/integrations/integration/add/")
    if shot is not None:
        shot("choose-type")
    page.check(f"input[name=auth_type][value={auth_type}]")
    page.click("input[type=submit][value=Continue]")
    page.wait_for_selector("#integration_form")


def fill_common(page: Page, name: str, base_url: str, test_request: dict[str, Any]) -> None:
    page.fill("#id_name", name)
    page.fill("#id_base_url", base_url)
    page.fill("#id_test_request", json.dumps(test_request))


def save(page: Page) -> None:
    page.click("input[name=_save]")
    page.wait_for_load_state()


def run_test_call(page: Page) -> str:
    page.click("form.run-test button")
    page.wait_for_selector("ul.messagelist li")
    return page.inner_text("ul.messagelist")


def test_jwt_bearer_with_a_pasted_hmac_secret(admin_page, server):
    """Paste a shared secret, save, run the test call: the API verifies the HS256 token,
    the page reports ok and the call's row appears under Latest calls."""
    page, shot = admin_page
    api = VerifyingAPI(server, "HS256")
    api.key = HMAC_SECRET
    api.bearer_route("GET", "/api/health")
    choose_type(page, "jwt_bearer", shot)
    shot("add-form")
    fill_common(page, "Billing API", f"{server.url}/api/", {"method": "GET", "path": "health"})
    page.select_option("#id_auth_algorithm", "HS256")
    page.fill("#id_auth_key", HMAC_SECRET)
    page.fill("#id_auth_claims", '{"iss": "shop", "aud": "billing"}')
    save(page)
    assert "was added successfully" in page.inner_text("ul.messagelist")
    assert page.input_value("#id_auth_key") == ""
    assert "Signing key: set · secret:" in page.inner_text("body")
    shot("saved")
    message = run_test_call(page)
    shot("tested")
    assert "Billing API: ok, 200 in" in message
    assert api.claims[-1]["iss"] == "shop" and api.claims[-1]["aud"] == "billing"
    assert "/api/health" in page.inner_text("table.recent-calls")
    row = CallLog.objects.get()
    assert row.source == "admin" and row.ok and row.status_code == 200
    page.goto("/admin/integrations/integration/")
    assert "200 · " in page.inner_text("#result_list")
    shot("list")
    page.goto("/admin/integrations/calllog/")
    assert "/api/health" in page.inner_text("#result_list")
    shot("call-log")


def test_github_app_with_a_pasted_pem(admin_page, server):
    """GitHub App preset: paste the app's PEM; the exchange endpoint verifies the RS256
    JWT (iss = app id) and the installation token reaches the API."""
    page, shot = admin_page
    api = VerifyingAPI(server, "RS256")
    api.key = public_pem(rsa_pem())

    def access_tokens(request: Recorded) -> Reply:
        if not api.verify(request.bearer):
            return Reply(401, {"message": "A JSON web token could not be decoded"})
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return Reply(
            201,
            {"token": "ghs_installation", "expires_at": expires.isoformat().replace("+00:00", "Z")},
        )

    server.route("POST", "/app/installations/42/access_tokens", access_tokens)
    server.route(
        "GET",
        "/installation/repositories",
        lambda r: Reply(200 if r.bearer == "ghs_installation" else 401, {}),
    )
    choose_type(page, "github_app")
    fill_common(page, "GitHub", server.url, {"method": "GET", "path": "installation/repositories"})
    page.fill("#id_auth_app_id", "Iv1.abc123")
    page.fill("#id_auth_installation_id", "42")
    page.fill("#id_auth_private_key", rsa_pem())
    shot("filled")
    save(page)
    body = page.inner_text("body")
    assert "Private key: set · SHA256:" in body
    assert "BEGIN PUBLIC KEY" in body and rsa_pem().splitlines()[3] not in page.content()
    message = run_test_call(page)
    shot("tested")
    assert "GitHub: ok, 200 in" in message
    assert api.claims[-1]["iss"] == "Iv1.abc123"


def test_client_assertion_with_a_generated_key_pair(admin_page, server):
    """Generate an EC P-256 key pair in the form; the public key the page shows is what
    the token endpoint verifies the client assertion with."""
    page, shot = admin_page
    api = VerifyingAPI(server, "ES256")

    def token(request: Recorded) -> Reply:
        if not api.verify(request.form.get("client_assertion", "")):
            return Reply(400, {"error": "invalid_client"})
        return Reply(200, {"access_token": "at-123", "token_type": "Bearer", "expires_in": 3600})

    server.route("POST", "/oauth/token", token)
    server.route("GET", "/api/me", lambda r: Reply(200 if r.bearer == "at-123" else 401, {}))
    choose_type(page, "client_assertion")
    fill_common(page, "Salesforce", f"{server.url}/api/", {"method": "GET", "path": "me"})
    page.select_option("#id_auth_algorithm", "ES256")
    page.fill("#id_auth_client_id", "client-7")
    page.fill("#id_auth_token_url", f"{server.url}/oauth/token")
    page.select_option("#id_generate_key", "ec-p256")
    save(page)
    assert "Generated an EC P-256 key pair" in page.inner_text("ul.messagelist")
    shot("generated")
    api.key = page.inner_text("pre.public-pem")
    jwk = json.loads(page.inner_text("pre.public-jwk"))
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert "PRIVATE KEY" not in page.content()
    message = run_test_call(page)
    shot("tested")
    assert "Salesforce: ok, 200 in" in message
    assert api.claims[-1]["iss"] == api.claims[-1]["sub"] == "client-7"
    stored = Integration.objects.get(slug="salesforce").get_secrets()["key"]
    assert public_pem(stored).strip() == api.key.strip()


def test_wrong_key_shows_the_field_error(admin_page):
    """An EC key pasted for RS256 is refused next to the key field, saying why, and the
    pasted key is not echoed back."""
    page, shot = admin_page
    choose_type(page, "jwt_bearer")
    fill_common(page, "Wrong key", "https://api.example.com/", {"path": "health"})
    page.select_option("#id_auth_algorithm", "RS256")
    page.fill("#id_auth_key", ec_pem())
    save(page)
    shot("field-error")
    error = page.inner_text(".field-auth_key .errorlist")
    assert "RS256 needs an RSA private key; this is an EC key on secp256r1" in error
    assert page.input_value("#id_auth_key") == ""
    assert not Integration.objects.exists()


def test_preview_token(admin_page, make_integration):
    """Preview shows the header and claims the next token carries, no signature."""
    page, shot = admin_page
    integration = make_integration(
        auth_config={
            "algorithm": "HS256",
            "key_id": "k1",
            "claims": {"iss": "shop", "aud": "billing"},
        }
    )
    page.goto(f"/admin/integrations/integration/{integration.pk}/change/")
    page.click("a.previewlink")
    page.wait_for_selector("pre.token-claims")
    shot("preview")
    header = json.loads(page.inner_text("pre.token-header"))
    claims = json.loads(page.inner_text("pre.token-claims"))
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    assert claims["aud"] == "billing" and claims["exp"] > claims["iat"]
    assert "UTC (in " in page.inner_text("table.token-times")


def test_changing_auth_type_reloads_the_form_with_its_fields(admin_page, make_integration):
    """With JavaScript, picking another auth type shows that type's fields at once, and
    nothing is saved until the operator fills them in and saves."""
    page, shot = admin_page
    integration = make_integration()
    page.goto(f"/admin/integrations/integration/{integration.pk}/change/")
    assert page.locator("#id_auth_header_name").count() == 1
    with page.expect_navigation():
        page.select_option("#id_auth_type", "jwt_grant")
    shot("switched")
    assert page.locator("#id_auth_token_url").count() == 1
    assert page.locator("#id_auth_header_name").count() == 0
    assert "fill in its options below and save again" in page.inner_text("#content-main")
    # On the API's own server: the kept key goes nowhere new (security.md #29).
    page.fill("#id_auth_token_url", "http://127.0.0.1:9/token")
    save(page)
    integration.refresh_from_db()
    assert integration.auth_type == "jwt_grant"
    assert integration.auth_config["token_url"] == "http://127.0.0.1:9/token"
