"""Service-layer benchmark: what a call through ``integrations.services`` costs, on
SQLite and on PostgreSQL.

One loopback API server, in its own process (so its work does not share our GIL),
answers every client over keep-alive HTTP/1.1 with a small fixed JSON body. Clients
take turns in rounds so drift hits them alike; each figure is its best round. Each
database gets its own child process and table, with every client measured again in it:

- per call, one thread: a bare ``requests.Session`` with a fixed Authorization header
  (the floor), ours with a cached RS256 token and ``log_calls=none``, ours with
  ``log_calls=all`` (one CallLog row per call) with each log writer (on PostgreSQL also
  the in-call writer waiting for the WAL flush, ``LOG_SYNCHRONOUS_COMMIT``, and with
  the database's ``OPTIONS["prepare_threshold"]`` set), the floor of any in-call writer
  (the bare call plus the same INSERT sent straight on the driver) and below it the
  bare call plus a ``SELECT 1`` (a database round trip that writes nothing), the seed
  recipe (a bare session signing a JWT from the PEM on every call), authlib's
  AssertionSession and google-auth's AuthorizedSession (both with cached tokens from a
  loopback endpoint);
- 32 threads sharing one integration for 10,000 calls: throughput, errors, and
  whether the CallLog holds exactly one row per call.

SQLite is a file in WAL mode as project/settings.py configures it; PostgreSQL a scratch
database (``integrations_bench``) on 127.0.0.1:5432, created and dropped by the run
(skipped when unreachable). Targets (issue 4, issue 14): ≤ 1.05x the bare session with
log_calls=none; with log_calls=all ≤ 1.10x with the background writer, ≤ 1.25x (SQLite)
and ≤ 1.50x (PostgreSQL) with the row written in the call. Nothing is asserted; the
tables are printed for reading.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import django
import jwt
import requests

from bench.postgres import measure_in_scratch_database

# Many short rounds rather than a few long ones: on a shared 2-CPU host the quiet
# stretches are short, and each client's best round should fall in one.
ROUNDS = 12
CALLS_PER_ROUND = 200
SEED_CALLS_PER_ROUND = 10  # parsing the PEM per call makes the seed recipe ~50x slower
THREADS = 32
THREADED_CALLS = 10_000
SQLITE_FILE = Path(tempfile.gettempdir()) / "integrations-bench-calls.sqlite3"
POSTGRES_DATABASE = "integrations_bench"

def json_response(body: bytes) -> bytes:
    """A keep-alive HTTP/1.1 200 answer with this JSON body."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )


_OK_RESPONSE = json_response(b'{"ok": true}')
_TOKEN_RESPONSE = json_response(
    json.dumps(
        {"access_token": "bench-access-token", "token_type": "Bearer", "expires_in": 3600}
    ).encode()
)


class LoopbackAPI(asyncio.Protocol):
    """Just enough HTTP/1.1: heads, Content-Length bodies, keep-alive; ``answer`` says
    what a request gets (here a token for ``POST /token``, else the OK body)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            lines = head.split(b"\r\n")
            fields = dict(line.lower().split(b":", 1) for line in lines[1:] if b":" in line)
            length = int(fields.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.answer(head, fields))

    def answer(self, head: bytes, fields: dict[bytes, bytes]) -> bytes:
        """The answer to a request with this head and header fields (names lower case)."""
        return _TOKEN_RESPONSE if head.startswith(b"POST /token") else _OK_RESPONSE


def serve(conn: Connection, protocol: type[LoopbackAPI] = LoopbackAPI) -> None:
    """The API server process: reports its port, serves until terminated."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=256)
        conn.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def _integration(slug: str, base_url: str, log_calls: str, pem: str) -> None:
    from integrations.models import Integration

    row = Integration(
        slug=slug,
        name=slug,
        base_url=base_url,
        auth_type="jwt_bearer",
        auth_config={
            "algorithm": "RS256",
            "claims": {"iss": "bench", "aud": "api"},
            "lifetime": 3600,
        },
        log_calls=log_calls,
    )
    row.set_secrets({"key": pem})
    row.full_clean()
    row.save()


