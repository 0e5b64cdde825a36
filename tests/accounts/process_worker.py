"""A separate process for the cross-process account test (run with ``python -m``).

``setup SLUG BASE_URL COUNT`` migrates the SQLite file named by DATABASE_URL and creates
a github_app integration (the key from WORKER_KEY) with accounts acct-1..acct-COUNT
(installation ids 1..COUNT); ``call SLUG COUNT`` prints "ready", waits for a line on
stdin, then calls the API for every account at once (a thread each) through the
service layer and prints {account: [status, body's full_name, token]} as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.accounts.redis_settings")
    import django

    django.setup()
    from django.core.management import call_command

    from integrations import services
    from integrations.models import Account, Integration

    mode, slug, count = argv[0], argv[1], int(argv[-1])
    if mode == "setup":
        call_command("migrate", verbosity=0)
        integration = Integration(
            slug=slug, name=slug, base_url=argv[2], auth_type="github_app",
            auth_config={"app_id": "Iv1.app"}, log_calls="none",
            test_request={"method": "GET", "path": "installation/repositories"},
        )
        integration.set_secrets({"private_key": os.environ["WORKER_KEY"]})
        integration.full_clean()
        integration.save()
        for n in range(1, count + 1):
            Account.objects.create(
                integration=integration, key=f"acct-{n}", options={"installation_id": str(n)}
            )
        return
    keys = [f"acct-{n}" for n in range(1, count + 1)]
    for key in keys:  # sessions built before the start: only the calls race
        services.get_session(slug, key)
    results: dict[str, Any] = {}
    print("ready", flush=True)
    sys.stdin.readline()

    def call(key: str) -> None:
        response = services.request(slug, "GET", "installation/repositories", account=key)
        token = response.request.headers["Authorization"].removeprefix("Bearer ")
        names = [r["full_name"] for r in response.json().get("repositories", [])]
        results[key] = [response.status_code, names, token]

    threads = [threading.Thread(target=call, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
