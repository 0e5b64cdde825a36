"""``make demo``: a real JWT-authenticated call, end to end, on loopback.

Starts the demo API, imports a demo integration from a configuration file (its shared
secret read from an environment variable, as in production), fires the test call
through the service layer and prints the result and the logged row.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()
    from django.core.management import call_command

    from integrations.models import CallLog
    from integrations.services import run_test
    from project.demo_api import DemoAPI

    call_command("migrate", verbosity=0)
    secret = secrets.token_urlsafe(48)
    os.environ["DEMO_API_SECRET"] = secret
    api = DemoAPI(secret).start()
    config = {
        "integrations": [
            {
                "slug": "demo",
                "name": "Demo API",
                "base_url": api.url,
                "headers": {"Accept": "application/json"},
                "timeout": 5,
                "test_request": {"method": "GET", "path": "health", "expect_status": [200]},
                "auth": {
                    "type": "jwt_bearer",
                    "algorithm": "HS256",
                    "key": {"env": "DEMO_API_SECRET"},
                    "claims": {"iss": "demo-shop", "sub": "make-demo", "aud": "demo-api", "jti": True},
                    "lifetime": 300,
                },
            }
        ]
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "integrations.json"
        path.write_text(json.dumps(config))
        call_command("integrations_import", str(path))

    print(f"Demo API (verifies HS256 JWTs) listening at {api.url}")
    row = run_test("demo", source="command")
    print(f"Test call: {'OK' if row.ok else 'FAILED'} {row.method} {row.url} -> {row.status_code} in {row.duration_ms} ms")
    if row.error:
        print(f"Error: {row.error}")
    logged = CallLog.objects.filter(integration__slug="demo").order_by("-id").values(
        "id", "source", "method", "url", "status_code", "ok", "duration_ms", "attempts",
        "token_jti", "created_at",
    ).first()
    print("Logged row:", json.dumps(logged, default=str, indent=2))
    api.shutdown()
    return 0 if row.ok else 1


if __name__ == "__main__":
    sys.exit(main())
