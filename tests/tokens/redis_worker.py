"""A separate process for the cross-process cache test (run with ``python -m``).

``setup SLUG TOKEN_URL API_URL`` migrates the SQLite file named by DATABASE_URL and
creates a jwt_grant integration; ``call SLUG`` prints "ready", waits for a line on
stdin, makes one call through the service layer and prints its status and token.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from integrations import services
    from integrations.models import Integration

    mode, slug = argv[0], argv[1]
    if mode == "setup":
        token_url, api_url = argv[2], argv[3]
        call_command("migrate", verbosity=0)
        integration = Integration(
            slug=slug,
            name=slug,
            base_url=api_url,
            auth_type="jwt_grant",
            auth_config={"algorithm": "RS256", "claims": {"iss": "shop"}, "token_url": token_url},
            log_calls="none",
        )
        integration.set_secrets({"key": os.environ["WORKER_KEY"]})
        integration.full_clean()
        integration.save()
        return
    print("ready", flush=True)
    sys.stdin.readline()
    response = services.request(slug, "GET", "resource")
    sent = response.request.headers["Authorization"].removeprefix("Bearer ")
    print(json.dumps({"status": response.status_code, "token": sent}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
