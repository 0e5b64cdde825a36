"""``kill -9`` in the middle of the commands that rewrite many rows (security.md #8, #9).

- ``integrations_import`` of 3,000 entries is one transaction: SIGKILLed after it has
  started writing, the database holds none of them (all or none), and a re-run imports
  them all.
- ``integrations_rotate_keys`` commits batch by batch: SIGKILLed after some batches,
  every secret still decrypts with the ring (old and new keys), a re-run completes, and
  then the old key can be removed.

Both run as real ``manage.py`` processes on a SQLite file (WAL, as the project
configures it), with production-like settings.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from integrations.crypto import key_id, parse_key
from tests.child import ROOT, manage_env, run

pytestmark = pytest.mark.slow

ENTRIES = 3000
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def secret_of(slug: str) -> str:
    return f"kill-9-secret-{slug}-4f9c1e7a2b8d6053e1a9c7f2b4d8e6a0"


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(["manage.py", *args], env)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (polled, bounded); fails if the
    process ended first (it finished too soon to be killed mid-way)."""
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"{what} ended before the kill: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"{what} never got going"
        time.sleep(0.01)
    assert process.poll() is None, f"{what} ended before the kill"
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL


def rows(db: Path, where: str = "1", *params: str) -> int:
    """Committed integration rows (SQLite recovers the killed writer's WAL on open)."""
    with sqlite3.connect(db, timeout=20) as reader:
        query = f"SELECT count(*) FROM integrations_integration WHERE {where}"  # noqa: S608
        return int(reader.execute(query, params).fetchone()[0])


def writing(db: Path) -> bool:
    """True while another connection holds SQLite's write lock (the import's
    transaction: the project begins transactions IMMEDIATE, taking it at BEGIN)."""
    probe = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    finally:
        probe.close()


@pytest.fixture
def site(tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = manage_env(tmp_path, OLD)
    assert manage(env, "migrate", "-v0").returncode == 0
    return env, tmp_path / "db.sqlite3"


def test_kill_9_during_an_import_leaves_all_or_none(
    site: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, db = site
    entries = [
        {
            "slug": f"api-{i:05d}",
            "base_url": f"https://api{i}.example.com/v1/",
            "auth": {"type": "jwt_bearer", "algorithm": "HS256", "key": secret_of(f"api-{i:05d}")},
        }
        for i in range(ENTRIES)
    ]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"integrations": entries}))

    process = start(env, "integrations_import", str(config))
    started: list[float] = []

    def a_second_into_writing() -> bool:
        if not started and writing(db):
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] > 1.0

    kill_when(process, a_second_into_writing, "the import")
    assert rows(db) == 0  # none: the killed transaction left nothing behind

    again = manage(env, "integrations_import", str(config))
    assert again.returncode == 0, again.stderr
    assert rows(db) == ENTRIES


CREATE = """
from integrations.models import Integration
rows = []
for i in range({count}):
    row = Integration(slug=f"api-{{i:05d}}", name="API", base_url="https://api.example.com/",
                      auth_type="jwt_bearer", auth_config={{"algorithm": "HS256"}})
    row.set_secrets({{"key": "kill-9-secret-" + row.slug + "-4f9c1e7a2b8d6053e1a9c7f2b4d8e6a0"}})
    rows.append(row)
Integration.objects.bulk_create(rows, batch_size=500)
"""

CHECK = """
import json
from integrations.models import Integration
good = sum(
    row.get_secrets() == {"key": "kill-9-secret-" + row.slug + "-4f9c1e7a2b8d6053e1a9c7f2b4d8e6a0"}
    for row in Integration.objects.all()
)
print(json.dumps({"readable": good}))
"""


def readable(env: dict[str, str], keys: str) -> int:
    """How many rows decrypt to their own secret with the ring ``keys`` (a child that
    raises on any unreadable row, so a failure shows in its stderr)."""
    checked = run(
        ["manage.py", "shell", "-c", CHECK], {**env, "INTEGRATIONS_ENCRYPTION_KEYS": keys}
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    return int(json.loads(checked.stdout.strip().splitlines()[-1])["readable"])


def test_kill_9_during_key_rotation_leaves_every_secret_readable(
    site: tuple[dict[str, str], Path],
) -> None:
    env, db = site
    made = run(["manage.py", "shell", "-c", CREATE.format(count=ENTRIES)], env)
    assert made.returncode == 0, made.stderr[-2000:]
    ring = f"{NEW},{OLD}"
    under_new = f"enc:v1:{key_id(parse_key(NEW))}:%"

    process = start(
        {**env, "INTEGRATIONS_ENCRYPTION_KEYS": ring},
        "integrations_rotate_keys",
        "--batch-size",
        "5",
    )
    kill_when(process, lambda: rows(db, "encrypted_secrets LIKE ?", under_new) > 0, "rotation")
    rotated = rows(db, "encrypted_secrets LIKE ?", under_new)
    assert 0 < rotated < ENTRIES  # killed mid-way: some batches committed, not all
    assert readable(env, ring) == ENTRIES  # every secret, rotated or not, still decrypts

    again = manage({**env, "INTEGRATIONS_ENCRYPTION_KEYS": ring}, "integrations_rotate_keys")
    assert again.returncode == 0, again.stderr
    assert f"Rotated {ENTRIES - rotated}, already current {rotated}, failed 0." in again.stderr
    assert readable(env, NEW) == ENTRIES  # the old key can go
