"""private_key_jwt + DPoP and discovery through the real app (import, services,
test calls, integrations_token, preview) against node-oidc-provider, whose ``dpop``
client needs a nonce at the token endpoint and whose ``/resource/dpop-nonce`` needs one
too (security.md #34, #36)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from integrations import services
from integrations.exceptions import InvalidConfiguration
from integrations.http.session import GuardedSession
from integrations.models import CallLog, Integration
from integrations.tokens import preview
from integrations.tokens.dpop import DPoPKey
from integrations.tokens.sender import DPOP_KEY, DPoPBinding
from tests.commands.helpers import manage
from tests.oidc.app import body, entry, load, private_key_jwt, token_requests
from tests.oidc.server import OIDCProvider

pytestmark = pytest.mark.django_db


def fapi(oidc: OIDCProvider, slug: str = "fapi", **options: object) -> Integration:
    auth = private_key_jwt(oidc, dpop=True, **options)
    return load(entry(oidc, slug, auth, path="dpop-nonce"))[0]


def binding(slug: str) -> DPoPBinding:
    auth = services.get_session(slug).auth
    found = getattr(auth, "dpop", None)
    assert isinstance(found, DPoPBinding)
    return found


def test_import_discovers_the_issuer_and_generates_the_proof_key(oidc: OIDCProvider) -> None:
    integration = fapi(oidc)
    assert integration.server_metadata["issuer"] == oidc.issuer
    assert integration.server_metadata["token_endpoint"] == oidc.token_url
    assert integration.metadata_read_at is not None
    key = DPoPKey.from_pem(integration.get_secrets()[DPOP_KEY], "ES256")
    # Imported again: the stored key is kept (tokens bound to it stay usable).
    again = fapi(oidc)
    assert DPoPKey.from_pem(again.get_secrets()[DPOP_KEY], "ES256").jkt() == key.jkt()
    assert "dpop_key" not in json.dumps(again.auth_config)


def test_dpop_token_request_retried_once_and_resource_call_accepted(oidc: OIDCProvider) -> None:
    """security.md #34: the token endpoint's use_dpop_nonce gets one retry with its
    nonce; the resource's 401 use_dpop_nonce one retry with the same token; the nonces
    are kept, so the next calls need none."""
    fapi(oidc)
    with token_requests("fapi") as answers:
        response = services.request("fapi", "GET", "dpop-nonce")
    assert response.status_code == 200, body(response)
    assert [a.status_code for a in answers] == [400, 200]
    assert body(answers[0])["error"] == "use_dpop_nonce"
    assert body(answers[1])["token_type"] == "DPoP"
    assert len(response.history) == 1 and response.history[0].status_code == 401
    assert response.request.headers["Authorization"].startswith("DPoP ")
    assert body(response)["jkt"] == binding("fapi").key.jkt()
    row = CallLog.objects.latest("id")
    assert row.ok and row.attempts == 2
    again = services.request("fapi", "GET", "dpop-nonce")
    assert again.status_code == 200 and not again.history
    assert CallLog.objects.latest("id").attempts == 1


def test_test_call_and_integrations_token(oidc: OIDCProvider) -> None:
    fapi(oidc)
    assert services.run_test("fapi").ok
    ran = manage("integrations_token", "fapi")
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert report["token_type"] == "DPoP"
    assert report["cnf"] == {"jkt": binding("fapi").key.jkt()}
    assert "token" not in report


def test_the_same_token_as_bearer_is_refused(oidc: OIDCProvider) -> None:
    fapi(oidc)
    ran = manage("integrations_token", "fapi", "--reveal")
    token = json.loads(ran.out)["token"]
    http = GuardedSession(ca_bundle=oidc.ca_path)
    answer = http.get(oidc.url + "/resource/dpop", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("DPoP ")
    assert answer.json()["error"] == "invalid_token"


def test_a_replayed_proof_is_refused(oidc: OIDCProvider) -> None:
    """A proof the app sent, sent again as it was: the resource refuses the replay."""
    fapi(oidc)
    first = services.request("fapi", "GET", "dpop-nonce")
    assert first.status_code == 200
    sent = first.request.headers
    http = GuardedSession(ca_bundle=oidc.ca_path)
    replay = http.get(
        oidc.url + "/resource/dpop-nonce",
        headers={"Authorization": sent["Authorization"], "DPoP": sent["DPoP"]},
    )
    assert replay.status_code == 401
    assert replay.json()["error_description"] == "DPoP proof replay detected"


class PinnedProof:
    """A proof key that hands out the same proof every time (a broken client)."""

    def __init__(self, key: DPoPKey) -> None:
        self.key = key
        self.proofs: dict[str, str] = {}

    def proof(self, htm: str, htu: str, **kwargs: object) -> str:
        return self.proofs.setdefault(htm + htu, self.key.proof(htm, htu, **kwargs))  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.key, name)


def test_a_replayed_proof_is_reported_clearly(oidc: OIDCProvider) -> None:
    fapi(oidc, "replay")
    assert services.request("replay", "GET", "dpop").status_code == 200
    dpop = binding("replay")
    dpop.key = PinnedProof(dpop.key)  # type: ignore[assignment]
    assert services.request("replay", "GET", "dpop").status_code == 200
    refused = services.request("replay", "GET", "dpop")
    assert refused.status_code == 401
    # The replay is refused; the one retry (a fresh token, the same stale proof) too.
    assert body(refused.history[0])["error_description"] == "DPoP proof replay detected"
    row = CallLog.objects.latest("id")
    assert row.attempts == 2
    assert row.error.startswith("HTTP 401 Unauthorized; token refused (invalid_dpop_proof: ")
    result = services.run_test("replay")
    assert not result.ok
    assert result.error.startswith("unexpected status 401 (expected 200): token refused (")


class WrongResourceKey(DPoPBinding):
    """Token requests proved with the bound key, resource requests with another."""

    __slots__ = ("other",)

    def __init__(self, key: DPoPKey) -> None:
        super().__init__(key)
        self.other = DPoPBinding(DPoPKey.generate())

    def authorize(self, request: Any, token: str) -> None:
        self.other.authorize(request, token)


def test_a_proof_by_another_key_is_refused_and_reported(oidc: OIDCProvider) -> None:
    fapi(oidc, "wrongkey")
    session = services.get_session("wrongkey")
    wrong = WrongResourceKey(binding("wrongkey").key)
    session.provider.dpop = session.auth.dpop = wrong  # type: ignore[attr-defined,union-attr]
    response = services.request("wrongkey", "GET", "dpop")
    assert response.status_code == 401
    row = CallLog.objects.latest("id")
    assert "proof key does not match the token binding" in row.error
    assert row.attempts == 2  # the 401 got its one retry with a fresh token, no more


def test_preview_shows_the_proofs_header_and_claims(oidc: OIDCProvider) -> None:
    integration = fapi(oidc)
    shown = preview(integration)["dpop"]
    key = DPoPKey.from_pem(integration.get_secrets()[DPOP_KEY], "ES256")
    test = shown["test_request"]
    assert test["header"] == {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    assert set(test["header"]["jwk"]) == {"kty", "crv", "x", "y"}  # no "d"
    assert test["claims"]["htm"] == "GET"
    assert test["claims"]["htu"] == oidc.url + "/resource/dpop-nonce"
    assert shown["token_request"]["claims"]["htu"] == oidc.token_url
    assert shown["jkt"] == key.jkt()


@pytest.mark.parametrize("algorithm", ["EdDSA", "Ed25519", "ES384"])
def test_other_dpop_algorithms(oidc: OIDCProvider, algorithm: str) -> None:
    fapi(oidc, f"dpop-{algorithm.lower()}", dpop_algorithm=algorithm)
    response = services.request(f"dpop-{algorithm.lower()}", "GET", "dpop")
    assert response.status_code == 200, body(response)
    encoded = response.request.headers["DPoP"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert header["alg"] == algorithm  # as configured, Ed25519 included


@pytest.mark.parametrize("algorithm", ["Ed25519", "EdDSA"])
def test_ed25519_client_assertion_goes_on_the_wire_as_configured(
    oidc: OIDCProvider, algorithm: str
) -> None:
    """The ``ed25519`` client is registered for alg Ed25519 only (RFC 9864): an
    assertion labelled EdDSA is refused, one labelled Ed25519 accepted."""
    auth = private_key_jwt(oidc, "ed25519", algorithm=algorithm)
    load(entry(oidc, "ed", auth, path="dpop"))
    ran = manage("integrations_token", "ed")
    if algorithm == "Ed25519":
        assert ran.code == 0, ran.err
        assert json.loads(ran.out)["token_type"] == "Bearer"
    else:
        assert ran.code == 1 and "invalid_client" in ran.err


def test_discovery_refuses_another_issuer_on_import(oidc: OIDCProvider) -> None:
    """security.md #36: a trailing slash is another issuer; nothing is written."""
    auth = private_key_jwt(oidc, issuer=oidc.issuer + "/", dpop=True)
    with pytest.raises(InvalidConfiguration, match="not the configured") as caught:
        load(entry(oidc, "mixup", auth))
    assert caught.value.entry == "mixup" and caught.value.field == "auth.issuer"
    assert not Integration.objects.filter(slug="mixup").exists()


