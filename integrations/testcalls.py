"""Test calls: fire an integration's test request, log it, and say how it went.

One result type for every caller: ``TestResult`` (``as_dict()`` is what a task returns
and ``integrations_test --json`` prints). ``run_test`` runs one test call;
``run_tests`` runs many on a pool of threads. Test calls are always logged
(docs/reference.md, call log), whatever the integration's ``log_calls``.

The calls wait on the network, so threads overlap them: with ``parallel`` threads, N
integrations that each answer in t seconds take about N·t/parallel. The threads only
talk HTTP; the calling thread writes the log rows, so a run opens no extra database
connection and works on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, transaction

from . import alerts, calllog, fanout, health
from .accounts import build_account_provider
from .http import IntegrationSession
from .http.outcome import Outcome
from .http.transport import transports
from .models import Account, CallLog, Integration
from .tokens.registry import build_provider

logger = logging.getLogger(__name__)

DEFAULT_PARALLEL = 8
WRITE_BATCH = 200
# Test calls per worker process that a run needs before default_processes forks one
# more: below it the fork and the new connections cost more than the CPU they add.
CALLS_PER_PROCESS = 1000

# What run_tests takes: an integration (called without an account), or an integration
# and the account to call it for (docs/reference.md, Accounts).
Target = Integration | tuple[Integration, Account | None]


@dataclass(frozen=True)
class TestResult:
    """How one test call went. ``row`` is its call-log row (no pk if the write failed;
    None when there was no integration to call)."""

    __test__ = False  # not a pytest test class, whatever its name

    slug: str | None
    ok: bool
    status_code: int | None = None
    duration_ms: int = 0
    error: str = ""
    url: str = ""
    attempts: int = 0
    log_id: int | None = None
    account: str | None = None
    row: CallLog | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: CallLog) -> TestResult:
        return cls(
            slug=row.integration.slug,
            ok=row.ok,
            status_code=row.status_code,
            duration_ms=row.duration_ms,
            error=row.error,
            url=row.url,
            attempts=row.attempts,
            log_id=row.pk,
            account=row.account.key if row.account_id is not None and row.account else None,
            row=row,
        )

    @classmethod
    def missing(cls, integration_id: int) -> TestResult:
        """The result for an integration deleted before its test call could run."""
        return cls(slug=None, ok=False, error=f"integration {integration_id} no longer exists")

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON (no secret: the error is redacted like the log row's)."""
        return {
            "slug": self.slug,
            "ok": self.ok,
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "error": self.error or None,
            "url": self.url,
            "attempts": self.attempts,
            "log_id": self.log_id,
            "account": self.account,
        }


def targets(integrations: Sequence[Integration]) -> list[Target]:
    """What testing these integrations means (docs/reference.md, Accounts): one without
    accounts is tested once; one with accounts, once for each enabled account. Two
    queries whatever the number of accounts."""
    by_id = {integration.pk: integration for integration in integrations}
    with_accounts = set(
        Account.objects.filter(integration__in=list(by_id))
        .values_list("integration_id", flat=True)
        .distinct()
    )
    enabled: dict[int, list[Account]] = {}
    if with_accounts:
        queryset = Account.objects.filter(integration__in=with_accounts, enabled=True)
        for account in queryset.order_by("integration_id", "key"):
            account.integration = by_id[account.integration_id]  # no query per account
            enabled.setdefault(account.integration_id, []).append(account)
    result: list[Target] = []
    for integration in integrations:
        if integration.pk in with_accounts:
            result.extend((integration, account) for account in enabled.get(integration.pk, []))
        else:
            result.append(integration)
    return result


def default_parallel(count: int) -> int:
    """Threads for ``count`` integrations when the operator does not say."""
    return max(1, min(DEFAULT_PARALLEL, count))


