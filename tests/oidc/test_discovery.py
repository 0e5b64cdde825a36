"""Authorization server metadata: addresses, fallback, checks (security.md #36)."""

from __future__ import annotations

import pytest

from integrations.exceptions import DiscoveryError, InvalidConfiguration
from integrations.http.session import GuardedSession
from integrations.tokens import discovery
from integrations.tokens.discovery import ServerMetadata, discover, metadata_urls
from tests.loopback import LoopbackServer, Reply


def test_metadata_urls_put_the_well_known_part_first_then_append() -> None:
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://as.example/tenant/1") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        "https://as.example/tenant/1/.well-known/oauth-authorization-server",
        "https://as.example/tenant/1/.well-known/openid-configuration",
    ]


@pytest.mark.parametrize(
    "issuer", ["http://as.example", "https://as.example/?x=1", "https://u:p@as.example", "as"]
)
def test_bad_issuers_are_refused_naming_the_field(issuer: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        discover(GuardedSession(), issuer)
    assert caught.value.field == "issuer"


def document(issuer: str, **extra: object) -> dict[str, object]:
    return {"issuer": issuer, "token_endpoint": issuer + "/token", **extra}


def test_falls_back_to_openid_configuration(server: LoopbackServer) -> None:
    issuer = server.url
    server.route("GET", "/.well-known/openid-configuration", lambda r: Reply(200, document(issuer)))
    metadata = discover(GuardedSession(), issuer, allow_http=True)
    assert metadata.source == issuer + "/.well-known/openid-configuration"
    assert metadata.token_endpoint == issuer + "/token"
    assert [r.path for r in server.requests] == [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ]


def test_an_issuer_mismatch_stops_at_once(server: LoopbackServer) -> None:
    """security.md #36: no second address is tried after a mix-up."""
    server.route(
        "GET",
        "/.well-known/oauth-authorization-server",
        lambda r: Reply(200, document("https://evil.example")),
    )
    with pytest.raises(DiscoveryError, match="evil.example.*not the configured"):
        discover(GuardedSession(), server.url, allow_http=True)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"[1, 2]", {"Content-Type": "application/json"}), "not a JSON object"),
        (Reply(200, b"<html>"), "not JSON"),
        (Reply(500, b"oops"), "answered HTTP 500"),
        (Reply(200, b"{" + b" " * (300 * 1024) + b"}"), "larger than 256 KB"),
    ],
)
def test_malformed_answers_are_clear_errors(
    server: LoopbackServer, reply: Reply, message: str
) -> None:
    server.route("GET", "/.well-known/oauth-authorization-server", lambda r: reply)
    with pytest.raises(DiscoveryError, match=message):
        discover(GuardedSession(), server.url, allow_http=True)


def test_unreachable_metadata_is_a_discovery_error() -> None:
    with pytest.raises(DiscoveryError, match="cannot read the metadata"):
        discover(GuardedSession(), "http://127.0.0.1:9", allow_http=True, timeout=(1, 1))


def test_nothing_found_lists_where_it_looked(server: LoopbackServer) -> None:
    with pytest.raises(DiscoveryError, match="no authorization server metadata"):
        discover(GuardedSession(), server.url, allow_http=True)


def test_endpoints_must_be_urls_and_https_for_an_https_issuer() -> None:
    issuer = "https://as.example"
    with pytest.raises(DiscoveryError, match="http:// token_endpoint"):
        discovery.parse_metadata(
            {"issuer": issuer, "token_endpoint": "http://as.example/t"}, issuer, issuer
        )
    with pytest.raises(DiscoveryError, match="malformed jwks_uri"):
        discovery.parse_metadata({"issuer": issuer, "jwks_uri": 5}, issuer, issuer)


def test_algorithm_checks_use_exact_names() -> None:
    metadata = ServerMetadata(
        issuer="https://as.example",
        token_endpoint_auth_signing_alg_values_supported=("Ed25519", "ES256"),
        dpop_signing_alg_values_supported=("ES256",),
    )
    metadata.check_assertion_algorithm("Ed25519")
    with pytest.raises(InvalidConfiguration) as caught:
        metadata.check_assertion_algorithm("EdDSA")
    assert caught.value.field == "algorithm"
    metadata.check_dpop_algorithm("ES256")
    with pytest.raises(InvalidConfiguration) as caught:
        metadata.check_dpop_algorithm("PS256")
    assert caught.value.field == "dpop_algorithm"
    with pytest.raises(InvalidConfiguration, match="no DPoP algorithms"):
        ServerMetadata(issuer="https://as.example").check_dpop_algorithm("ES256")


def test_metadata_round_trips_through_json_for_the_row() -> None:
    metadata = discovery.parse_metadata(
        document(
            "https://as.example",
            mtls_endpoint_aliases={"token_endpoint": "https://mtls.as.example/token"},
            dpop_signing_alg_values_supported=["ES256"],
        ),
        "https://as.example",
        "https://as.example/.well-known/oauth-authorization-server",
    )
    assert ServerMetadata.from_dict(metadata.as_dict()) == metadata
    assert metadata.endpoint(mtls=True) == "https://mtls.as.example/token"
    assert metadata.endpoint() == "https://as.example/token"
