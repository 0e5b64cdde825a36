"""``make demo``: a real JWT-authenticated call, end to end, on loopback.

Starts the demo API (``project.demo_api``, which verifies HS256 JWTs the way a remote
provider would), imports a demo integration from a configuration file (its shared
secret read from an environment variable, as in production), fires the test call and
one call through the Python API, and prints the results and the logged row.

Runs against ``DATABASE_URL`` (the project's SQLite file by default), migrating it
first. Exit status 0 when the test call passed.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

SLUG = "demo"
LOGGED_FIELDS = (
    "id", "created_at", "source", "is_test", "method", "url", "status_code", "ok",
    "duration_ms", "attempts", "token_kid", "token_jti", "error",
)  # fmt: skip


def configure_environment() -> None:
    """Settings for a local demo: DEBUG (dev keys unless the environment has its own),
    and loopback allowed, since the demo API listens on 127.0.0.1."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ["INTEGRATIONS_ALLOW_PRIVATE_NETWORKS"] = "true"


def demo_config(base_url: str) -> dict[str, Any]:
    """The configuration file the demo imports: the shape reference.md documents."""
    return {
        "integrations": [
            {
                "slug": SLUG,
                "name": "Demo API",
                "base_url": base_url,
                "headers": {"Accept": "application/json"},
                "timeout": 5,
                "test_request": {"method": "GET", "path": "health", "expect_status": [200]},
                "auth": {
                    "type": "jwt_bearer",
                    "algorithm": "HS256",
                    "key": {"env": "DEMO_API_SECRET"},
                    "key_id": "demo-2026",
                    "claims": {
                        "iss": "demo-shop",
                        "sub": "make-demo",
                        "aud": "demo-api",
                        "jti": True,
                    },
                    "lifetime": 300,
                },
            }
        ]
    }


def step(number: int, text: str) -> None:
    print(f"\n{number}. {text}")


def show(label: str, value: object) -> None:
    print(f"     {label:<13}{value}")


def main() -> int:
    configure_environment()
    import django

    django.setup()
    from django.core.management import CommandError, call_command

    from integrations import services
    from integrations.models import CallLog, Integration
    from project.demo_api import AUDIENCE, DemoAPI

    print("Integrations demo: a JWT-authenticated call to an API that verifies it")
    call_command("migrate", verbosity=0)

    secret = secrets.token_urlsafe(48)
    os.environ["DEMO_API_SECRET"] = secret
    api = DemoAPI(secret).start()
    try:
        step(1, "Demo API started (it accepts only HS256 JWTs signed with its secret)")
        show("listening", api.url)
        show("requires", f"Authorization: Bearer <JWT> with aud={AUDIENCE}, current exp, iat")

        step(2, "Configuration imported with `manage.py integrations_import`")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "integrations.json"
            path.write_text(json.dumps(demo_config(api.url), indent=2))
            try:
                call_command("integrations_import", str(path), stderr=io.StringIO())
            except CommandError as exc:
                print(f"     import refused: {exc}", file=sys.stderr)
                return 1
        integration = Integration.objects.get(slug=SLUG)
        show("integration", f"{integration.slug} ({integration.auth_type}, HS256)")
        show("secret", "read from $DEMO_API_SECRET, stored AES-GCM encrypted: "
             f"{integration.encrypted_secrets[:24]}…")  # fmt: skip

        step(3, "Test call (`services.run_test`, as the admin button and integrations_test do)")
        row = services.run_test(SLUG, source="command")
        verdict = "OK" if row.ok else "FAILED"
        show(
            "result",
            f"{verdict}  {row.method} {row.url} -> {row.status_code} in {row.duration_ms} ms",
        )
        if row.error:
            show("error", row.error)

        step(4, "A call from application code (`services.request`)")
        response = services.request(SLUG, "GET", "/whoami")
        show("status", response.status_code)
        show("API verified", json.dumps(response.json().get("claims", {}), sort_keys=True))

        step(5, f"The test call's row in the call log (CallLog #{row.pk})")
        logged = CallLog.objects.filter(pk=row.pk).values(*LOGGED_FIELDS).first() or {}
        for name, value in logged.items():
            show(name, value if value != "" else "-")
        print("\nNo token, key or Authorization header is stored in the log.")
        print(
            "Next: `make test` runs the test suite; `.venv/bin/python manage.py "
            "integrations_export` prints the configuration without secrets."
        )
        return 0 if row.ok else 1
    finally:
        api.shutdown()
        api.server_close()


if __name__ == "__main__":
    sys.exit(main())
