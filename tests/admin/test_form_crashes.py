"""A form that cannot be checked is a field error, never a 500; and when a request does
crash, the error report (the DEBUG page, the mail to ADMINS) holds no posted secret."""

from __future__ import annotations

import json

import pytest
from django.views.debug import ExceptionReporter

from integrations.models import Integration
from integrations.tokens import PROVIDERS
from tests.admin.helpers import ADD, change_url, form_data, form_errors
from tests.keys import CANARY, HMAC_SECRET, rsa_pem

pytestmark = pytest.mark.django_db

TOO_DEEP = "is nested too deeply"


@pytest.fixture
def client(as_user):
    """A superuser whose requests end in a response even when the view crashes."""
    client = as_user("superuser")
    client.raise_request_exception = False
    return client


def error_reports(response) -> list[str]:
    """What Django would show on the DEBUG page and mail to ADMINS for this crash."""
    request, exc_info = response.wsgi_request, response.exc_info
    return [
        ExceptionReporter(request, *exc_info).get_traceback_html(),
        ExceptionReporter(request, *exc_info).get_traceback_text(),
        ExceptionReporter(request, *exc_info, is_email=True).get_traceback_text(),
    ]


@pytest.mark.parametrize("view", ["add", "change"])
def test_posted_secrets_are_hidden_from_error_reports(client, make_integration, monkeypatch, view):
    """security.md #29: a crash while saving reports the request without any posted
    value: the canary key typed into the form is not in the DEBUG page or the mail."""

    def crash(*args, **kwargs):
        raise RuntimeError("the database went away")

    url = ADD if view == "add" else change_url(make_integration())
    monkeypatch.setattr(Integration, "save", crash)
    response = client.post(url, form_data(slug="crashing"))
    assert response.status_code == 500
    for report in error_reports(response):
        assert "the database went away" in report
        assert CANARY not in report


DEEP = {"parsed": "[" * 40 + "]" * 40, "unparsable": "[" * 100_000 + "]" * 100_000}


@pytest.mark.parametrize("field", ["headers", "test_request", "auth_claims"])
@pytest.mark.parametrize("depth", sorted(DEEP))
def test_deeply_nested_json_is_a_field_error(client, field, depth):
    """security.md #29, #30: JSON nested past the parser's recursion limit (a
    RecursionError) or past what any option needs is refused on its field, and the
    re-rendered form neither crashes nor echoes the secret."""
    response = client.post(ADD, form_data(**{field: DEEP[depth]}))
    assert response.status_code == 200
    assert any(TOO_DEEP in message for message in form_errors(response)[field])
    assert CANARY not in response.content.decode()
    assert not Integration.objects.exists()


def box_form(private_key: object) -> dict[str, str]:
    config = {
        "boxAppSettings": {
            "clientID": "box-client",
            "clientSecret": CANARY,
            "appAuth": {"publicKeyID": "kid-1", "privateKey": private_key, "passphrase": ""},
        },
        "enterpriseID": "123",
    }
    data = form_data(
        "box",
        auth_box_config=json.dumps(config),
        auth_algorithm="RS256",
        auth_subject_type="enterprise",
        auth_lifetime="45",
    )
    for name in ["auth_key", "auth_key_id", "auth_claims", "auth_header_name", "auth_scheme"]:
        del data[name]
    return data


def test_box_key_file_with_a_number_for_its_key_is_a_form_error(client):
    """security.md #30: a Box config whose privateKey is not a string (AttributeError in
    the preset) is an error on the form naming nothing secret, not a 500."""
    response = client.post(ADD, box_form(12345))
    assert response.status_code == 200
    errors = form_errors(response)
    assert errors and CANARY not in str(errors)
    assert CANARY not in response.content.decode()
    assert client.post(ADD, box_form(rsa_pem())).status_code == 302


@pytest.mark.parametrize("view", ["add", "change"])
def test_any_crash_in_the_options_check_is_a_form_error(
    client, make_integration, monkeypatch, view
):
    """security.md #30: whatever an auth type's Options form raises, in the form's check
    or the model's (stored secrets included), is a generic form error and the change
    page still opens: never a 500, and never the exception's text, which may quote a
    secret."""
    url = ADD if view == "add" else change_url(make_integration())

    def crash(*args, **kwargs):
        raise ZeroDivisionError(CANARY)

    monkeypatch.setattr(PROVIDERS["jwt_bearer"].Options, "clean", crash)
    if view == "change":
        assert client.get(url).status_code == 200
    response = client.post(url, form_data(auth_key="" if view == "change" else HMAC_SECRET))
    assert response.status_code == 200
    messages = form_errors(response)["__all__"]
    assert any("could not be checked" in message for message in messages)
    assert CANARY not in response.content.decode()
