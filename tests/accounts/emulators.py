"""Loopback emulators that check a token really belongs to the account it is used for
(security.md #31: githubkit PR #95, a token cached under a key that forgot the account).

``GitHubEmulator``: the app JWT (RS256, verified with joserfc) lists installations
(paged with ``Link``) and buys installation tokens; ``/repos/{owner}/...`` answers only
to a token of the installation that ``owner`` belongs to. ``GrantEmulator``: a
Google-like RFC 7523 grant whose access tokens remember the assertion's ``sub``; its
``/whoami`` answers with it. Both count token requests per account.
"""

from __future__ import annotations

import collections
import re
import threading
import time
import uuid
from typing import Any

from tests import jose
from tests.keys import public_pem, rsa_pem
from tests.loopback import LoopbackServer, Recorded, Reply

API = "/api/v3"


class PatternRoutes(dict[tuple[str, str], Any]):
    """Exact routes first, then (method, regex) routes: the loopback server looks
    handlers up with ``get``."""

    def __init__(self) -> None:
        super().__init__()
        self.patterns: list[tuple[str, re.Pattern[str], Any]] = []

    def get(self, key: tuple[str, str], default: Any = None) -> Any:  # type: ignore[override]
        if key in self:
            return self[key]
        method, path = key
        for wanted, pattern, handler in self.patterns:
            if wanted == method and pattern.fullmatch(path):
                return handler
        return default


class Emulator:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.server = LoopbackServer()
        self.routes = PatternRoutes()
        self.server.routes = self.routes
        self.delay = delay
        self.lock = threading.Lock()
        self.token_requests: collections.Counter[str] = collections.Counter()
        self.tokens: dict[str, str] = {}  # access token -> the account it was minted for

    def pattern(self, method: str, regex: str, handler: Any) -> None:
        self.routes.patterns.append((method, re.compile(regex), handler))

    def issue(self, account: str) -> str:
        token = f"tok-{account}-{uuid.uuid4().hex}"
        with self.lock:
            self.tokens[token] = account
            self.token_requests[account] += 1
        return token

    def owner_of(self, request: Recorded) -> str | None:
        with self.lock:
            return self.tokens.get(request.bearer)

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> Emulator:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


class GitHubEmulator(Emulator):
    """``installations``: id -> account login. The app JWT must verify with the app's
    public key and name the app; an installation token works only for its own
    installation's repositories."""

    def __init__(
        self,
        installations: dict[int, str],
        *,
        per_page: int = 2,
        delay: float = 0.0,
        token_delay: float | None = None,
        public_key: str | None = None,
    ) -> None:
        super().__init__(delay=delay)
        self.token_delay = delay if token_delay is None else token_delay
        self.installations = dict(installations)
        self.per_page = per_page
        # Another process (bench/emulator.py) is told the app's public key.
        self.public_key = public_key or public_pem(rsa_pem())
        self.pattern("POST", rf"{API}/app/installations/(\d+)/access_tokens", self.access_token)
        self.routes[("GET", f"{API}/app/installations")] = self.list_installations
        self.pattern("GET", rf"{API}/repos/([^/]+)/([^/]+)", self.repo)
        self.routes[("GET", f"{API}/installation/repositories")] = self.repositories

    @property
    def base_url(self) -> str:
        return f"{self.url}{API}/"

    def app_jwt_problem(self, request: Recorded) -> str | None:
        try:
            _, claims = jose.verify(request.bearer, self.public_key, "RS256")
        except Exception:
            return "A JSON web token could not be decoded"
        if claims.get("iss") != "Iv1.app" or claims["exp"] - time.time() > 600:
            return "bad app JWT claims"
        return None

    def access_token(self, request: Recorded) -> Reply:
        problem = self.app_jwt_problem(request)
        if problem:
            return Reply(401, {"message": problem})
        installation = int(request.path.split("/")[-2])
        if installation not in self.installations:
            return Reply(404, {"message": "Not Found"})
        if self.token_delay:
            time.sleep(self.token_delay)
        token = self.issue(str(installation))
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return Reply(201, {"token": token, "expires_at": expires})

    def list_installations(self, request: Recorded) -> Reply:
        problem = self.app_jwt_problem(request)
        if problem:
            return Reply(401, {"message": problem})
        page = int(request.query.get("page", ["1"])[0])
        ids = sorted(self.installations)
        chunk = ids[(page - 1) * self.per_page : page * self.per_page]
        body = [{"id": i, "account": {"login": self.installations[i]}} for i in chunk]
        headers = {}
        if page * self.per_page < len(ids):
            nxt = f"{self.url}{API}/app/installations?per_page={self.per_page}&page={page + 1}"
            headers["Link"] = (
                f'<{nxt}>; rel="next", <{self.url}{API}/app/installations>; rel="first"'
            )
        return Reply(200, body, headers)

    def repo(self, request: Recorded) -> Reply:
        owner = request.path.split("/")[-2]
        installation = self.owner_of(request)
        if installation is None:
            return Reply(401, {"message": "Bad credentials"})
        if self.installations.get(int(installation)) != owner:
            # GitHub hides what another installation's token cannot see.
            return Reply(404, {"message": "Not Found"})
        return Reply(200, {"full_name": request.path.split("/repos/")[1]})

    def repositories(self, request: Recorded) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        installation = self.owner_of(request)
        if installation is None:
            return Reply(401, {"message": "Bad credentials"})
        login = self.installations.get(int(installation), "")
        return Reply(200, {"total_count": 1, "repositories": [{"full_name": f"{login}/app"}]})


class GrantEmulator(Emulator):
    """An RFC 7523 grant at ``/token`` (assertion verified with joserfc); the access
    token remembers the assertion's ``sub``, and ``/whoami`` answers with it."""

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.public_key = public_pem(rsa_pem())
        self.routes[("POST", "/token")] = self.token
        self.routes[("GET", "/api/whoami")] = self.whoami

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def token(self, request: Recorded) -> Reply:
        try:
            _, claims = jose.verify(request.form["assertion"], self.public_key, "RS256")
        except Exception:
            return Reply(400, {"error": "invalid_grant"})
        if self.delay:
            time.sleep(self.delay)
        sub = str(claims.get("sub", ""))
        return Reply(
            200, {"access_token": self.issue(sub), "token_type": "Bearer", "expires_in": 3600}
        )

    def whoami(self, request: Recorded) -> Reply:
        sub = self.owner_of(request)
        if sub is None:
            return Reply(
                401,
                {"error": "invalid_token"},
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return Reply(200, {"sub": sub})
