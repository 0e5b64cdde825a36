"""Run management commands in-process (call_command) or as a real subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str


class TTY(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run(name: str, *args: str, err: io.StringIO | None = None) -> Ran:
    """call_command with stdout and stderr captured; CommandError becomes its exit code."""
    out, err = io.StringIO(), err or io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        return Ran(exc.returncode, out.getvalue(), err.getvalue())
    return Ran(0, out.getvalue(), err.getvalue())


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> Ran:
    """``manage.py`` in a subprocess with the test settings and ``env``."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)
