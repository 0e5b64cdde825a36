"""Token engine benchmark: per-call cost of cached tokens, against peers, in one run.

Every client calls the same loopback API over keep-alive HTTP/1.1, N times; grant
flows use the same loopback token endpoint, which counts the tokens it issues. Ratios
are against a default ``requests.Session`` sending no credential; it keeps
``trust_env`` on, so it looks up proxies and ~/.netrc on every call, which our sessions
skip (security.md #13): that is why a cached token can come out cheaper than no token.
Nothing is asserted: the numbers are printed for reading.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.loopback import LoopbackServer, Recorded, Reply

ROUNDS = 15
BATCH = 30
# The seed recipe parses the PEM on every call (tens of ms): fewer calls per round.
SEED_BATCH = 3


class Counter:
    """Token endpoints, one path per client, issuing numbered access tokens."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.serial = itertools.count(1)

    def token(self, request: Recorded) -> Reply:
        with self.lock:
            self.counts[request.path] = self.counts.get(request.path, 0) + 1
        return Reply(
            200,
            {"access_token": f"at-{next(self.serial)}", "token_type": "Bearer", "expires_in": 3600},
        )


class Client:
    """One way of calling the API: timed in rounds, interleaved with the others, so a
    burst of load on a shared machine hits every client alike."""

    def __init__(
        self, name: str, call: Callable[[], requests.Response], batch: int = BATCH
    ) -> None:
        self.name = name
        self.call = call
        self.batch = batch
        self.rounds: list[float] = []
        self.calls = 0

    def warm(self) -> None:
        for _ in range(3):
            self.call().raise_for_status()
            self.calls += 1

    def round(self) -> None:
        started = time.perf_counter()
        for _ in range(self.batch):
            response = self.call()
            if response.status_code != 200:
                raise RuntimeError(f"{self.name}: the API answered {response.status_code}")
        self.rounds.append((time.perf_counter() - started) / self.batch)
        self.calls += self.batch

    @property
    def best(self) -> float:
        return min(self.rounds)


def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def integration(
    slug: str, base_url: str, auth_type: str, config: dict[str, Any], secrets: dict[str, str]
) -> None:
    from integrations.models import Integration

    Integration.objects.filter(slug=slug).delete()
    row = Integration(
        slug=slug,
        name=slug,
        base_url=base_url,
        auth_type=auth_type,
        auth_config=config,
        log_calls="none",
    )
    row.set_secrets(secrets)
    row.full_clean()
    row.save()


