"""Box, Snowflake, Atlassian Connect, Salesforce and DocuSign presets against loopback
emulators of their published rules (PROVIDERS.md), with a broken rule refused and the
preset refusing that configuration on save."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations import services
from integrations.exceptions import TokenEndpointError
from tests.keys import HMAC_SECRET, public_pem, rsa_pem
from tests.tokens.emulators import AuthServer, BearerAPI, claims_within, expect

pytestmark = pytest.mark.django_db

BOX_AUD = "https://api.box.com/oauth2/token"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def generic_grant(make_integration, auth, claims, **options):
    """The generic jwt_grant with the test RSA key, trading at ``auth``: how the negative
    tests send what a preset would, with one of its provider's rules broken."""
    return make_integration(
        base_url=f"{auth.server.url}/api/",
        auth_type="jwt_grant",
        auth_config={"algorithm": "RS256", "claims": claims, "token_url": auth.url, **options},
        secrets={"key": rsa_pem()},
    )


# Box -------------------------------------------------------------------------------


def box_config(passphrase: str = "correct horse", **changes) -> str:
    key = serialization.load_pem_private_key(rsa_pem().encode(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    ).decode()
    return json.dumps(
        {
            "boxAppSettings": {
                "clientID": "box-client",
                "clientSecret": "box-client-secret-" + "x" * 16,
                "appAuth": {
                    "publicKeyID": "pk1",
                    "privateKey": encrypted,
                    "passphrase": passphrase,
                },
            },
            "enterpriseID": "900",
            **changes,
        }
    )


def box_jti(header, claims, request):
    jti = claims.get("jti")
    return (
        None if isinstance(jti, str) and 16 <= len(jti) <= 128 else "jti must be 16-128 characters"
    )


def box_emulator(server):
    return AuthServer(
        server,
        verify_key=public_pem(rsa_pem()),
        algorithm="RS256",
        rules=[
            claims_within(60),
            expect(
                header_kid="pk1",
                iss="box-client",
                sub="900",
                box_sub_type="enterprise",
                aud=BOX_AUD,
            ),
            box_jti,
        ],
        form=lambda r: (
            None
            if r.form.get("grant_type") == GRANT
            and r.form.get("client_id") == "box-client"
            and r.form.get("client_secret", "").startswith("box-client-secret-")
            else "client_id and client_secret required"
        ),
    )


def test_box_grant_from_the_pasted_config(server, make_integration):
    """Box: the passphrase-encrypted key from the app's JSON config signs RS256 with kid
    = public key ID, iss = client ID, sub = enterprise ID, box_sub_type, aud Box's token
    URL, a 16-128 char jti and exp ≤ 60 s; client_id/secret ride along."""
    auth = box_emulator(server)
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="box",
        auth_config={"token_url": auth.url},
        secrets={"box_config": box_config()},
    )
    assert services.request("billing", "GET", "resource").status_code == 200
    assert auth.mints == 1


@pytest.mark.parametrize(
    "options,reason",
    [
        ({"lifetime": 120, "claims": {"jti": True}}, "too far in the future"),
        ({"lifetime": 50}, "jti must be"),
    ],
)
def test_box_emulator_refuses_broken_rules(server, make_integration, options, reason):
    """Negative: exp 2 minutes ahead, or no jti, is refused as Box would."""
    auth = box_emulator(server)
    claims = {"iss": "box-client", "sub": "900", "box_sub_type": "enterprise", "aud": BOX_AUD}
    claims.update(options.pop("claims", {}))
    generic_grant(make_integration, auth, claims, key_id="pk1", **options)
    auth.form_rule = None
    with pytest.raises(TokenEndpointError, match=reason):
        services.request("billing", "GET", "resource")


@pytest.mark.parametrize(
    "secret,config,message",
    [
        (box_config(), {"lifetime": 90}, "at most 60"),
        (box_config(passphrase="wrong"), {}, "does not decrypt"),
        ("{}", {}, "has no boxAppSettings"),
        (box_config(enterpriseID=None), {}, "no enterpriseID"),
    ],
)
def test_box_rules_are_enforced_on_save(make_integration, secret, config, message):
    """A lifetime over 60 s, a wrong passphrase, a foreign JSON or no subject is refused
    on save; the message quotes no part of the config."""
    with pytest.raises(ValidationError, match=message) as caught:
        make_integration(auth_type="box", auth_config=config, secrets={"box_config": secret})
    assert "box-client-secret" not in str(caught.value) and "correct horse" not in str(caught.value)


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
        verify_key=public_pem(rsa_pem()),
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
    make_integration(
        base_url=server.url,
        auth_config={
            "algorithm": "RS256",
            "claims": {"iss": "XY12345.ETL_USER", "sub": "XY12345.ETL_USER"},
        },
        secrets={"key": rsa_pem()},
        headers={"X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT"},
    )
    assert services.request("billing", "POST", "/api/v2/statements").status_code == 401


