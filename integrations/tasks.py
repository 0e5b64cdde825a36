"""Background test calls through Django's Tasks API.

``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2: the ``TASKS``
setting chooses the engine. With no setting, the immediate backend runs each task in
the calling process; with RQ (docs/operations.md) one task per integration spreads
over the workers, which share tokens through the cache.

    from integrations.tasks import enqueue_tests
    results = enqueue_tests(Integration.objects.filter(enabled=True))
    [result.id for result in results]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import connections

from .models import Account, CallSource, Integration
from .settings import app_settings
from .testcalls import Target, TestResult, run_test

if TYPE_CHECKING:
    from django.tasks import TaskResult, task
else:
    try:
        from django.tasks import task
    except ImportError:  # Django < 6: the backport
        from django_tasks import task


# The engine checks a task's queue when it is defined, so the queue configured at
# import is the default; enqueue_tests reads the setting again on every call.
@task(queue_name=app_settings.TASK_QUEUE)
def run_test_call(
    integration_id: int, source: str = CallSource.TASK, account_id: int | None = None
) -> dict[str, Any]:
    """Fire one integration's test request (for the account ``account_id`` when given)
    and log it; returns its ``TestResult.as_dict()``.

    Takes primary keys, not slug and key, so a rename between enqueue and run still
    tests the same integration and account. One deleted meanwhile is reported, not raised.
    """
    fresh_connections()
    try:
        integration = Integration.objects.filter(pk=integration_id).first()
        if integration is None:
            return TestResult.missing(integration_id).as_dict()
        account = None
        if account_id is not None:
            account = Account.objects.filter(pk=account_id, integration=integration).first()
            if account is None:
                gone = "account no longer exists"
                return TestResult(slug=integration.slug, ok=False, error=gone).as_dict()
        return run_test(integration, source=source, account=account).as_dict()
    finally:
        fresh_connections()


def fresh_connections() -> None:
    """What Django does around each request, for long-lived workers (rq's SimpleWorker
    runs every job in one process): drop connections that broke or outlived
    CONN_MAX_AGE. Never one inside a transaction (the immediate backend in a view)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def enqueue_tests(
    integrations: Iterable[Target], *, source: str = CallSource.TASK
) -> list[TaskResult[[int, str, int | None], dict[str, Any]]]:
    """Enqueue one ``run_test_call`` per integration, or per (integration, account)
    pair; returns the task results in order.

    They go to the ``INTEGRATIONS_TASK_QUEUE`` queue, read now (not at import), so a
    changed setting applies to the next enqueue. With the immediate backend the calls
    have run when this returns.
    """
    queued = run_test_call.using(queue_name=app_settings.TASK_QUEUE)
    results: list[TaskResult[[int, str, int | None], dict[str, Any]]] = []
    for target in integrations:
        integration, account = target if isinstance(target, tuple) else (target, None)
        account_id = account.pk if account is not None else None
        results.append(queued.enqueue(integration.pk, source, account_id))
    return results
