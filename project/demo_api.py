"""A small JWT-verifying API for the demo: what a remote provider does on its side.

Serves ``GET /api/health`` and ``GET /api/whoami`` (which echoes the verified claims) on
loopback; every request must carry ``Authorization: Bearer <HS256 JWT>`` signed with the
shared secret, with ``aud`` = ``demo-api``, a current ``exp`` and an ``iat`` not in the
future. Anything else is 401.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

AUDIENCE = "demo-api"


class DemoAPI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secret: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.secret = secret

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/"

    def start(self) -> DemoAPI:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


class _Handler(BaseHTTPRequestHandler):
    server: DemoAPI
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        claims, problem = self._verify()
        if problem:
            self._reply(401, {"error": "invalid_token", "error_description": problem})
        elif self.path.split("?")[0] == "/api/health":
            self._reply(200, {"ok": True})
        elif self.path.split("?")[0] == "/api/whoami":
            # Claims are not secret; echoing them shows what the API verified.
            self._reply(200, {"ok": True, "claims": claims})
        else:
            self._reply(404, {"error": "not_found"})

    def _verify(self) -> tuple[dict[str, Any], str]:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return {}, "missing bearer token"
        try:
            claims = jwt.decode(
                token,
                self.server.secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            return {}, f"token refused: {exc}"
        return claims, ""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo prints its own summary
