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


def manage(
    *args: str,
    env: dict[str, str] | None = None,
    err: io.StringIO | None = None,
    timeout: float = 60,
) -> Ran:
    """Run ``manage.py`` with ``args``: in-process (call_command, stdout and stderr
    captured, a CommandError as its exit code), or with ``env`` in a subprocess with the
    test settings and ``env`` over the environment."""
    if env is not None:
        full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)
    name, *rest = args
    out, err = io.StringIO(), err or io.StringIO()
    try:
        call_command(name, *rest, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        return Ran(exc.returncode, out.getvalue(), err.getvalue())
    return Ran(0, out.getvalue(), err.getvalue())
