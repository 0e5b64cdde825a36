"""A configuration-file import that would send a kept secret somewhere new is refused
(security.md #30, issue 15 finding 2, the import side).

Whoever may run an import but never sees the stored key could otherwise leave the
secret null (kept) and point base_url, token_url, exchange_url, issuer or any other
destination option at a server of their own. The import shares the admin's rule
(``destinations.credential_destination_errors``): the change needs the secret again.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from integrations.configfile import import_config
from integrations.destinations import destination_options
from integrations.exceptions import InvalidConfiguration
from integrations.models import Integration
from integrations.tokens import PROVIDERS
from tests.keys import HMAC_SECRET, rsa_pem
from tests.tokens.test_presets_grant import box_config

pytestmark = pytest.mark.django_db

ELSEWHERE = "https://attacker.example.net"
ASK_AGAIN = "to another server: enter it again"
IDP = "https://idp.example.com"

# auth type -> (options, the secret's field, its value): a valid, kept configuration.
FLOWS: dict[str, tuple[dict[str, Any], str, Any]] = {
    "jwt_bearer": ({"algorithm": "HS256", "claims": {}}, "key", HMAC_SECRET),
    "jwt_grant": (
        {"algorithm": "HS256", "claims": {}, "token_url": f"{IDP}/token"},
        "key",
        HMAC_SECRET,
    ),
    "client_assertion": (
        {"algorithm": "HS256", "client_id": "c", "token_url": f"{IDP}/token"},
        "key",
        HMAC_SECRET,
    ),
    "jwt_exchange": (
        {"algorithm": "HS256", "claims": {}, "exchange_url": f"{IDP}/exchange"},
        "key",
        HMAC_SECRET,
    ),
    "salesforce": ({"consumer_key": "c", "username": "u"}, "private_key", rsa_pem),
    "docusign": ({"integration_key": "ik", "user_id": str(uuid.uuid4())}, "private_key", rsa_pem),
    "box": ({}, "box_config", box_config),
}

# Every (auth type, field) a kept secret can be sent through: base_url and each option
# the auth type declares a destination (token_url, exchange_url, issuer, login_url...).
MOVES = [("jwt_bearer", "base_url"), ("jwt_grant", "base_url")] + [
    (name, f"auth.{option}") for name in FLOWS for option in destination_options(PROVIDERS[name])
]


def entry(auth_type: str, *, secret: bool = True, **changes: Any) -> dict[str, Any]:
    """An entry of ``auth_type``; ``secret=False`` leaves the secret null (kept);
    ``changes`` keyed ``base_url`` or ``auth.<option>``."""
    options, field, value = FLOWS[auth_type]
    auth: dict[str, Any] = {"type": auth_type, **options}
    auth[field] = (value() if callable(value) else value) if secret else None
    data: dict[str, Any] = {"slug": "billing", "base_url": "https://api.example.com/v1/"}
    for name, new in changes.items():
        if name.startswith("auth."):
            auth[name.removeprefix("auth.")] = new
        else:
            data[name] = new
    data["auth"] = auth
    return data


def load(*entries: dict[str, Any], base_dir: Path) -> None:
    import_config({"integrations": list(entries)}, base_dir=base_dir)


def stored_state() -> list[tuple[Any, ...]]:
    return list(
        Integration.objects.order_by("slug").values_list(
            "slug", "base_url", "auth_type", "auth_config", "encrypted_secrets"
        )
    )


def test_every_auth_type_that_sends_a_kept_secret_is_covered() -> None:
    """Every auth type with a secret and a destination option has a configuration in
    FLOWS, so each of its destination options is tried below (a new preset or option
    is covered or fails here)."""
    uncovered = {
        name
        for name, cls in PROVIDERS.items()
        if cls.secret_fields and destination_options(cls) and name not in FLOWS
    }
    assert uncovered == set()
    assert ("jwt_grant", "auth.token_url") in MOVES and ("box", "auth.token_url") in MOVES


@pytest.mark.parametrize(("auth_type", "field"), MOVES)
def test_a_new_destination_with_the_secret_kept_is_refused(
    tmp_path: Path, auth_type: str, field: str
) -> None:
    """security.md #30: the import names the entry and the field and changes nothing,
    not even the entries before it."""
    load(entry(auth_type), entry("jwt_bearer") | {"slug": "crm"}, base_dir=tmp_path)
    before = stored_state()
    moved = entry(auth_type, secret=False, **{field: f"{ELSEWHERE}/{field}"})
    other = entry("jwt_bearer", secret=False) | {"slug": "crm", "name": "CRM renamed"}
    with pytest.raises(InvalidConfiguration, match=ASK_AGAIN) as caught:
        load(other, moved, base_dir=tmp_path)
    assert (caught.value.entry, caught.value.field) == ("billing", field)
    assert str(caught.value).startswith(f"billing: {field}: ")
    assert stored_state() == before
    assert Integration.objects.get(slug="crm").name != "CRM renamed"


def test_an_entry_without_auth_cannot_move_the_base_url(tmp_path: Path) -> None:
    """security.md #30: leaving ``auth`` out keeps every secret, so a new base_url alone
    is refused too."""
    load(entry("jwt_bearer"), base_dir=tmp_path)
    moved = entry("jwt_bearer", base_url=ELSEWHERE + "/")
    del moved["auth"]
    with pytest.raises(InvalidConfiguration, match=ASK_AGAIN) as caught:
        load(moved, base_dir=tmp_path)
    assert caught.value.field == "base_url"


@pytest.mark.parametrize(
    ("auth_type", "field"), [move for move in MOVES if move[1] != "auth.issuer"]
)
def test_giving_the_secret_again_allows_the_move(
    tmp_path: Path, auth_type: str, field: str
) -> None:
    """With the secret in the file the move is the file author's own: imported (a new
    issuer would have its metadata read, tested with the discovery emulator)."""
    load(entry(auth_type), base_dir=tmp_path)
    load(entry(auth_type, **{field: f"{ELSEWHERE}/{field}"}), base_dir=tmp_path)
    integration = Integration.objects.get(slug="billing")
    where = integration.base_url if field == "base_url" else integration.auth_config
    assert ELSEWHERE in str(where)


def test_same_server_changes_keep_the_secret(tmp_path: Path) -> None:
    """A new path on the same origin, or a token URL on a server the key already
    reaches (the API's own host), is no new destination: the null secret is kept."""
    load(entry("jwt_grant"), base_dir=tmp_path)
    load(
        entry(
            "jwt_grant",
            secret=False,
            base_url="https://api.example.com/v2/",
            **{"auth.token_url": "https://api.example.com/oauth/token"},
        ),
        base_dir=tmp_path,
    )
    integration = Integration.objects.get(slug="billing")
    assert integration.base_url == "https://api.example.com/v2/"
    assert integration.auth_config["token_url"] == "https://api.example.com/oauth/token"
    assert integration.get_secrets() == {"key": HMAC_SECRET}


def test_a_new_auth_type_keeps_no_secret_to_send(tmp_path: Path) -> None:
    """A type change drops the stored secrets (the import starts that type from none),
    so nothing kept can reach the new exchange URL: the import asks for the key as a
    missing secret, never sends the old one."""
    load(entry("jwt_bearer"), base_dir=tmp_path)
    changed = entry("jwt_exchange", secret=False, **{"auth.exchange_url": ELSEWHERE + "/x"})
    with pytest.raises(InvalidConfiguration) as caught:
        load(changed, base_dir=tmp_path)
    assert caught.value.entry == "billing"
    assert Integration.objects.get(slug="billing").auth_type == "jwt_bearer"