def default_processes(count: int, parallel: int) -> int:
    """Worker processes for ``count`` test calls ``parallel`` at a time when the operator
    does not say: one per CPU once there are CALLS_PER_PROCESS calls for each, never
    more than the calls in flight; 1 where the platform cannot fork."""
    if not fanout.can_fork():
        return 1
    return max(1, min(os.cpu_count() or 1, count // CALLS_PER_PROCESS, parallel))


def perform(
    integration: Integration,
    *,
    source: str,
    session: IntegrationSession | None = None,
    account: Account | None = None,
) -> tuple[Outcome, bool, str]:
    """Fire the test request without logging it: (outcome, ok, error).

    Without ``session`` one is built from ``integration`` itself, touching no database,
    so many can run on threads while one thread writes the log rows.
    """
    test = integration.test_request or {}
    method = str(test.get("method", "GET")).upper()
    path = str(test.get("path", ""))
    expected = test.get("expect_status") or []
    if not integration.enabled:
        return Outcome(method, integration.base_url, time.perf_counter()), False, "disabled"
    if account is not None and not account.enabled:
        return Outcome(method, integration.base_url, time.perf_counter()), False, "account disabled"
    try:
        if session is None:
            provider = (
                build_account_provider(integration, account.key, account.options)
                if account is not None
                else build_provider(integration)
            )
            session = IntegrationSession(integration, provider, source=source)
            # The integration's pooled connections, shared by all its accounts (and
            # the service layer's sessions): no new connection per test call.
            transports.attach(session)
    except Exception as exc:
        return Outcome(method, integration.base_url, time.perf_counter(), error=exc), False, ""
    outcome = session.perform(method, path, trial=True)
    ok = outcome.response is not None and (
        outcome.response.status_code in expected if expected else outcome.response.ok
    )
    error = ""
    if outcome.response is not None and not ok:
        error = f"unexpected status {outcome.response.status_code}"
        if expected:
            error += f" (expected {', '.join(map(str, expected))})"
        # Why, as far as the answer says: a refused token's WWW-Authenticate error and
        # description (e.g. a DPoP proof refused as a replay), a suspected clock skew.
        reason = calllog.describe_response(outcome.response, calllog.rows.DEFAULT_CLOCK_SKEW)
        if ";" in reason:
            error += ": " + reason.split("; ", 1)[1]
    return outcome, ok, error


def run_test(
    integration: Integration,
    *,
    source: str,
    session: IntegrationSession | None = None,
    account: Account | None = None,
) -> TestResult:
    """Fire the integration's test request (through ``session`` if given), for
    ``account`` if given, and log it."""
    outcome, ok, error = perform(integration, source=source, session=session, account=account)
    row = calllog.record(integration, source, outcome, ok=ok, error=error, account=account)
    result = TestResult.from_row(row)
    report_health([result])
    return result


def run_tests(
    integrations: Sequence[Target],
    *,
    source: str,
    parallel: int | None = None,
    processes: int = 1,
    on_result: Callable[[TestResult], None] | None = None,
) -> list[TestResult]:
    """Fire each integration's test request, ``parallel`` at a time, and log every one;
    returns the results in input order. With ``processes`` > 1 the calls run on that
    many forked worker processes (integrations/fanout.py), ``parallel`` in all.

    Only the calling thread writes to the database, in batches: SQLite allows one writer
    at a time, and a batch costs one commit instead of one per row. ``on_result`` is
    called in the calling thread as each result arrives (for progress; its ``log_id``
    is not known yet then).
    """
    threads = parallel if parallel is not None else default_parallel(len(integrations))
    rows: list[CallLog | None] = [None] * len(integrations)
    unsaved: list[CallLog] = []

    def work(target: Target) -> CallLog:
        return _unsaved_row(target, source)

    codec = fanout.Codec(_row_values, _row_from(integrations), _lost_row(integrations, source))
    completed = fanout.fan_out(
        integrations, work, threads=threads, processes=processes, codec=codec
    )
    for index, row in completed:
        rows[index] = row
        unsaved.append(row)
        if len(unsaved) >= WRITE_BATCH:
            _save(unsaved)
        if on_result is not None:
            on_result(TestResult.from_row(row))
    _save(unsaved)
    results = [TestResult.from_row(row) for row in rows if row is not None]
    report_health(results)
    return results


def report_health(results: Sequence[TestResult]) -> None:
    """Health changes these logged results made: ``health_changed`` for each, and one
    alert digest for the run (docs/reference.md, Operations). Whatever goes wrong is
    logged: the results still go back to the caller."""
    try:
        alerts.enqueue_alerts(health.observe(results))
    except Exception:
        logger.exception("could not update health after %d test call(s)", len(results))


def _unsaved_row(target: Target, source: str) -> CallLog:
    """The test call as an unsaved ``CallLog``; touches no database, so it runs on any
    thread. An unexpected error becomes a failed result, so one broken integration never
    stops a run over the others."""
    integration, account = _split(target)
    try:
        outcome, ok, error = perform(integration, source=source, account=account)
    except Exception as exc:
        logger.exception("test call for %s failed unexpectedly", integration.slug)
        return _failed_row(target, source, calllog.describe_error(exc))
    return calllog.build_row(
        integration, source, outcome, ok=ok, is_test=True, error=error, account=account
    )


def _save(rows: list[CallLog]) -> None:
    if not rows:
        return
    try:
        with transaction.atomic():
            CallLog.objects.bulk_create(rows)
    except DatabaseError:
        # As calllog.write: a log that cannot be written never hides the results.
        logger.exception("could not write %d test call log rows", len(rows))
    rows.clear()


def _split(target: Target) -> tuple[Integration, Account | None]:
    return target if isinstance(target, tuple) else (target, None)


def _failed_row(target: Target, source: str, error: str) -> CallLog:
    integration, account = _split(target)
    return CallLog(
        integration=integration, account=account, source=source, is_test=True, ok=False,
        error=error,
    )


# A row crossing from a worker process (fanout.Codec): its column values without the
# integration and account, which the calling process has as objects already.
_SENT_FIELDS = [
    field.attname
    for field in CallLog._meta.local_concrete_fields
    if not field.primary_key and field.attname not in ("integration_id", "account_id")
]


def _row_values(row: CallLog) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _SENT_FIELDS}


def _row_from(targets: Sequence[Target]) -> Callable[[int, dict[str, Any]], CallLog]:
    def unpack(index: int, values: dict[str, Any]) -> CallLog:
        integration, account = _split(targets[index])
        return CallLog(integration=integration, account=account, **values)

    return unpack


def _lost_row(targets: Sequence[Target], source: str) -> Callable[[int, str], CallLog]:
    def lost(index: int, reason: str) -> CallLog:
        logger.error("test call for %s not reported: %s", _split(targets[index])[0].slug, reason)
        return _failed_row(targets[index], source, reason)

    return lost
