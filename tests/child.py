"""Child Django processes for tests that need a real process: settings import, files on
disk, manage.py's stderr. The environment is scrubbed so only what a test sets applies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN_VARIABLES = {"DATABASE_URL", "CACHE_URL", "ENV_FILE"}

# For tests that fork on purpose (fan_out's workers, a signer's reset at the fork): they
# fork while this process runs the loopback servers of fixtures on threads, which the
# child never uses, so Python 3.12+'s warning about forking a multi-threaded process is
# expected there (a child that deadlocked could not pass its test: its results would
# never arrive).
FORKS = pytest.mark.filterwarnings(
    r"ignore:This process \(pid=\d+\) is multi-threaded, use of fork\(\):DeprecationWarning"
)


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment minus every Django, integrations and settings variable, plus
    ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "INTEGRATIONS_")) and name not in OWN_VARIABLES
    }
    env.update(extra)
    return env


def run(
    args: list[str], env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` (in the project root by default) and capture its text output."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def manage_env(tmp_path: Path, key: str, **extra: str) -> dict[str, str]:
    """Production-like settings (DEBUG off) on a SQLite file in ``tmp_path``."""
    empty = tmp_path / "empty.env"
    empty.touch()
    return clean_env(
        DJANGO_SETTINGS_MODULE="project.settings",
        ENV_FILE=str(empty),
        DJANGO_SECRET_KEY="child-process-secret-key-0123456789-abcdefghijklmnop",
        INTEGRATIONS_ENCRYPTION_KEYS=key,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **extra,
    )
