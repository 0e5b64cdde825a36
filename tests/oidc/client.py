"""A small OAuth client built from the app's pieces, for driving node-oidc-provider:
the guarded session, the mTLS adapter, DPoP proofs and nonces, and the JWTSigner for
private_key_jwt assertions. The app's own wiring (providers, models) comes later; this
is what it will do, kept to what the tests need."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from integrations.http.mtls import client_ssl_context, mount_client_certificate
from integrations.http.session import GuardedSession
from integrations.tokens.assertion import ASSERTION_TYPE
from integrations.tokens.dpop import DPoPKey, NonceStore, wants_nonce_resource, wants_nonce_token
from integrations.tokens.jws import JWTSigner
from integrations.tokens.signing import standard_claims


def session(ca_path: str, certificate: str | None = None) -> GuardedSession:
    http = GuardedSession(ca_bundle=ca_path)
    if certificate is not None:
        mount_client_certificate(http, client_ssl_context(certificate, ca_bundle=ca_path))
    return http


def assertion(client_id: str, key_pem: str, audience: str, algorithm: str = "ES256") -> str:
    claims = standard_claims(
        {"iss": client_id, "sub": client_id, "aud": audience}, lifetime=60, jti=True
    )
    return JWTSigner(algorithm, key_pem).sign(claims)


class Answer:
    def __init__(self, response: requests.Response, attempts: int) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.attempts = attempts
        try:
            self.json: Any = json.loads(response.content)
        except ValueError:
            self.json = None


def token_request(
    http: requests.Session,
    token_url: str,
    form: dict[str, str] | Callable[[], dict[str, str]],
    *,
    dpop: DPoPKey | None = None,
    nonces: NonceStore | None = None,
) -> Answer:
    """POST a token request, with a DPoP proof when given a key; a use_dpop_nonce
    answer gets one retry with the server's nonce (security.md #34: not a loop).
    ``form`` may be a function, called per attempt: a retry needs a fresh assertion
    (its jti was used)."""
    nonces = nonces if nonces is not None else NonceStore()
    response: requests.Response | None = None
    for attempt in (1, 2):
        headers = {"Accept": "application/json"}
        if dpop is not None:
            headers["DPoP"] = dpop.proof("POST", token_url, nonce=nonces.get(token_url))
        fields = form() if callable(form) else form
        response = http.post(token_url, data=fields, headers=headers, allow_redirects=False)
        nonces.update(token_url, response.headers)
        answer = Answer(response, attempt)
        if dpop is None or not wants_nonce_token(answer.status, answer.json):
            return answer
    assert response is not None
    return Answer(response, 2)


def resource_call(
    http: requests.Session,
    url: str,
    token: str,
    *,
    dpop: DPoPKey | None = None,
    nonces: NonceStore | None = None,
    method: str = "GET",
) -> Answer:
    """Call a resource: ``Authorization: DPoP`` plus a proof with ath when given a key,
    Bearer otherwise; a 401 use_dpop_nonce challenge gets one retry."""
    nonces = nonces if nonces is not None else NonceStore()
    response: requests.Response | None = None
    for attempt in (1, 2):
        headers = {"Authorization": f"Bearer {token}"}
        if dpop is not None:
            headers = {
                "Authorization": f"DPoP {token}",
                "DPoP": dpop.proof(method, url, nonce=nonces.get(url), access_token=token),
            }
        response = http.request(method, url, headers=headers, allow_redirects=False)
        nonces.update(url, response.headers)
        if dpop is None or not wants_nonce_resource(response.status_code, response.headers):
            return Answer(response, attempt)
    assert response is not None
    return Answer(response, 2)


def client_credentials(client_id: str, *, scope: str = "api:read") -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "scope": scope}


def with_assertion(form: dict[str, str], signed: str) -> dict[str, str]:
    return {**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
