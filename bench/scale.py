"""Scale: test calls over many integrations, on threads and on RQ workers, and pruning
a million call-log rows on PostgreSQL.

- ``integrations_test --parallel 32`` over 1,000 integrations whose API answers after
  100 ms: ideal 1,000 x 0.1 s / 32 = 3.1 s.
- ``integrations_test --enqueue`` over 200 of them with four ``rqworker`` processes,
  once with rq's forking ``Worker`` and once with ``SimpleWorker`` (Redis on
  127.0.0.1:6379, database 6): ideal 200 x 0.1 s / 4 = 5 s. 200, not 1,000,
  keeps the module under two minutes; the per-job cost does not depend on the count.
- ``prune_call_logs`` (what ``integrations_prune_logs`` runs) deleting 1,000,000 rows on
  PostgreSQL (``BENCH_POSTGRES_URL``,
  default ``postgres://postgres@127.0.0.1:5432/integrations_bench``, dropped and created
  afresh): total time and the longest single batch, which bounds how long any lock is held.

Run with ``make bench`` (all modules) or ``python -m bench scale``. A part whose service
is unreachable is skipped with a message.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LATENCY = 0.1
COUNT = 1000
PARALLEL = 32
RQ_COUNT = 200
RQ_WORKERS = 4
# rq's default Worker forks a child per job (isolation); SimpleWorker runs jobs in the
# worker process itself (no fork, connections and the token cache stay warm).
RQ_WORKER_CLASSES = ["rq.worker.Worker", "rq.worker.SimpleWorker"]
PRUNE_ROWS = 1_000_000
KEPT_ROWS = 10_000
REDIS_URL = "redis://127.0.0.1:6379/6"
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/integrations_bench"
)
ROOT = Path(__file__).resolve().parent.parent
PREFIX = "scale-"


@dataclass
class Row:
    what: str
    ideal: float | None
    measured: float | None
    note: str

    def cells(self) -> list[str]:
        ideal = f"{self.ideal:.1f} s" if self.ideal else "-"
        measured = f"{self.measured:.1f} s" if self.measured is not None else "skipped"
        ratio = (
            f"{self.measured / self.ideal:.2f}x"
            if self.ideal and self.measured is not None
            else "-"
        )
        return [self.what, ideal, measured, ratio, self.note]


def run() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    rows = []
    with slow_api() as base_url:
        slugs = create_integrations(base_url, COUNT)
        rows.append(bench_threads(slugs))
        for worker_class in RQ_WORKER_CLASSES:
            rows.append(bench_rq(slugs[:RQ_COUNT], worker_class))
    rows.append(bench_prune())
    print_table(rows)


class SlowHandler(BaseHTTPRequestHandler):
    """Every request answered with a small JSON body after ``LATENCY`` seconds."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(LATENCY)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 32 clients connecting at once must not overflow listen()


@contextmanager
def slow_api() -> Iterator[str]:
    """The remote API in a process of its own, as a remote is: its work does not
    compete with the client's for this interpreter's GIL."""
    server = SlowServer(("127.0.0.1", 0), SlowHandler)
    process = multiprocessing.get_context("fork").Process(
        target=server.serve_forever, daemon=True
    )
    process.start()
    server.socket.close()  # the child serves; the parent only needs the port
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        process.kill()
        process.join()


def create_integrations(base: str, count: int) -> list[str]:
    from integrations.models import Integration
    from tests.keys import HMAC_SECRET

    Integration.objects.filter(slug__startswith=PREFIX).delete()
    integrations = []
    for n in range(count):
        integration = Integration(
            slug=f"{PREFIX}{n:04d}",
            name=f"Scale {n}",
            base_url=f"{base}/api/",
            auth_type="jwt_bearer",
            auth_config={"algorithm": "HS256", "claims": {"aud": f"scale-{n}"}},
            test_request={"method": "GET", "path": "health"},
        )
        integration.set_secrets({"key": HMAC_SECRET})
        integrations.append(integration)
    Integration.objects.bulk_create(integrations)
    return [integration.slug for integration in integrations]


def bench_threads(slugs: list[str]) -> Row:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    started = time.perf_counter()
    try:
        call_command(
            "integrations_test", *slugs, "--parallel", str(PARALLEL), "--json",
            stdout=out, stderr=io.StringIO(),
        )
    except CommandError:
        pass  # counted below
    elapsed = time.perf_counter() - started
    results = json.loads(out.getvalue())
    failed = sum(not item["ok"] for item in results)
    latency = sum(item["duration_ms"] for item in results) / len(results)
    return Row(
        f"integrations_test --parallel {PARALLEL}, {len(slugs)} integrations",
        len(slugs) * LATENCY / PARALLEL,
        elapsed,
        f"{failed} failed; includes selection and writing {len(slugs)} log rows; "
        f"calls took {latency:.0f} ms on average (the API's {LATENCY * 1000:.0f} ms plus "
        "client and machine load)",
    )


