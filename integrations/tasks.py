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

from .models import CallSource, Integration
from .runner import summary
from .settings import app_settings

if TYPE_CHECKING:
    from django.tasks import TaskResult, task
else:
    try:
        from django.tasks import task
    except ImportError:  # Django < 6: the backport
        from django_tasks import task


@task(queue_name=app_settings.TASK_QUEUE)
def run_test_call(integration_id: int, source: str = CallSource.TASK) -> dict[str, Any]:
    """Fire one integration's test request and log it; returns its ``summary``.

    Takes the primary key, not the slug, so a rename between enqueue and run still
    tests the same integration. One deleted meanwhile is reported, not raised.
    """
    from .services import run_test_for

    fresh_connections()
    try:
        integration = Integration.objects.filter(pk=integration_id).first()
        if integration is None:
            return gone(integration_id)
        return summary(run_test_for(integration, source=source))
    finally:
        fresh_connections()


def fresh_connections() -> None:
    """What Django does around each request, for long-lived workers (rq's SimpleWorker
    runs every job in one process): drop connections that broke or outlived
    CONN_MAX_AGE. Never one inside a transaction (the immediate backend in a view)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def gone(integration_id: int) -> dict[str, Any]:
    return {
        "slug": None,
        "ok": False,
        "status_code": None,
        "duration_ms": 0,
        "error": f"integration {integration_id} no longer exists",
        "url": "",
        "attempts": 0,
        "log_id": None,
    }


def enqueue_tests(
    integrations: Iterable[Integration], *, source: str = CallSource.TASK
) -> list[TaskResult[[int, str], dict[str, Any]]]:
    """Enqueue one ``run_test_call`` per integration; returns the task results in order.

    They go to the ``INTEGRATIONS_TASK_QUEUE`` queue. With the immediate backend the
    calls have run when this returns.
    """
    return [run_test_call.enqueue(integration.pk, source) for integration in integrations]
