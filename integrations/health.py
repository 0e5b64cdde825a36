"""Each integration's health from its test calls, and alerts when it changes.

Health is ``ok``, ``failing`` or ``unknown`` (docs/reference.md, Operations), read from
the newest test calls in the call log (``CallLog.is_test``), so it needs no table of its
own and agrees with what the admin shows:

- the last ``INTEGRATIONS_HEALTH_FAILURES`` (default 2) test calls all failed: failing;
- a success among them: ok (one blip pages nobody, one success clears an alert);
- no test call yet, or fewer failures than that and no success: unknown.

``observe(results)``, called once a run's test results are logged, compares each
integration's health before and after its new result, sends ``health_changed`` for
every change, and enqueues one webhook POST and one e-mail for the whole run (a digest,
never one alert per integration). Both go out as tasks, so the test call never waits
for them. An alert carries slug, account, old and new health, when, status code and
error class: never a secret, query value or remote body (security.md #39).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
from django.core.mail import send_mail
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from .exceptions import RequestRefused
from .http import create_session
from .models import CallLog, Integration
from .settings import app_settings
from .signals import health_changed

if TYPE_CHECKING:
    from django.tasks import task

    from .testcalls import TestResult
else:
    try:
        from django.tasks import task
    except ImportError:  # Django < 6: the backport
        from django_tasks import task

logger = logging.getLogger(__name__)

OK, FAILING, UNKNOWN = "ok", "failing", "unknown"
WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT = 10.0
# A logged error starts with its exception's class ("ConnectTimeout: ..."); only such a
# bare name goes into an alert, never the message after it (security.md #39).
_ERROR_CLASS = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,99}):")


def failures_needed() -> int:
    return max(1, int(app_settings.HEALTH_FAILURES))


def classify(newest_first: Iterable[bool | None], failures: int | None = None) -> str:
    """The health that test results say, newest first (None: no such test call)."""
    needed = failures_needed() if failures is None else failures
    recent = [ok for ok in newest_first if ok is not None][:needed]
    if any(recent):
        return OK
    return FAILING if len(recent) >= needed else UNKNOWN


def with_recent_tests(queryset: QuerySet[Integration], depth: int) -> QuerySet[Integration]:
    """Annotate ``test_ok_0`` .. ``test_ok_<depth-1>`` (newest first), ``last_test_id``
    and ``last_test_at``: one correlated subquery each over the (integration,
    -created_at) index, so one query however many integrations there are."""
    tests = CallLog.objects.filter(integration=OuterRef("pk"), is_test=True).order_by(
        "-created_at", "-id"
    )
    flags = {f"test_ok_{n}": Subquery(tests.values("ok")[n : n + 1]) for n in range(depth)}
    return queryset.annotate(
        last_test_id=Subquery(tests.values("id")[:1]),
        last_test_at=Subquery(tests.values("created_at")[:1]),
        **flags,
    )


def recent_flags(integration: Integration, depth: int) -> list[bool | None]:
    return [annotation(integration, f"test_ok_{n}") for n in range(depth)]


def annotation(integration: Integration, name: str) -> Any:
    """A value ``with_recent_tests`` annotated (the model class does not declare it)."""
    return getattr(integration, name)


@dataclass(frozen=True)
class IntegrationHealth:
    slug: str
    health: str
    last_test_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "health": self.health,
            "last_test_at": self.last_test_at.isoformat() if self.last_test_at else None,
        }


def health_report(queryset: QuerySet[Integration] | None = None) -> list[IntegrationHealth]:
    """Every enabled integration's health (of ``queryset`` if given), by slug; one query."""
    base = queryset if queryset is not None else Integration.objects.all()
    needed = failures_needed()
    rows = with_recent_tests(base.filter(enabled=True).order_by("slug"), needed)
    return [
        IntegrationHealth(
            i.slug, classify(recent_flags(i, needed), needed), annotation(i, "last_test_at")
        )
        for i in rows
    ]


def health_of(integration: Integration) -> str:
    """One integration's health now (one query)."""
    needed = failures_needed()
    annotated = with_recent_tests(Integration.objects.filter(pk=integration.pk), needed).first()
    return UNKNOWN if annotated is None else classify(recent_flags(annotated, needed), needed)


# Transitions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """One integration's health change, caused by the test call ``call_log``."""

    integration: Integration
    account: str | None
    old: str
    new: str
    call_log: CallLog

    def as_alert(self) -> dict[str, Any]:
        """What an alert may say about this change, and nothing else (security.md #39)."""
        return {
            "slug": self.integration.slug,
            "account": self.account,
            "old": self.old,
            "new": self.new,
            "when": (self.call_log.created_at or timezone.now()).isoformat(),
            "status_code": self.call_log.status_code,
            "error_class": error_class(self.call_log),
        }


def error_class(row: CallLog) -> str | None:
    """The failed call's error as a bare class name: no message, URL or remote body."""
    if row.ok:
        return None
    match = _ERROR_CLASS.match(row.error or "")
    if match:
        return match.group(1)
    if row.status_code is not None:
        return "UnexpectedStatus"
    return "Disabled" if row.error == "disabled" else "Error"