def bench_rq(slugs: list[str], worker_class: str) -> Row:
    what = f"RQ, {RQ_WORKERS} x {worker_class.rsplit('.', 1)[1]}, {len(slugs)} integrations"
    ideal = len(slugs) * LATENCY / RQ_WORKERS
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except Exception as exc:
        print(f"RQ part skipped: Redis unreachable at {REDIS_URL} ({exc})", flush=True)
        return Row(what, ideal, None, "Redis unreachable")

    from django.conf import settings
    from django.db.models import Avg, Max, Min

    from integrations.models import CallLog
    from tests.workers import delete_redis_keys, rq_env

    queue = f"bench-scale-{uuid.uuid4().hex[:10]}"
    env = rq_env(settings.DATABASES["default"]["NAME"], REDIS_URL, queue)
    logs = CallLog.objects.filter(integration__slug__in=slugs, source="task")
    logs.delete()
    try:
        with workers(env, queue, client, worker_class):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "integrations_test", *slugs,
                 "--enqueue"],
                cwd=ROOT, env=env, check=True, capture_output=True, timeout=60,
            )
            enqueued = time.perf_counter() - started
            deadline = time.monotonic() + 120
            while logs.count() < len(slugs) and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
    finally:
        delete_redis_keys(client, queue)
    done = logs.count()
    failed = logs.filter(ok=False).count()
    span = logs.aggregate(
        first=Min("created_at"), last=Max("created_at"), latency=Avg("duration_ms")
    )
    per_job = (span["last"] - span["first"]).total_seconds() * RQ_WORKERS / max(1, done - 1)
    return Row(
        what, ideal, elapsed,
        f"{done}/{len(slugs)} done, {failed} failed; includes the enqueueing command "
        f"({enqueued:.1f} s with its start-up); steady state {per_job * 1000:.0f} ms "
        f"per job per worker (ideal {LATENCY * 1000:.0f}), of which the call "
        f"{span['latency']:.0f} ms",
    )


@contextmanager
def workers(env: dict[str, str], queue: str, client: Any, worker_class: str) -> Iterator[None]:
    """``RQ_WORKERS`` rqworker processes, ready (registered) before the block starts."""
    from rq import Queue, Worker

    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", "--job-class",
             "django_tasks_rq.Job", "--worker-class", worker_class, queue],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(RQ_WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while Worker.count(queue=Queue(queue, connection=client)) < RQ_WORKERS:
            if time.monotonic() > deadline:
                raise RuntimeError("the RQ workers did not start within 60 s")
            time.sleep(0.1)
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the current job
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_prune() -> Row:
    what = f"integrations_prune_logs, {PRUNE_ROWS:,} rows, PostgreSQL"
    try:
        import psycopg

        maintenance = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
        name = POSTGRES_URL.rsplit("/", 1)[1]
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"prune part skipped: PostgreSQL unreachable ({exc})", flush=True)
        return Row(what, None, None, "PostgreSQL unreachable")
    env = {**os.environ, "DATABASE_URL": POSTGRES_URL, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "prune"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        print(proc.stderr[-3000:], flush=True)
        return Row(what, None, None, "failed: see above")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Row(
        what, None, result["seconds"],
        f"{result['deleted']:,} deleted in {result['batches']} batches of "
        f"{result['batch_size']:,}; longest batch {result['max_batch_ms']:.0f} ms; "
        f"{result['kept']:,} recent rows kept",
    )


def prune_on_this_database() -> dict[str, Any]:
    """In a subprocess on PostgreSQL: fill the log with old rows, then time the prune,
    measuring each batch (its SELECT and DELETE) through an execute wrapper."""
    from django.core.management import call_command
    from django.db import connection

    from integrations.calllog import prune_call_logs
    from integrations.models import CallLog, Integration

    call_command("migrate", verbosity=0)
    integration = Integration.objects.create(
        slug="prune", name="Prune", base_url="https://example.com/", auth_config={}
    )
    template = CallLog.objects.create(
        integration=integration, source="api", method="GET", url="https://example.com/x",
        status_code=200, ok=True, duration_ms=12,
    )
    table = CallLog._meta.db_table
    columns = [str(f.column) for f in CallLog._meta.concrete_fields if not f.primary_key]

    def copy(age: str) -> str:
        return ", ".join(
            f"now() - interval '{age}' - g * interval '1 second'" if c == "created_at" else c
            for c in columns
        )

    with connection.cursor() as cursor:
        for count, age in [(PRUNE_ROWS, "40 days"), (KEPT_ROWS, "0 days")]:
            # Identifiers come from the model's metadata, values are parameters.
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {copy(age)} "  # noqa: S608
                f"FROM {table}, generate_series(1, %s) AS g WHERE {table}.id = %s",
                [count, template.pk],
            )
        template.delete()
        cursor.execute(f"ANALYZE {table}")

    statements: list[tuple[str, float]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((sql.split(None, 1)[0].upper(), time.perf_counter() - started))

    batch_size = 10_000
    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        deleted = prune_call_logs(older_than_days=30, batch_size=batch_size)
    seconds = time.perf_counter() - started
    batches, current = [], 0.0
    for kind, duration in statements:
        current += duration
        if kind == "DELETE":
            batches.append(current)
            current = 0.0
    return {
        "seconds": seconds,
        "deleted": deleted,
        "batches": len(batches),
        "batch_size": batch_size,
        "max_batch_ms": max(batches, default=0.0) * 1000,
        "kept": CallLog.objects.count(),
    }


def print_table(rows: list[Row]) -> None:
    header = ["benchmark", "ideal", "measured", "vs ideal", "notes"]
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for index, line in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__" and sys.argv[1:] == ["prune"]:
    import django

    django.setup()
    print(json.dumps(prune_on_this_database()))
