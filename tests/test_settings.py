"""project.settings read from the environment (reference.md: Settings): safe production defaults,
dev-only values only with DEBUG, a .env file read when present (security.md #6, #11)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.child import ROOT, clean_env, run

SHOW = """
import json
from project import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY": s.SECRET_KEY,
    "KEYS": s.INTEGRATIONS_ENCRYPTION_KEYS,
    "PRIVATE": s.INTEGRATIONS_ALLOW_PRIVATE_NETWORKS,
    "HOSTS": s.ALLOWED_HOSTS,
    "DB_ENGINE": s.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(s.DATABASES["default"]["NAME"]),
    "CACHE": s.CACHES["default"]["BACKEND"],
    "RETENTION": s.INTEGRATIONS_LOG_RETENTION_DAYS,
    "BASE_DIR": str(s.BASE_DIR),
}))
"""
KEY = "Hk3c9mN0Lr4bYq2VxW8zT1sD6fJ5gP7aEuQoRiMnBcY="


def settings_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """A clean environment reading an empty ENV_FILE (so no developer's .env leaks in)."""
    empty = tmp_path / "empty.env"
    empty.touch()
    return clean_env(ENV_FILE=str(empty), **variables)


def load(env: dict[str, str], root: Path = ROOT) -> dict[str, Any]:
    """The settings ``project.settings`` (under ``root``) computes in ``env``."""
    done = run(["-c", SHOW], env, cwd=root)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_production_without_secret_key_refuses_to_start(tmp_path):
    """reference.md settings: with DJANGO_DEBUG unset and no DJANGO_SECRET_KEY, importing the
    settings fails with ImproperlyConfigured naming the variable."""
    done = run(["-c", SHOW], settings_env(tmp_path))
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "DJANGO_SECRET_KEY" in done.stderr


def test_production_defaults_are_safe(tmp_path):
    """reference.md settings, security.md #6, #11: DEBUG off, no storage key, private networks off,
    default hosts, SQLite next to manage.py, local-memory cache, 30 days of logs."""
    values = load(settings_env(tmp_path, DJANGO_SECRET_KEY="prod-secret-" + "x" * 40))
    assert values["DEBUG"] is False
    assert values["KEYS"] == [] and values["PRIVATE"] is False
    assert values["HOSTS"] == ["localhost", "127.0.0.1"]
    assert values["DB_ENGINE"] == "django.db.backends.sqlite3"
    assert values["DB_NAME"] == str(ROOT / "db.sqlite3")
    assert values["CACHE"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["RETENTION"] == 30


def test_debug_gets_dev_only_values(tmp_path):
    """reference.md settings: with DJANGO_DEBUG=true a dev-only SECRET_KEY and storage key are
    used and private networks are allowed, each overridable."""
    values = load(settings_env(tmp_path, DJANGO_DEBUG="true"))
    assert values["DEBUG"] is True and values["SECRET_KEY"].startswith("dev-only")
    assert len(values["KEYS"]) == 1 and values["PRIVATE"] is True
    values = load(
        settings_env(
            tmp_path,
            DJANGO_DEBUG="true",
            INTEGRATIONS_ENCRYPTION_KEYS=KEY,
            INTEGRATIONS_ALLOW_PRIVATE_NETWORKS="false",
        )
    )
    assert values["KEYS"] == [KEY] and values["PRIVATE"] is False


def test_env_file_is_read_and_environment_wins(tmp_path):
    """reference.md settings: ENV_FILE's values apply; a variable set in the environment wins."""
    env_file = tmp_path / "deploy.env"
    env_file.write_text(
        "DJANGO_SECRET_KEY=from-file-" + "y" * 40 + "\n"
        f"INTEGRATIONS_ENCRYPTION_KEYS={KEY},{KEY[::-1]}\n"
        "DATABASE_URL=postgres://app@db.internal:5432/integrations\n"
        "CACHE_URL=redis://127.0.0.1:6379/3\n"
        "DJANGO_ALLOWED_HOSTS=file.example.com\n"
        "INTEGRATIONS_LOG_RETENTION_DAYS=7\n"
    )
    env = clean_env(ENV_FILE=str(env_file), DJANGO_ALLOWED_HOSTS="api.example.com,example.com")
    values = load(env)
    assert values["SECRET_KEY"].startswith("from-file-")
    assert values["KEYS"] == [KEY, KEY[::-1]]
    assert values["DB_ENGINE"] == "django.db.backends.postgresql"
    assert values["DB_NAME"] == "integrations"
    assert values["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert values["HOSTS"] == ["api.example.com", "example.com"]
    assert values["RETENTION"] == 7


def test_missing_env_file_is_a_clear_error(tmp_path):
    """An ENV_FILE that does not exist stops start-up with its name, not silently."""
    done = run(["-c", SHOW], clean_env(ENV_FILE=str(tmp_path / "nope.env")))
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "nope.env does not exist" in done.stderr


def test_dot_env_next_to_manage_py_is_read(tmp_path):
    """reference.md settings: without ENV_FILE, BASE_DIR/.env is read when present (checked on a
    copy of the project, so this checkout's own .env is never touched)."""
    shutil.copytree(ROOT / "project", tmp_path / "project")
    (tmp_path / ".env").write_text("DJANGO_DEBUG=true\nINTEGRATIONS_LOG_RETENTION_DAYS=90\n")
    values = load(clean_env(), root=tmp_path)
    assert values["BASE_DIR"] == str(tmp_path)
    assert values["DEBUG"] is True and values["RETENTION"] == 90
    assert values["DB_NAME"] == str(tmp_path / "db.sqlite3")


def test_sqlite_runs_in_wal_mode_with_queued_writers(tmp_path):
    """A SQLite database file is opened in WAL mode with synchronous=NORMAL (readers do
    not wait for the call-log writer, no fsync per logged call) and IMMEDIATE
    transactions (writers queue instead of failing with "database is locked")."""
    probe = """
import django, json
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    mode = cursor.fetchone()[0]
    cursor.execute("PRAGMA synchronous")
    synchronous = cursor.fetchone()[0]
print(json.dumps([mode, synchronous, connection.settings_dict["OPTIONS"]["transaction_mode"]]))
"""
    env = settings_env(
        tmp_path,
        DJANGO_DEBUG="true",
        DJANGO_SETTINGS_MODULE="project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    done = run(["-c", probe], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["wal", 1, "IMMEDIATE"]
