"""Entries of a configuration file for tests, and running the import on them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.keys import CANARY, HMAC_SECRET


def entry(slug: str = "billing", **changes: Any) -> dict[str, Any]:
    """A valid entry; ``auth`` in ``changes`` is merged into the default auth (None
    leaves auth out)."""
    auth: dict[str, Any] | None = {
        "type": "jwt_bearer",
        "algorithm": "HS256",
        "key": {"env": "BILLING_SECRET"},
        "claims": {"iss": "shop", "aud": "billing"},
        "lifetime": 300,
    }
    auth_changes = changes.pop("auth", {})
    if auth_changes is None:
        auth = None
    else:
        auth.update(auth_changes)
    data: dict[str, Any] = {
        "slug": slug,
        "name": f"{slug.title()} API",
        "base_url": f"https://{slug}.example.com/api/",
        "enabled": True,
        "headers": {"Accept": "application/json"},
        "timeout": 10,
        "log_calls": "all",
        "test_request": {"method": "GET", "path": "health", "expect_status": [200]},
    }
    if auth is not None:
        data["auth"] = auth
    data.update(changes)
    return data


def write(folder: Path, *entries: dict[str, Any], name: str = "config.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"integrations": list(entries)}))
    return path


def import_file(path: Path) -> str:
    """Run integrations_import; its stderr."""
    err = io.StringIO()
    call_command("integrations_import", str(path), stderr=err)
    return err.getvalue()


def refused(path: Path) -> CommandError:
    with pytest.raises(CommandError) as caught:
        import_file(path)
    assert caught.value.returncode != 0
    message = str(caught.value)
    assert "\n" not in message and CANARY not in message
    return caught.value


@pytest.fixture(autouse=True)
def secret_env(monkeypatch):
    monkeypatch.setenv("BILLING_SECRET", HMAC_SECRET)


def preset(slug: str, auth: dict[str, Any]) -> dict[str, Any]:
    """An entry whose auth is exactly ``auth`` (a preset's own fields)."""
    data = entry(slug)
    data["auth"] = auth
    return data
