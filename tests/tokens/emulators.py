"""Loopback emulators of token endpoints and the APIs behind them.

An ``AuthServer`` verifies each assertion with joserfc (never PyJWT) against the public
key and a provider's rules, issues opaque access tokens it counts, and serves a
protected ``/api/resource`` that accepts only tokens it issued.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from tests import jose
from tests.keys import key_for, rsa_pem, verify_key_for
from tests.loopback import LoopbackServer, Recorded, Reply

# rule(header, claims, request) -> None when the assertion is acceptable, else why not.
Rule = Callable[[dict[str, Any], dict[str, Any], Recorded], str | None]


def claims_within(cap: int, *, from_iat: bool = False) -> Rule:
    """exp at most ``cap`` seconds after now (or after iat), iat not in the future."""

    def rule(header: dict[str, Any], claims: dict[str, Any], request: Recorded) -> str | None:
        now = time.time()
        if not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int):
            return "iat and exp must be integer NumericDates"
        if claims["iat"] > now + 1:
            return "iat is in the future"
        if claims["exp"] <= now:
            return "the assertion has expired"
        limit = claims["iat"] + cap if from_iat else now + cap + 1
        if claims["exp"] > limit:
            return "'exp' is too far in the future"
        return None

    return rule


def expect(**wanted: Any) -> Rule:
    """Exact values for header (``header_<name>``) and claims."""

    def rule(header: dict[str, Any], claims: dict[str, Any], request: Recorded) -> str | None:
        for name, value in wanted.items():
            source, key = (header, name[7:]) if name.startswith("header_") else (claims, name)
            if source.get(key) != value:
                return f"{key} must be {value!r}, got {source.get(key)!r}"
        return None

    return rule


def check_jwt(
    token: str, verify_key: str | bytes, algorithm: str, rules: list[Rule], request: Recorded
) -> tuple[dict[str, Any], dict[str, Any], str | None, bool]:
    """(header, claims, problem, signature_ok): the JWT verified with joserfc, then each
    rule; ``problem`` is None when all hold."""
    try:
        header, claims = jose.verify(token, verify_key, algorithm)
    except Exception as exc:
        return {}, {}, f"bad JWT: {exc}", False
    problem = next(filter(None, (rule(header, claims, request) for rule in rules)), None)
    return header, claims, problem, True


class JWTVerifier:
    """Verifies the JWTs an emulator is sent (``check_jwt``) against one key and a
    provider's rules, given as ``algorithm=``, ``rules=`` and ``verify_key=``: by default
    the test key of the algorithm (tests/keys.py), as the integrations sign with."""

    def __init__(
        self, *, algorithm: str, rules: list[Rule], verify_key: str | bytes | None = None
    ) -> None:
        self.verify_key = verify_key_for(algorithm) if verify_key is None else verify_key
        self.algorithm = algorithm
        self.rules = rules

    def check(
        self, token: str, request: Recorded
    ) -> tuple[dict[str, Any], dict[str, Any], str | None, bool]:
        return check_jwt(token, self.verify_key, self.algorithm, self.rules, request)


class AuthServer(JWTVerifier):
    """A token endpoint at ``path`` that trades verified assertions for access tokens."""

    def __init__(
        self,
        server: LoopbackServer,
        *,
        path: str = "/token",
        method: str = "POST",
        answer: Callable[[str, int], dict[str, Any]] | None = None,
        expires_in: int = 3600,
        delay: float = 0.0,
        form: Callable[[Recorded], str | None] | None = None,
        **verification: Any,
    ) -> None:
        super().__init__(**verification)
        self.server = server
        self.path = path
        self.expires_in = expires_in
        self.delay = delay
        self.answer = answer or (
            lambda token, ttl: {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
        )
        self.form_rule = form
        self.issued: list[str] = []
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.seen_jti: set[str] = set()
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        server.route(method, path, self.token)
        server.route("GET", "/api/resource", self.resource)

    @property
    def url(self) -> str:
        return self.server.url + self.path

    @property
    def mints(self) -> int:
        return len(self.issued)

    def token(self, request: Recorded) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        form = request.form if request.body else {}
        assertion = form.get("assertion") or form.get("client_assertion") or request.bearer
        if self.form_rule is not None:
            problem = self.form_rule(request)
            if problem:
                return Reply(400, {"error": "invalid_request", "error_description": problem})
        header, claims, problem, signed = self.check(assertion, request)
        if problem:
            status = 400 if signed else 401
            return Reply(status, {"error": "invalid_grant", "error_description": problem})
        with self.lock:
            jti = claims.get("jti")
            if jti is not None:
                if jti in self.seen_jti:
                    return Reply(
                        400, {"error": "invalid_grant", "error_description": "jti replayed"}
                    )
                self.seen_jti.add(jti)
            token = f"at-{next(self.counter)}-{uuid.uuid4().hex}"
            self.issued.append(token)
            self.assertions.append((header, claims))
        return Reply(200, self.answer(token, self.expires_in))

    def resource(self, request: Recorded) -> Reply:
        if request.bearer not in self.issued:
            return Reply(401, {"error": "invalid_token"})
        return Reply(200, {"ok": True})


class BearerAPI(JWTVerifier):
    """An API at ``path`` that verifies the JWT on each call against a provider's rules:
    401 with the reason when one is broken."""

    def __init__(
        self,
        server: LoopbackServer,
        *,
        path: str = "/api/resource",
        method: str = "GET",
        scheme: str = "Bearer",
        header: str = "Authorization",
        **verification: Any,
    ) -> None:
        super().__init__(**verification)
        self.scheme = scheme
        self.header = header
        self.accepted: list[tuple[dict[str, Any], dict[str, Any]]] = []
        server.route(method, path, self.handle)

    def handle(self, request: Recorded) -> Reply:
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme != self.scheme:
            return Reply(401, {"errors": [{"detail": f"expected {self.scheme} scheme"}]})
        header, claims, problem, _ = self.check(token, request)
        if problem:
            return Reply(401, {"errors": [{"detail": problem}]})
        self.accepted.append((header, claims))
        return Reply(200, {"data": []})


def not_after(server_lag: int) -> Rule:
    """iat must not be in the future for a server whose clock is ``server_lag`` s behind."""

    def rule(header: dict[str, Any], claims: dict[str, Any], request: Recorded) -> str | None:
        return "iat is in the future" if claims["iat"] > time.time() - server_lag else None

    return rule


def generic_grant(make_integration: Any, auth: AuthServer, claims: dict[str, Any], **options: Any):
    """The generic jwt_grant with the test RSA key, trading at ``auth``: how the negative
    tests send what a preset would, with one of its provider's rules broken."""
    return make_integration(
        base_url=f"{auth.server.url}/api/",
        auth_type="jwt_grant",
        auth_config={"algorithm": "RS256", "claims": claims, "token_url": auth.url, **options},
        secrets={"key": rsa_pem()},
    )