def _log_settings(**values: Any) -> None:
    """Set INTEGRATIONS_<name> settings (LOG_WRITER, LOG_SYNCHRONOUS_COMMIT) for the next
    calls, and on PostgreSQL the connection's prepare_threshold (what the database's
    OPTIONS["prepare_threshold"] sets); the ones not named go back to their defaults."""
    from django.conf import settings
    from django.db import connection

    from integrations.settings import app_settings

    if connection.vendor == "postgresql":
        connection.ensure_connection()
        connection.connection.prepare_threshold = values.get("prepare_threshold")

    for name in ("LOG_WRITER", "LOG_SYNCHRONOUS_COMMIT"):
        if name in values:
            setattr(settings, f"INTEGRATIONS_{name}", values[name])
        elif hasattr(settings, f"INTEGRATIONS_{name}"):
            delattr(settings, f"INTEGRATIONS_{name}")
    app_settings.reload()


def _round(
    call: Callable[[], requests.Response], calls: int, options: dict[str, Any]
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) per call; with the background
    log writer, the time to write the queued rows is included."""
    from integrations.calllog import writer as background

    _log_settings(**options)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        if call().status_code != 200:
            raise RuntimeError("benchmark call did not answer 200")
    background.flush(close=False)  # a running site keeps its connection
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def _followed_by(
    call: Callable[[], requests.Response], sql: str, params: list[Any] | None = None
) -> Callable[[], requests.Response]:
    """``call`` followed by ``sql`` (in the driver's own parameter style) sent straight
    on the driver the in-call writer uses (sqlite3, or its own psycopg cursor), waiting
    for the answer as it does."""
    from django.db import connection

    from integrations.calllog import insert

    connection.ensure_connection()
    if connection.vendor == "sqlite":
        raw = connection.connection

        def then() -> None:
            raw.execute(sql, params or ())
    else:
        cursor = insert._driver_cursor(connection)

        def then() -> None:
            cursor.execute(sql, params)  # prepared as ours would be

    def followed() -> requests.Response:
        response = call()
        then()
        return response

    return followed


def _floor_of_in_call_writers(
    call: Callable[[], requests.Response], slug: str
) -> Callable[[], requests.Response]:
    """``call`` followed by the in-call writer's own INSERT of a row built once
    beforehand, sent straight on the driver: the least any writer that commits the row
    before the call returns can cost on this machine (a second round trip, to the
    database)."""
    from django.db import connection

    from integrations.calllog import insert, row_values
    from integrations.http.outcome import Outcome
    from integrations.models import Integration

    integration = Integration.objects.get(slug=slug)
    values = row_values(
        integration, "api", Outcome("GET", "http://127.0.0.1/api/resource", 0.0), ok=True
    )
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        sql = insert._qmark(insert._sql(connection))
    else:
        sql = insert._postgresql_statement(connection, returning=False)
    return _followed_by(call, sql, insert._params(values, connection))


def _floor_of_round_trips(call: Callable[[], requests.Response]) -> Callable[[], requests.Response]:
    """``call`` followed by ``SELECT 1`` on the driver: what one database round trip in
    the call costs on this machine before the database does any work for a row."""
    return _followed_by(call, "SELECT 1")


def _threaded(slug: str, writer: str) -> tuple[float, int, int]:
    """(calls per second, errors, rows written) for THREADED_CALLS over THREADS."""
    from django.db import connections

    from integrations import services
    from integrations.calllog import writer as background
    from integrations.models import CallLog

    _log_settings(LOG_WRITER=writer)
    session = services.get_session(slug)
    before = CallLog.objects.filter(integration__slug=slug).count()
    per_thread = THREADED_CALLS // THREADS
    extra = THREADED_CALLS - per_thread * THREADS
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS + 1)

    def work(calls: int) -> None:
        nonlocal errors
        barrier.wait()
        failed = 0
        for _ in range(calls):
            try:
                if session.get("resource").status_code != 200:
                    failed += 1
            except Exception:
                failed += 1
        with lock:
            errors += failed
        connections.close_all()

    workers = [
        threading.Thread(target=work, args=(per_thread + (1 if n < extra else 0),))
        for n in range(THREADS)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    background.flush(close=False)
    elapsed = time.perf_counter() - started
    rows = CallLog.objects.filter(integration__slug=slug).count() - before
    return THREADED_CALLS / elapsed, errors, rows


def run() -> None:
    """Both databases, one child process each (a table each)."""
    print(f"\n### SQLite ({SQLITE_FILE})\n", flush=True)
    for leftover in SQLITE_FILE.parent.glob(SQLITE_FILE.name + "*"):
        leftover.unlink()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{SQLITE_FILE}",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
    }
    try:
        code = "import bench.calls as b; b.measure()"
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    finally:
        for leftover in SQLITE_FILE.parent.glob(SQLITE_FILE.name + "*"):
            leftover.unlink()
    print(f"\n### PostgreSQL (scratch database {POSTGRES_DATABASE})\n", flush=True)
    measure_in_scratch_database(POSTGRES_DATABASE, "bench.calls")


def _database(connection: Any) -> str:
    if connection.vendor == "sqlite":
        return "SQLite as project/settings.py configures it (WAL, synchronous=NORMAL)"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
        cursor.execute("SHOW synchronous_commit")
        (commit,) = cursor.fetchone()
    return f"PostgreSQL {version} on loopback (server synchronous_commit={commit})"


def measure() -> None:
    """Child process: the table for the database DATABASE_URL names."""
    django.setup()
    from authlib.integrations.requests_client import AssertionSession
    from django.core.management import call_command
    from django.db import connection
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    from integrations import services
    from tests.keys import rsa_pem

    call_command("migrate", verbosity=0)
    pem = rsa_pem()
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
    process.start()
    try:
        port = parent.recv()
        base = f"http://127.0.0.1:{port}"
        resource = f"{base}/api/resource"
        suffix = uuid.uuid4().hex[:6]
        quiet, logged = f"bench-none-{suffix}", f"bench-all-{suffix}"
        _integration(quiet, f"{base}/api/", "none", pem)
        _integration(logged, f"{base}/api/", "all", pem)

        bare = requests.Session()
        bare.headers["Authorization"] = "Bearer " + "x" * 600  # about an RS256 JWT's size
        # requests' defaults read ~/.netrc and the proxy variables on every call; the
        # strict floor skips that, as our sessions do.
        strict = requests.Session()
        strict.trust_env = False
        strict.headers["Authorization"] = bare.headers["Authorization"]

        def seed_recipe() -> requests.Response:
            now = int(time.time())
            payload = {"iss": "bench", "aud": "api", "iat": now, "exp": now + 300}
            token = jwt.encode(payload, pem, algorithm="RS256")
            return bare.get(resource, headers={"Authorization": f"Bearer {token}"})

        authlib = AssertionSession(
            token_endpoint=f"{base}/token",
            issuer="bench",
            subject="bench",
            audience=f"{base}/token",
            grant_type=AssertionSession.JWT_BEARER_GRANT_TYPE,
            key=pem,
            header={"alg": "RS256"},
        )
        google = AuthorizedSession(
            service_account.Credentials.from_service_account_info(
                {
                    "type": "service_account",
                    "private_key_id": "bench",
                    "private_key": pem,
                    "client_email": "bench@bench.iam.gserviceaccount.com",
                    "token_uri": f"{base}/token",
                },
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        )
        n = CALLS_PER_ROUND
        vendor = connection.vendor
        in_call, background = {"LOG_WRITER": "sync"}, {"LOG_WRITER": "background"}

        def logged_call() -> requests.Response:
            return services.request(logged, "GET", "resource")

        quiet_name = "ours, cached token, log_calls=none"
        round_trip_name = f"bare Session + SELECT 1 on the {vendor} driver (a round trip, no row)"
        floor_name = (
            f"floor of any in-call writer: bare Session + one INSERT on the {vendor} driver"
        )
        in_call_name = f"ours, log_calls=all, {vendor}, row written in the call"

        clients: list[tuple[str, Callable[[], requests.Response], int, dict[str, Any]]] = [
            ("bare Session, fixed header, no trust_env", lambda: strict.get(resource), n, {}),
            ("bare Session, fixed header, defaults", lambda: bare.get(resource), n, {}),
            (quiet_name, lambda: services.request(quiet, "GET", "resource"), n, {}),
            (round_trip_name, _floor_of_round_trips(lambda: strict.get(resource)), n, {}),
            (floor_name, _floor_of_in_call_writers(lambda: strict.get(resource), logged), n, {}),
            (in_call_name, logged_call, n, in_call),
        ]
        if vendor == "postgresql":
            clients += [
                (
                    "ours, log_calls=all, postgresql, in the call, LOG_SYNCHRONOUS_COMMIT=True",
                    logged_call,
                    n,
                    {**in_call, "LOG_SYNCHRONOUS_COMMIT": True},
                ),
                (
                    "ours, log_calls=all, postgresql, in the call, OPTIONS prepare_threshold=5",
                    logged_call,
                    n,
                    {**in_call, "prepare_threshold": 5},
                ),
            ]
        clients += [
            (f"ours, log_calls=all, {vendor}, LOG_WRITER=background", logged_call, n, background),
            ("seed recipe: jwt.encode(payload, pem)", seed_recipe, SEED_CALLS_PER_ROUND, {}),
            ("authlib AssertionSession, cached", lambda: authlib.get(resource), n, {}),
            ("google-auth AuthorizedSession", lambda: google.get(resource), n, {}),
        ]
        for _, call, _, options in clients:  # warm up: connections, tokens, sessions
            _log_settings(**options)
            for _ in range(20):
                call()
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in clients}
        for _ in range(ROUNDS):
            for name, call, calls, options in clients:
                timings[name].append(_round(call, calls, options))
        threaded = {writer: _threaded(logged, writer) for writer in ("sync", "background")}
        _log_settings()
    finally:
        process.terminate()
        process.join()

    def best(name: str, index: int) -> float:
        return min(sample[index] for sample in timings[name])

    floor_wall, floor_cpu = best(clients[0][0], 0), best(clients[0][0], 1)
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"requests {requests.__version__}; database: {_database(connection)}.\n"
    )
    print(
        f"{ROUNDS} interleaved rounds of {CALLS_PER_ROUND} calls (seed recipe: "
        f"{SEED_CALLS_PER_ROUND}); best round of each (as timeit reports: other load on "
        "the machine only ever adds time). Loopback API in its own process, "
        "keep-alive HTTP/1.1. CPU is this process's CPU time per call: on a shared machine "
        "it is the steadier measure of what the client adds.\n"
    )
    print("| client | wall µs/call | × floor | CPU µs/call | × floor | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    in_call_target = "≤ 1.50" if vendor == "postgresql" else "≤ 1.25"
    targets = {quiet_name: "≤ 1.05", in_call_name: in_call_target}
    targets.update({name: "≤ 1.10" for name, *_ in clients if "background" in name})
    for name, *_ in clients:
        wall, cpu = best(name, 0), best(name, 1)
        print(
            f"| {name} | {wall * 1e6:,.0f} | {wall / floor_wall:.2f} | {cpu * 1e6:,.0f} | "
            f"{cpu / floor_cpu:.2f} | {targets.get(name, '')} |"
        )
    floor, ours = best(floor_name, 0), best(in_call_name, 0)
    round_trip, quiet_wall = best(round_trip_name, 0), best(quiet_name, 0)
    print(
        f"\nOurs in the call is {ours / floor:.2f}x the floor of any in-call writer (wall). "
        f"That floor, the bare call plus the row's INSERT, is {floor / floor_wall:.2f}x the "
        f"bare session (ours without a row is {quiet_wall / floor_wall:.2f}x, so ours in the "
        "call can come in under it); a database round trip that writes nothing "
        f"(SELECT 1) already costs {round_trip / floor_wall:.2f}x.\n"
    )
    for writer, (throughput, errors, rows) in threaded.items():
        print(
            f"{THREADS} threads sharing one integration (log_calls=all, {connection.vendor}, "
            f"LOG_WRITER={writer}): {THREADED_CALLS:,} calls, {throughput:,.0f} calls/s, "
            f"{errors} errors, {rows:,} CallLog rows "
            f"({'one per call' if rows == THREADED_CALLS else 'MISMATCH'})."
        )