def test_snowflake_lifetime_is_capped_from_iat(make_integration):
    """An hour plus the iat backdating exceeds Snowflake's hour: refused on save."""
    with pytest.raises(ValidationError, match="at most 3600"):
        make_integration(
            auth_type="snowflake",
            auth_config={"account": "a", "user": "u", "lifetime": 3600},
            secrets={"private_key": rsa_pem()},
        )


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
        verify_key=HMAC_SECRET.encode(),
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


def test_atlassian_connect_lifetime_cap(make_integration):
    """Tokens over 3 minutes are refused on save."""
    with pytest.raises(ValidationError, match="at most 180"):
        make_integration(
            auth_type="atlassian_connect",
            auth_config={"app_key": "a", "lifetime": 600},
            secrets={"shared_secret": HMAC_SECRET},
        )


# Salesforce ------------------------------------------------------------------------


def salesforce_emulator(server):
    auth = AuthServer(
        server,
        verify_key=public_pem(rsa_pem()),
        algorithm="RS256",
        path="/services/oauth2/token",
        rules=[
            claims_within(180),
            expect(iss="3MVG9consumer", sub="api@example.com", aud=server.url),
        ],
        answer=lambda token, ttl: {
            "access_token": token,
            "instance_url": "https://x.my.salesforce.com",
            "token_type": "Bearer",
        },
    )
    return auth


def test_salesforce_jwt_bearer_flow(server, make_integration):
    """Salesforce: iss = consumer key, sub = username, aud = login URL, exp ≤ 3 min,
    grant at {login_url}/services/oauth2/token; no expires_in in the answer, still cached."""
    auth = salesforce_emulator(server)
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="salesforce",
        auth_config={
            "consumer_key": "3MVG9consumer",
            "username": "api@example.com",
            "login_url": server.url,
        },
        secrets={"private_key": rsa_pem()},
    )
    for _ in range(2):
        assert services.request("billing", "GET", "resource").status_code == 200
    assert auth.mints == 1


def test_salesforce_emulator_refuses_a_five_minute_assertion(server, make_integration):
    """Negative: exp 5 minutes ahead is refused; the preset refuses it on save."""
    auth = salesforce_emulator(server)
    claims = {"iss": "3MVG9consumer", "sub": "api@example.com", "aud": server.url}
    generic_grant(make_integration, auth, claims, lifetime=300)
    with pytest.raises(TokenEndpointError, match="too far"):
        services.request("billing", "GET", "resource")
    with pytest.raises(ValidationError, match="at most 180"):
        make_integration(
            "sf",
            auth_type="salesforce",
            auth_config={"consumer_key": "c", "username": "u", "lifetime": 300},
            secrets={"private_key": rsa_pem()},
        )


# DocuSign --------------------------------------------------------------------------

USER_GUID = str(uuid.UUID(int=7))


def docusign_emulator(server):
    return AuthServer(
        server,
        verify_key=public_pem(rsa_pem()),
        algorithm="RS256",
        path="/oauth/token",
        rules=[
            claims_within(3600, from_iat=True),
            expect(
                iss="ik-123",
                sub=USER_GUID,
                aud="account-d.docusign.com",
                scope="signature impersonation",
            ),
        ],
    )


def test_docusign_jwt_grant(server, make_integration):
    """DocuSign: aud is the bare OAuth host, scope claim, iss = integration key, sub =
    user GUID, exp ≤ iat + 1 h."""
    auth = docusign_emulator(server)
    make_integration(
        base_url=f"{server.url}/api/",
        auth_type="docusign",
        auth_config={"integration_key": "ik-123", "user_id": USER_GUID, "token_url": auth.url},
        secrets={"private_key": rsa_pem()},
    )
    assert services.request("billing", "GET", "resource").status_code == 200


def test_docusign_emulator_refuses_a_url_audience(server, make_integration):
    """Negative: the generic grant's default aud (the token URL) is refused: DocuSign
    wants the bare host. A non-GUID user id is refused on save."""
    auth = docusign_emulator(server)
    claims = {"iss": "ik-123", "sub": USER_GUID, "scope": "signature impersonation"}
    generic_grant(make_integration, auth, claims)
    with pytest.raises(TokenEndpointError, match="aud must be"):
        services.request("billing", "GET", "resource")
    with pytest.raises(ValidationError, match="user_id"):
        make_integration(
            "ds",
            auth_type="docusign",
            auth_config={"integration_key": "ik", "user_id": "bob"},
            secrets={"private_key": rsa_pem()},
        )


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
    from urllib.parse import parse_qs, urlsplit

    import requests

    from integrations.tokens.presets.atlassian_connect import query_string_hash

    url = (
        requests.Request(method, f"https://site.example{path}", params=params + [("jwt", "x")])
        .prepare()
        .url
    )
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    expected = reference_qsh(method, urlsplit(url).path, query, context="/wiki")
    assert query_string_hash(method, url, "https://site.example/wiki") == expected
