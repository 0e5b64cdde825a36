"""The presets over jwt_grant (Box, Salesforce, DocuSign) against loopback emulators
of their providers' published rules (PROVIDERS.md): the preset's grant is accepted,
the same flow with a rule broken is refused, and the preset refuses that configuration
on save."""

from __future__ import annotations

import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization

from integrations import services
from integrations.configfile import import_config
from integrations.exceptions import InvalidConfiguration, TokenEndpointError
from tests.keys import rsa_pem
from tests.tokens.emulators import (
    AuthServer,
    PresetCase,
    claims_within,
    expect,
    generic_grant,
    refused_on_save,
)

pytestmark = pytest.mark.django_db

BOX_AUD = "https://api.box.com/oauth2/token"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


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


# Salesforce ------------------------------------------------------------------------


def salesforce_emulator(server):
    auth = AuthServer(
        server,
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
    """Negative: exp 5 minutes ahead is refused (the preset refuses it on save: see the
    table below)."""
    auth = salesforce_emulator(server)
    claims = {"iss": "3MVG9consumer", "sub": "api@example.com", "aud": server.url}
    generic_grant(make_integration, auth, claims, lifetime=300)
    with pytest.raises(TokenEndpointError, match="too far"):
        services.request("billing", "GET", "resource")


# DocuSign --------------------------------------------------------------------------

USER_GUID = str(uuid.UUID(int=7))


def docusign_emulator(server):
    return AuthServer(
        server,
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
    wants the bare host (a non-GUID user id is refused on save: see the table below)."""
    auth = docusign_emulator(server)
    claims = {"iss": "ik-123", "sub": USER_GUID, "scope": "signature impersonation"}
    generic_grant(make_integration, auth, claims)
    with pytest.raises(TokenEndpointError, match="aud must be"):
        services.request("billing", "GET", "resource")


def box_config_with(path: tuple[str, ...], value) -> str:
    """Box's config with the value at ``path`` replaced (``...`` removes it)."""
    data = json.loads(box_config())
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(data)


SECRET_PARTS = ("box-client-secret", "correct horse", "BEGIN")


BOX = PresetCase("box", {}, {"box_config": box_config()})
SALESFORCE = PresetCase(
    "salesforce", {"consumer_key": "c", "username": "u"}, {"private_key": rsa_pem()}
)
DOCUSIGN = PresetCase("docusign", {"integration_key": "ik"}, {"private_key": rsa_pem()})


@pytest.mark.parametrize(
    "auth_type,config,secrets,message",
    [
        BOX.broken("box-over-60-s", "at most 60", lifetime=90),
        BOX.broken(
            "box-wrong-passphrase",
            "does not decrypt",
            secrets={"box_config": box_config(passphrase="wrong")},
        ),
        BOX.broken("box-foreign-json", "has no boxAppSettings", secrets={"box_config": "{}"}),
        BOX.broken(
            "box-no-subject",
            "no enterpriseID",
            secrets={"box_config": box_config(enterpriseID=None)},
        ),
        SALESFORCE.broken("salesforce-over-3-minutes", "at most 180", lifetime=300),
        DOCUSIGN.broken("docusign-user-not-a-guid", "user_id", user_id="bob"),
    ],
)
def test_grant_presets_refuse_broken_rules_on_save(
    make_integration, auth_type, config, secrets, message
):
    """security.md #30: a lifetime past the provider's cap is refused (Box 60 s,
    Salesforce 3 min); Box refuses a wrong passphrase, a foreign JSON or no subject;
    DocuSign a non-GUID user id. The message quotes no part of the config."""
    text = refused_on_save(make_integration, auth_type, config, secrets, message)
    assert not any(part in text for part in SECRET_PARTS)


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("boxAppSettings", "clientID"), 123, "boxAppSettings.clientID must be a non-empty string"),
        (("boxAppSettings", "clientSecret"), ["x"], "clientSecret must be a non-empty string"),
        (("boxAppSettings", "appAuth"), "text", "boxAppSettings.appAuth is not a JSON object"),
        (("boxAppSettings", "appAuth", "privateKey"), 7, "privateKey must be a non-empty string"),
        (("boxAppSettings", "appAuth", "passphrase"), 42.5, "passphrase must be a string"),
        (
            ("boxAppSettings", "appAuth", "publicKeyID"),
            ...,
            "has no boxAppSettings.appAuth.publicKeyID",
        ),
        (("boxAppSettings",), [], "boxAppSettings is not a JSON object"),
        (("enterpriseID",), {"id": 1}, "enterpriseID must be a string"),
    ],
)
def test_a_malformed_box_config_is_a_field_error_naming_the_field(
    make_integration, path, value, message
):
    """security.md #37 (issue 15, findings 3 and 7): a Box config with a non-string,
    missing or mistyped field is a field error naming the field, never an
    AttributeError or TypeError, on save and in an import (InvalidConfiguration naming
    the entry and field); no part of the config is quoted."""
    secrets = {"box_config": box_config_with(path, value)}
    text = refused_on_save(make_integration, "box", {}, secrets, message)
    assert "box_config" in text and not any(part in text for part in SECRET_PARTS)


def test_a_malformed_box_config_in_an_import_names_entry_and_field(db):
    """security.md #37: importing a Box entry whose config has a non-string privateKey
    ends in InvalidConfiguration naming the entry and auth.box_config, not a traceback."""
    broken = box_config_with(("boxAppSettings", "appAuth", "privateKey"), 7)
    entry = {
        "slug": "box-files",
        "name": "Box",
        "base_url": "https://api.box.com/2.0/",
        "auth": {"type": "box", "box_config": broken},
    }
    with pytest.raises(InvalidConfiguration) as caught:
        import_config({"integrations": [entry]})
    assert caught.value.entry == "box-files" and caught.value.field == "auth.box_config"
    assert "privateKey" in str(caught.value)
    assert not any(part in str(caught.value) for part in SECRET_PARTS)
