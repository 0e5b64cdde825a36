"""The call log's writers (docs/service.md, the call log): the in-call INSERT on
PostgreSQL, and the background writer's batches, timer, bounded queue and what it
promises on a normal stop and on kill -9."""

from __future__ import annotations

import importlib
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from django.db import OperationalError, connection, transaction

from integrations import services
from integrations.calllog import BackgroundWriter, insert, prune_call_logs, row_values
from integrations.http.outcome import Outcome
from integrations.models import CallLog
from tests.child import ROOT, clean_env
from tests.keys import HMAC_SECRET
from tests.loopback import Reply

POSTGRES = connection.vendor == "postgresql"
ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true))"


def values_for(integration, url="http://127.0.0.1:9/x"):
    return row_values(integration, "api", Outcome("GET", url, time.perf_counter()), ok=False)


def statements(run):
    """The SQL that ``run()`` sends through Django's cursors."""
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        run()
    return [sql for sql in seen if sql.startswith("INSERT INTO")]


@pytest.mark.django_db(transaction=True)
def test_a_row_written_in_the_call_is_one_statement(server, make_integration, settings):
    """One INSERT per logged call; on PostgreSQL its own transaction commits without
    waiting for the WAL flush, unless INTEGRATIONS_LOG_SYNCHRONOUS_COMMIT asks to."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    services.get_session("billing")
    (sql,) = statements(lambda: services.request("billing", "GET", "x"))
    assert (ASYNC_COMMIT in sql) is POSTGRES
    if POSTGRES:  # for that transaction only: the connection's next ones wait again
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)
    settings.INTEGRATIONS_LOG_SYNCHRONOUS_COMMIT = True
    (sql,) = statements(lambda: services.request("billing", "GET", "x"))
    assert ASYNC_COMMIT not in sql
    assert CallLog.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_callers_commit_is_left_alone(server, make_integration):
    """Inside atomic() the row goes in a savepoint and the caller's transaction keeps
    its own commit settings (no set_config that would reach the caller's commit)."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")

    def in_transaction():
        with transaction.atomic():
            services.request("billing", "GET", "x")

    (sql,) = statements(in_transaction)
    assert ASYNC_COMMIT not in sql
    assert CallLog.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_uninstrumented_path_returns_the_row(make_integration):
    """Without instrumentation the driver is called directly; a test call's row still
    gets its pk and reads back as written."""
    integration = make_integration()
    assert not connection.execute_wrappers and not connection.queries_logged
    values = values_for(integration)
    pk = insert.write("billing", dict(values), returning=True)
    row = CallLog.objects.get(pk=pk)
    assert (row.url, row.ok, row.created_at) == (values["url"], False, values["created_at"])


@pytest.mark.django_db(transaction=True)
def test_batches_are_written_on_the_timer(make_integration):
    """Queued rows reach the table within FLUSH_INTERVAL without anyone flushing."""
    writer = BackgroundWriter()
    writer.FLUSH_INTERVAL = 0.05
    integration = make_integration()
    for n in range(30):
        assert writer.submit("billing", values_for(integration, f"http://127.0.0.1:9/{n}"))
    deadline = time.monotonic() + 10
    while CallLog.objects.count() < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert CallLog.objects.count() == 30
    assert writer.flush(timeout=10)
    assert (writer.dropped, writer.lost) == (0, 0)


def test_a_full_queue_drops_rows_counted_and_logged(db, make_integration, caplog):
    """Past MAX_QUEUED rows are dropped, never silently: counted, and logged at once,
    then at most once per WARN_EVERY seconds (an outage must not flood the log)."""

    class Tiny(BackgroundWriter):
        MAX_QUEUED = 2

    writer = Tiny()
    writer._thread = object()  # type: ignore[assignment]  # no writer: the queue stays full
    integration = make_integration()
    with caplog.at_level(logging.ERROR, logger="integrations.calllog"):
        accepted = [writer.submit("billing", values_for(integration)) for _ in range(5)]
    assert accepted == [True, True, False, False, False]
    assert writer.dropped == 3
    (record,) = caplog.records
    assert record.getMessage() == (
        "1 call log row(s) dropped, 1 in all: call log queue full (2 rows): the database "
        "is not keeping up"
    )


def test_an_unreachable_database_loses_the_batch_with_one_message(
    db, make_integration, monkeypatch, caplog
):
    """A batch that cannot reach the database is counted in ``lost`` and logged once,
    not retried row by row against a database that is down."""
    writer = BackgroundWriter()
    integration = make_integration()
    rows = [("billing", values_for(integration)) for _ in range(3)]

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    module = importlib.import_module("integrations.calllog.writer")  # not the instance
    with monkeypatch.context() as patch:  # undone before the test database is torn down
        patch.setattr(module, "insert_many", down)
        patch.setattr(module, "insert", down)
        patch.setattr(connection, "ensure_connection", down)
        patch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
        with caplog.at_level(logging.ERROR, logger="integrations.calllog"):
            writer._write(rows)
    assert writer.lost == 3
    (record,) = caplog.records
    assert record.getMessage() == (
        "3 call log row(s) lost, 3 in all: database unavailable (OperationalError)"
    )


CHILD = textwrap.dedent(
    """
    import os, sys, time
    import django
    django.setup()
    from django.core.management import call_command
    from integrations.calllog import row_values, writer
    from integrations.http.outcome import Outcome
    from integrations.models import Integration

    if sys.argv[1] == "migrate":
        call_command("migrate", verbosity=0)
        integration = Integration(
            slug="billing", name="Billing", base_url="http://127.0.0.1:9/",
            auth_type="jwt_bearer", auth_config={"algorithm": "HS256", "claims": {}},
        )
        integration.set_secrets({"key": os.environ["HMAC_SECRET"]})
        integration.save()
    integration = Integration.objects.get(slug="billing")
    writer.FLUSH_INTERVAL = 3600.0  # nothing is written before the process stops
    for n in range(25):
        outcome = Outcome("GET", f"http://127.0.0.1:9/{sys.argv[2]}/{n}", time.perf_counter())
        writer.submit("billing", row_values(integration, "api", outcome, ok=True))
    print("queued", flush=True)
    if sys.argv[2] == "killed":
        time.sleep(60)
    """
)


def test_a_normal_stop_writes_every_queued_row_and_kill_9_loses_them(tmp_path):
    """The durability promise: interpreter exit (atexit) writes what is queued; a
    process killed outright loses its queued rows, and only those."""
    database = tmp_path / "calllog.sqlite3"
    env = clean_env(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{database}",
        HMAC_SECRET=HMAC_SECRET,
        PYTHONPATH=str(ROOT),
    )
    stopped = subprocess.run(
        [sys.executable, "-c", CHILD, "migrate", "stopped"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert stopped.returncode == 0, stopped.stderr
    killed = subprocess.Popen(
        [sys.executable, "-c", CHILD, "use", "killed"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    assert killed.stdout is not None and killed.stdout.readline() == "queued\n"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    with sqlite3.connect(database) as db:
        urls = [url for (url,) in db.execute(f"SELECT url FROM {CallLog._meta.db_table}")]
    assert sorted(urls) == sorted(f"http://127.0.0.1:9/stopped/{n}" for n in range(25))


@pytest.mark.django_db(transaction=True)
def test_rows_hold_their_parents_without_database_constraints(make_integration):
    """No foreign-key constraint in the database (no FOR KEY SHARE lock on the
    integration per logged row), yet deletes still reach the rows through Django: an
    integration takes its rows with it, an account leaves them with no account. A row
    written while its integration is being deleted is kept, not lost."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, CallLog._meta.db_table)
    assert not [name for name, about in constraints.items() if about["foreign_key"]]

    integration, other = make_integration(), make_integration("other")
    account = integration.accounts.create(key="acme")
    values = {**values_for(integration), "account_id": account.pk}
    kept = insert.write("billing", dict(values), returning=True)
    account.delete()
    assert CallLog.objects.get(pk=kept).account_id is None

    gone_id = integration.pk
    integration.delete()
    assert not CallLog.objects.filter(integration_id=gone_id).exists()
    lost = insert.lost_rows.count
    late = insert.write("billing", {**values_for(other), "integration_id": gone_id})
    assert late is None and insert.lost_rows.count == lost
    assert CallLog.objects.filter(integration_id=gone_id).count() == 1
    assert prune_call_logs(older_than_days=0) == 1  # the orphan goes with its age
    assert not CallLog.objects.exists()


@pytest.mark.skipif(not POSTGRES, reason="prepared statements are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_the_insert_is_prepared_only_as_the_site_allows(server, make_integration):
    """Django's default (``OPTIONS["prepare_threshold"]`` unset) never prepares, which
    any pooler accepts; a site that sets a threshold gets the INSERT prepared too, and
    the server stops planning it for every row."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")

    def prepared_inserts() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                [f"INSERT INTO {connection.ops.quote_name(CallLog._meta.db_table)}%"],
            )
            return int(cursor.fetchone()[0])

    for _ in range(3):
        services.request("billing", "GET", "x")
    assert prepared_inserts() == 0
    connection.connection.prepare_threshold = 0  # what OPTIONS["prepare_threshold"] sets
    try:
        for _ in range(2):
            services.request("billing", "GET", "x")
        assert prepared_inserts() == 1
    finally:
        connection.connection.prepare_threshold = None
    assert CallLog.objects.count() == 5
