"""Alerts when health changes: one digest per test run, as a webhook POST and an e-mail.

``testcalls`` hands each run's health changes (``health.observe``) to
``enqueue_alerts``, which enqueues ``post_alert`` and ``mail_alert`` once each, if
configured (docs/reference.md, Operations), on the ``INTEGRATIONS_TASK_QUEUE`` queue:
the test call never waits for them, and many integrations failing at once are one
message, never a storm. A digest carries slug, account, old and new health, when,
status code and error class: never a secret, query value or remote body (security.md
#39).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests
from django.core.mail import send_mail
from django.utils import timezone

from .exceptions import RequestRefused
from .health import FAILING, OK, Transition
from .http import create_session
from .settings import app_settings

if TYPE_CHECKING:
    from django.tasks import task
else:
    try:
        from django.tasks import task
    except ImportError:  # Django < 6: the backport
        from django_tasks import task

logger = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT = 10.0


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
    if not transitions:
        return
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


# The engine checks a task's queue when it is defined (as integrations.tasks): the
# queue configured at import; enqueue_alerts names the current one on every enqueue.
@task(queue_name=app_settings.TASK_QUEUE)
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


@task(queue_name=app_settings.TASK_QUEUE)
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
