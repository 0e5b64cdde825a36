"""The presets over jwt_bearer (App Store Connect, Snowflake, Atlassian Connect)
against loopback emulators of their providers' published rules (PROVIDERS.md): the
preset's token is accepted, the same flow with a rule broken is refused, and the preset
refuses that configuration on save."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations import services
from integrations.tokens.presets.atlassian_connect import query_string_hash
from tests.keys import HMAC_SECRET, ec_pem, public_pem, rsa_pem
from tests.tokens.emulators import (
    BearerAPI,
    PresetCase,
    claims_within,
    expect,
    generic_bearer,
    refused_on_save,
)

pytestmark = pytest.mark.django_db

# App Store Connect -------------------------------------------------------------------


def app_store_emulator(server):
    return BearerAPI(
        server,
        algorithm="ES256",
        path="/v1/apps",
        rules=[
            claims_within(1200),
            expect(
                header_kid="2X9R4HXF34",
                header_typ="JWT",
                iss="69a6de70-03db",
                aud="appstoreconnect-v1",
            ),
        ],
    )


def test_app_store_connect_token_is_accepted(server, make_integration):
    """App Store Connect: ES256 on P-256, kid = key ID, typ JWT, iss = issuer ID, aud
    appstoreconnect-v1, exp ≤ 20 min."""
    api = app_store_emulator(server)
    make_integration(
        base_url=server.url,
        auth_type="app_store_connect",
        auth_config={"issuer_id": "69a6de70-03db", "key_id": "2X9R4HXF34"},
        secrets={"private_key": ec_pem()},
    )
    assert services.request("billing", "GET", "/v1/apps").status_code == 200
    assert len(api.accepted) == 1


def test_app_store_emulator_refuses_a_token_over_20_minutes(server, make_integration):
    """Negative: the same token with exp 30 min ahead is refused (401)."""
    app_store_emulator(server)
    generic_bearer(
        make_integration,
        server,
        "ES256",
        key_id="2X9R4HXF34",
        claims={"iss": "69a6de70-03db", "aud": "appstoreconnect-v1"},
        lifetime=1800,
    )
    response = services.request("billing", "GET", "/v1/apps")
    assert response.status_code == 401 and "too far" in response.text


# Snowflake -------------------------------------------------------------------------


def fingerprint() -> str:
    der = serialization.load_pem_public_key(public_pem(rsa_pem()).encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def snowflake_emulator(server):
    def keypair_header(header, claims, request):
        if request.headers.get("X-Snowflake-Authorization-Token-Type") != "KEYPAIR_JWT":
            return "X-Snowflake-Authorization-Token-Type must be KEYPAIR_JWT"
        return None

    return BearerAPI(
        server,
        algorithm="RS256",
        method="POST",
        path="/api/v2/statements",
        rules=[
            claims_within(3600, from_iat=True),
            expect(iss=f"XY12345.ETL_USER.{fingerprint()}", sub="XY12345.ETL_USER"),
            keypair_header,
        ],
    )


def test_snowflake_key_pair_jwt(server, make_integration):
    """Snowflake: iss = ACCOUNT.USER.SHA256:<base64 public key fingerprint>, upper case,
    the locator's region dropped; sub = ACCOUNT.USER; KEYPAIR_JWT header; ≤ 1 h."""
    api = snowflake_emulator(server)
    make_integration(
        base_url=server.url,
        auth_type="snowflake",
        auth_config={"account": "xy12345.us-east-2.aws", "user": "etl_user"},
        secrets={"private_key": rsa_pem()},
    )
    assert services.request("billing", "POST", "/api/v2/statements", json={}).status_code == 200
    assert len(api.accepted) == 1


def test_snowflake_emulator_refuses_iss_without_fingerprint(server, make_integration):
    """Negative: a bearer JWT with iss lacking the key fingerprint is refused."""
    snowflake_emulator(server)
    generic_bearer(
        make_integration,
        server,
        "RS256",
        claims={"iss": "XY12345.ETL_USER", "sub": "XY12345.ETL_USER"},
        headers={"X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT"},
    )
    assert services.request("billing", "POST", "/api/v2/statements").status_code == 401


# Atlassian Connect -----------------------------------------------------------------


def percent(text: str) -> str:
    """RFC 3986 percent-encoding written out, independent of the app's."""
    unreserved = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return "".join(chr(b) if b in unreserved else f"%{b:02X}" for b in text.encode())