def run() -> None:
    from django.core.management import call_command

    from integrations import services

    call_command("migrate", verbosity=0)
    pem = private_pem()
    counter = Counter()
    with LoopbackServer() as server:
        for name in ("grant", "authlib", "google", "google-auth"):
            server.route("POST", f"/token/{name}", counter.token)
        for name in (
            "bare",
            "bearer",
            "service",
            "seed",
            "grant",
            "authlib",
            "google",
            "google-auth",
        ):
            server.route("GET", f"/api/{name}/resource", lambda request: Reply(200, {"ok": True}))
        api, token = f"{server.url}/api", f"{server.url}/token"
        suffix = uuid.uuid4().hex[:6]
        slugs = {name: f"bench-{name}-{suffix}" for name in ("bearer", "grant", "google")}

        bare = requests.Session()
        integration(
            slugs["bearer"],
            f"{api}/bearer/",
            "jwt_bearer",
            {"algorithm": "RS256", "claims": {"iss": "bench", "aud": "api"}, "lifetime": 3600},
            {"key": pem},
        )
        bearer = services.get_session(slugs["bearer"])
        service_path = f"{api}/service/resource"

        def seed_recipe() -> requests.Response:
            now = int(time.time())
            claims = {"iss": "bench", "aud": "api", "iat": now, "exp": now + 300}
            jwt_token = jwt.encode(claims, pem, algorithm="RS256")
            return bare.get(
                f"{api}/seed/resource", headers={"Authorization": f"Bearer {jwt_token}"}
            )

        integration(
            slugs["grant"],
            f"{api}/grant/",
            "jwt_grant",
            {"algorithm": "RS256", "claims": {"iss": "bench"}, "token_url": f"{token}/grant"},
            {"key": pem},
        )
        grant = services.get_session(slugs["grant"])

        from authlib.integrations.requests_client import AssertionSession
        from joserfc.jwk import RSAKey

        authlib_session = AssertionSession(
            token_endpoint=f"{token}/authlib",
            issuer="bench",
            subject="bench",
            grant_type=AssertionSession.JWT_BEARER_GRANT_TYPE,
            key=RSAKey.import_key(pem),
            header={"alg": "RS256"},
        )

        def key_file(path: str) -> dict[str, str]:
            return {
                "type": "service_account",
                "project_id": "bench",
                "private_key_id": "bench-key",
                "private_key": pem,
                "client_email": "bench@bench.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{token}/{path}",
            }

        scopes = ["https://www.googleapis.com/auth/cloud-platform"]
        integration(
            slugs["google"],
            f"{api}/google/",
            "google_service_account",
            {"scopes": scopes},
            {"service_account": json.dumps(key_file("google"))},
        )
        google = services.get_session(slugs["google"])

        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(
            key_file("google-auth"), scopes=scopes
        )
        google_auth = AuthorizedSession(credentials)

        # The service session's API path differs from the bearer one only so their
        # tokens can be counted apart; both use the same integration's cache.
        integration_service = slugs["bearer"]
        clients = {
            "bare": Client(
                "bare requests.Session, no credential", lambda: bare.get(f"{api}/bare/resource")
            ),
            "bearer": Client(
                "ours: jwt_bearer RS256 (get_session)", lambda: bearer.get("resource")
            ),
            "service": Client(
                "ours: jwt_bearer RS256 (services.request)",
                lambda: services.request(integration_service, "GET", service_path),
            ),
            "seed": Client(
                "seed recipe: jwt.encode(claims, pem) per call", seed_recipe, SEED_BATCH
            ),
            "grant": Client("ours: jwt_grant RS256", lambda: grant.get("resource")),
            "authlib": Client(
                "authlib AssertionSession (RS256 grant)",
                lambda: authlib_session.get(f"{api}/authlib/resource"),
            ),
            "google": Client("ours: google_service_account", lambda: google.get("resource")),
            "google-auth": Client(
                "google-auth AuthorizedSession",
                lambda: google_auth.get(f"{api}/google-auth/resource"),
            ),
        }
        for client in clients.values():
            client.warm()
        for _ in range(ROUNDS):
            for client in clients.values():
                client.round()
        seen = {
            name: len(
                {
                    r.headers.get("Authorization")
                    for r in server.calls("GET", f"/api/{name}/resource")
                }
            )
            for name in clients
        }

    def obtained(name: str) -> str:
        if name == "bare":
            return "-"
        if name == "seed":
            return f"{clients[name].calls} JWTs signed"
        if name in ("bearer", "service"):
            return f"{seen[name]} JWT signed and reused"
        return f"{counter.counts.get(f'/token/{name}', 0)} token request(s)"

    base = clients["bare"].best
    ours = min(clients["bearer"].best, clients["service"].best)
    print(
        f"Best of {ROUNDS} interleaved rounds of {BATCH} calls ({SEED_BATCH} for the seed "
        "recipe); one loopback server, keep-alive HTTP/1.1.\n"
    )
    print("| client | µs per call | × bare session | calls | tokens obtained |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, client in clients.items():
        print(
            f"| {client.name} | {client.best * 1e6:,.0f} | {client.best / base:.2f} | "
            f"{client.calls} | {obtained(name)} |"
        )
    ratio = clients["seed"].best / ours
    print(f"\nThe seed recipe costs {ratio:.0f}x our cached jwt_bearer per call.")