def test_discovery_unreachable_is_refused_on_import(oidc: OIDCProvider) -> None:
    auth = private_key_jwt(oidc, issuer="https://127.0.0.1:9")
    with pytest.raises(InvalidConfiguration, match="cannot read the metadata") as caught:
        load(entry(oidc, "gone", auth))
    assert caught.value.field == "auth.issuer"


def test_an_algorithm_the_server_does_not_list_is_refused_naming_the_field(
    oidc: OIDCProvider,
) -> None:
    """ES512 is not among the provider's client-assertion algorithms."""
    from tests.keys import key_for

    auth = private_key_jwt(oidc, algorithm="ES512", key=key_for("ES512"))
    with pytest.raises(InvalidConfiguration, match="does not accept 'ES512'") as caught:
        load(entry(oidc, "es512", auth))
    assert caught.value.field == "auth.algorithm"


def test_integrations_discover_reads_the_metadata_again(oidc: OIDCProvider) -> None:
    integration = fapi(oidc)
    before = integration.metadata_read_at
    Integration.objects.filter(pk=integration.pk).update(server_metadata={})
    ran = manage("integrations_discover", "fapi")
    assert ran.code == 0, ran.err
    shown = json.loads(ran.out)
    assert shown["issuer"] == oidc.issuer and shown["token_endpoint"] == oidc.token_url
    integration.refresh_from_db()
    assert integration.server_metadata["issuer"] == oidc.issuer
    assert before is not None and integration.metadata_read_at > before
    assert manage("integrations_discover", "nope").code == 2