def observe(results: Sequence[TestResult]) -> list[Transition]:
    """Find the health changes that these just-logged test results caused, send
    ``health_changed`` for each and enqueue one alert digest; returns the changes.

    Health before a result is read from the test calls older than it, so call this
    after the rows are written (``run_test``/``run_tests`` return then). A result whose
    row was not written, or that is no longer its integration's newest test call (a
    concurrent run logged a newer one, which that run reports), changes nothing here.
    One query for the whole run, plus the signal's receivers.
    """
    latest: dict[int, CallLog] = {}
    accounts: dict[int, str | None] = {}
    for result in results:
        row = result.row
        if row is None or row.pk is None or row.integration_id is None:
            continue
        latest[row.integration_id] = row  # a second result for one integration wins
        accounts[row.integration_id] = result.account
    if not latest:
        return []
    needed = failures_needed()
    annotated = with_recent_tests(Integration.objects.filter(pk__in=latest), needed + 1)
    transitions: list[Transition] = []
    for integration in annotated.order_by("slug"):
        row = latest[integration.pk]
        if annotation(integration, "last_test_id") != row.pk:
            continue
        flags = recent_flags(integration, needed + 1)
        old, new = classify(flags[1:], needed), classify(flags[:needed], needed)
        if old != new:
            row.integration = integration
            transitions.append(Transition(integration, accounts[integration.pk], old, new, row))
    for change in transitions:
        # A receiver's bug must not fail the test run, nor stop the alerts.
        answers = health_changed.send_robust(
            sender=Integration,
            integration=change.integration,
            account=change.account,
            old=change.old,
            new=change.new,
            call_log=change.call_log,
        )
        for receiver, answer in answers:
            if isinstance(answer, Exception):
                logger.error("health_changed receiver %r failed", receiver, exc_info=answer)
    if transitions:
        enqueue_alerts(transitions)
    return transitions


# Alerts --------------------------------------------------------------------------------


def alert_emails() -> list[str]:
    configured = app_settings.ALERT_EMAILS or ""
    values = configured.split(",") if isinstance(configured, str) else list(configured)
    return [address.strip() for address in values if address.strip()]


def digest(transitions: Sequence[Transition]) -> dict[str, Any]:
    """One run's changes as the alert's JSON body (security.md #39)."""
    changes = [change.as_alert() for change in transitions]
    return {
        "event": "integrations.health_changed",
        "sent_at": timezone.now().isoformat(),
        "failing": sum(change["new"] == FAILING for change in changes),
        "recovered": sum(change["new"] == OK for change in changes),
        "changes": changes,
    }


def enqueue_alerts(transitions: Sequence[Transition]) -> None:
    """Enqueue the run's webhook POST and e-mail, each once, if configured. A broken
    task engine is logged, never raised into the test run that caused the alert."""
    payload = digest(transitions)
    jobs: list[Any] = []
    if app_settings.ALERT_WEBHOOK:
        jobs.append(post_alert)
    if alert_emails():
        jobs.append(mail_alert)
    for job in jobs:
        try:
            job.using(queue_name=app_settings.TASK_QUEUE).enqueue(payload)
        except Exception as exc:
            logger.error("could not enqueue the health alert: %s", type(exc).__name__)


@task()
def post_alert(payload: dict[str, Any]) -> dict[str, Any]:
    """POST the digest to INTEGRATIONS_ALERT_WEBHOOK through the guarded session
    (address guard, TLS, no proxies from the environment), retrying connection errors,
    429 and 5xx. The URL itself may hold a secret (chat webhooks do): never logged."""
    url = str(app_settings.ALERT_WEBHOOK)
    if not url:
        return {"sent": False, "attempts": 0}
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json"}
    problem = ""
    with create_session() as session:
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                response = session.post(url, data=body, headers=headers, timeout=(
                    float(app_settings.CONNECT_TIMEOUT), WEBHOOK_TIMEOUT
                ))
            except RequestRefused as exc:  # the address guard or URL checks: final
                problem = type(exc).__name__
                break
            except requests.RequestException as exc:
                problem = type(exc).__name__
            else:
                response.close()
                if response.status_code < 400:
                    return {"sent": True, "attempts": attempt, "status_code": response.status_code}
                problem = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break
            if attempt < WEBHOOK_ATTEMPTS:
                time.sleep(float(app_settings.RETRY_BACKOFF) * 2 ** (attempt - 1))
    logger.error("health alert webhook failed after %d attempt(s): %s", attempt, problem)
    return {"sent": False, "attempts": attempt, "error": problem}


@task()
def mail_alert(payload: dict[str, Any]) -> dict[str, Any]:
    """Mail the digest to INTEGRATIONS_ALERT_EMAILS with Django's mail settings."""
    recipients = alert_emails()
    if not recipients:
        return {"sent": 0}
    try:
        sent = send_mail(mail_subject(payload), mail_body(payload), None, recipients)
    except Exception as exc:
        logger.error("health alert e-mail failed: %s", type(exc).__name__)
        return {"sent": 0, "error": type(exc).__name__}
    return {"sent": sent}


def mail_subject(payload: dict[str, Any]) -> str:
    changes = payload["changes"]
    if len(changes) == 1:
        change = changes[0]
        return f"[integrations] {change['slug']} is {change['new']} (was {change['old']})"
    return (
        f"[integrations] {len(changes)} integrations changed health: "
        f"{payload['failing']} failing, {payload['recovered']} ok"
    )


def mail_body(payload: dict[str, Any]) -> str:
    lines = ["Integration health changed:", ""]
    for change in payload["changes"]:
        account = f" (account {change['account']})" if change["account"] else ""
        cause = ""
        if change["new"] != OK:
            status = change["status_code"] if change["status_code"] is not None else "none"
            cause = f"; status {status}, {change['error_class'] or 'error'}"
        lines.append(
            f"- {change['slug']}{account}: {change['old']} -> {change['new']} "
            f"at {change['when']}{cause}"
        )
    lines += ["", "Details are in the admin's call log."]
    return "\n".join(lines)