def generic_bearer(make_integration: Any, server: LoopbackServer, algorithm: str, **config: Any):
    """The generic jwt_bearer signing with the test key of ``algorithm``: how the negative
    tests send what a bearer preset would, with one of its provider's rules broken."""
    headers = config.pop("headers", {})
    return make_integration(
        base_url=server.url,
        auth_config={"algorithm": algorithm, **config},
        secrets={"key": key_for(algorithm)},
        headers=headers,
    )


@dataclass(frozen=True)
class PresetCase:
    """A preset's configuration that saves, from which a refused-on-save table breaks
    one rule a row."""

    auth_type: str
    config: dict[str, Any]
    secrets: dict[str, str]

    def broken(
        self, id: str, message: str, *, secrets: dict[str, str] | None = None, **config: Any
    ) -> Any:
        """A row (auth_type, config, secrets, message) for ``refused_on_save``: these
        options and ``secrets`` changed, refused with ``message``."""
        return pytest.param(
            self.auth_type,
            {**self.config, **config},
            {**self.secrets, **(secrets or {})},
            message,
            id=id,
        )


def refused_on_save(
    make_integration: Any, auth_type: str, config: dict, secrets: dict, message: str
) -> str:
    """Save a preset's configuration that breaks its provider's rules: a ValidationError
    matching ``message`` is raised; its text is returned for leak checks."""
    with pytest.raises(ValidationError, match=message) as caught:
        make_integration("refused", auth_type=auth_type, auth_config=config, secrets=secrets)
    return str(caught.value)


# Google scopes the key-file tests ask for.
SCOPES = ["https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/drive"]


def key_file(token_uri: str, **changes: Any) -> str:
    """A Google service-account key file for the test RSA key; None removes a field."""
    data = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "8f2c1d",
        "private_key": rsa_pem(),
        "client_email": "robot@demo.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": token_uri,
        **changes,
    }
    return json.dumps({k: v for k, v in data.items() if v is not None})