def reference_qsh(method: str, path: str, query: dict[str, list[str]], context: str) -> str:
    path = path[len(context) :] if context and path.startswith(context) else path
    path = (path.rstrip("/") or "/").replace("&", "%26")
    pairs = sorted(
        (percent(k), ",".join(sorted(percent(v) for v in vs)))
        for k, vs in query.items()
        if k != "jwt"
    )
    canonical = f"{method}&{path}&" + "&".join(f"{k}={v}" for k, v in pairs)
    return hashlib.sha256(canonical.encode()).hexdigest()


def atlassian_emulator(server, path, context=""):
    def qsh(header, claims, request):
        wanted = reference_qsh(request.method, request.path, request.query, context)
        return None if claims.get("qsh") == wanted else "qsh does not match the request"

    return BearerAPI(
        server,
        algorithm="HS256",
        path=path,
        scheme="JWT",
        rules=[claims_within(180), expect(iss="com.example.app"), qsh],
    )


def test_atlassian_connect_signs_each_request_with_its_qsh(server, make_integration):
    """Atlassian Connect: HS256 with the shared secret, iss = app key, qsh = SHA-256 of
    METHOD&path&sorted-query relative to the product base URL (/wiki dropped), sent as
    `Authorization: JWT`; a new token per request."""
    api = atlassian_emulator(server, "/wiki/rest/api/content", context="/wiki")
    make_integration(
        base_url=f"{server.url}/wiki",
        auth_type="atlassian_connect",
        auth_config={"app_key": "com.example.app"},
        secrets={"shared_secret": HMAC_SECRET},
    )
    paths = [
        "/rest/api/content?spaceKey=DEV&expand=body.storage,version&title=Q3 plan",
        "/rest/api/content?b=2&a=x~y&a=1",
        "/rest/api/content",
    ]
    for path in paths:
        assert services.request("billing", "GET", path).status_code == 200
    assert len(api.accepted) == 3
    sent = {r.headers["Authorization"] for r in server.requests}
    assert len(sent) == 3


def test_atlassian_emulator_refuses_a_token_for_another_request(server, make_integration):
    """Negative: a JWT scheme token without a matching qsh (a cached one) is refused."""
    atlassian_emulator(server, "/rest/api/3/myself")
    make_integration(
        base_url=server.url,
        auth_config={
            "algorithm": "HS256",
            "claims": {"iss": "com.example.app", "qsh": "0" * 64},
            "scheme": "JWT",
        },
    )
    assert services.request("billing", "GET", "/rest/api/3/myself").status_code == 401


query_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(
    params=st.lists(st.tuples(query_text.filter(bool), query_text), max_size=5),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    path=st.sampled_from(["/rest/api/3/search", "/wiki/rest/api/content/", "/", "/a&b"]),
)
def test_qsh_matches_an_independent_canonicalisation(params, method, path):
    """Atlassian qsh for any query (spaces, unicode, repeated keys, `,` `&` `=` `~` in
    values) equals a percent-encoding written out by hand; `jwt` is never covered."""
    url = (
        requests.Request(method, f"https://site.example{path}", params=params + [("jwt", "x")])
        .prepare()
        .url
    )
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    expected = reference_qsh(method, urlsplit(url).path, query, context="/wiki")
    assert query_string_hash(method, url, "https://site.example/wiki") == expected


APP_STORE = PresetCase(
    "app_store_connect", {"issuer_id": "i", "key_id": "K1"}, {"private_key": ec_pem()}
)
SNOWFLAKE = PresetCase("snowflake", {"account": "a", "user": "u"}, {"private_key": rsa_pem()})
ATLASSIAN = PresetCase("atlassian_connect", {"app_key": "a"}, {"shared_secret": HMAC_SECRET})


@pytest.mark.parametrize(
    "auth_type,config,secrets,message",
    [
        APP_STORE.broken("app-store-over-20-minutes", "at most 1200", lifetime=1300),
        APP_STORE.broken(
            "app-store-rsa-key", "needs an EC private key", secrets={"private_key": rsa_pem()}
        ),
        APP_STORE.broken(
            "app-store-p384-key", "secp256r1", secrets={"private_key": ec_pem("P-384")}
        ),
        SNOWFLAKE.broken("snowflake-hour-plus-backdating", "at most 3600", lifetime=3600),
        ATLASSIAN.broken("atlassian-over-3-minutes", "at most 180", lifetime=600),
    ],
)
def test_bearer_presets_refuse_broken_rules_on_save(
    make_integration, auth_type, config, secrets, message
):
    """security.md #2-3, #30: App Store Connect refuses over 20 minutes, an RSA or a
    P-384 key; Snowflake refuses an hour plus the iat backdating (its cap counts from
    iat); Atlassian Connect refuses tokens over 3 minutes."""
    refused_on_save(make_integration, auth_type, config, secrets, message)
