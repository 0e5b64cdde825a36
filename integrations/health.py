"""Each integration's (and each account's) health from its test calls, and its changes.

Health is ``ok``, ``failing`` or ``unknown`` (docs/reference.md, Operations), per
integration and per account, read from the newest test calls in the call log
(``CallLog.is_test``), so it needs no table of its own and agrees with what the admin
shows:

- the last ``INTEGRATIONS_HEALTH_FAILURES`` (default 2) test calls all failed: failing;
- a success among them: ok (one blip pages nobody, one success clears an alert);
- no test call yet, or fewer failures than that and no success: unknown.

``observe(results)``, which ``testcalls.run_test``/``run_tests`` call once a run's rows
are written, compares each integration's (or account's) health before and after its
new result and sends ``health_changed`` for every change; ``testcalls`` then hands the
run's changes to ``alerts`` (one digest per run). What a change may say outside the
process is ``Transition.as_alert()``: never a secret, query value or remote body
(security.md #39).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db.models import Exists, Model, OuterRef, QuerySet, Subquery
from django.utils import timezone

from .models import Account, CallLog, Integration
from .settings import app_settings
from .signals import health_changed

if TYPE_CHECKING:
    from .testcalls import TestResult

logger = logging.getLogger(__name__)

OK, FAILING, UNKNOWN = "ok", "failing", "unknown"
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


Tested = Integration | Account  # what has a health: an integration, or one of its accounts
_T = TypeVar("_T", bound=Model)


def with_recent_tests(queryset: QuerySet[_T], depth: int) -> QuerySet[_T]:
    """Annotate ``test_ok_0`` .. ``test_ok_<depth-1>`` (newest first), ``last_test_id``
    and ``last_test_at`` on integrations (their test calls made for no account) or
    accounts: one correlated subquery each over the (integration or account,
    -created_at) index, so one query however many there are."""
    if queryset.model is Account:
        tests = CallLog.objects.filter(account=OuterRef("pk"), is_test=True)
    else:
        tests = CallLog.objects.filter(
            integration=OuterRef("pk"), account__isnull=True, is_test=True
        )
    tests = tests.order_by("-created_at", "-id")
    flags = {f"test_ok_{n}": Subquery(tests.values("ok")[n : n + 1]) for n in range(depth)}
    annotated = queryset.annotate(
        last_test_id=Subquery(tests.values("id")[:1]),
        last_test_at=Subquery(tests.values("created_at")[:1]),
        **flags,
    )
    return cast("QuerySet[_T]", annotated)


def recent_flags(tested: Tested, depth: int) -> list[bool | None]:
    return [annotation(tested, f"test_ok_{n}") for n in range(depth)]


def annotation(tested: Tested, name: str) -> Any:
    """A value ``with_recent_tests`` annotated (the model class does not declare it)."""
    return getattr(tested, name)


def health_from(tested: Tested, needed: int) -> str:
    return classify(recent_flags(tested, needed), needed)


def worst(healths: Iterable[str]) -> str:
    """An integration's health over its own test calls and its accounts': failing if
    any is, else ok if any is (an account never tested yet is no alarm)."""
    seen = set(healths)
    return FAILING if FAILING in seen else OK if OK in seen else UNKNOWN


@dataclass(frozen=True)
class IntegrationHealth:
    slug: str
    health: str
    last_test_at: datetime | None
    # The enabled accounts' (key, health, last test), if it has any.
    accounts: tuple[tuple[str, str, datetime | None], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"slug": self.slug, "health": self.health,
                                 "last_test_at": _iso(self.last_test_at)}
        if self.accounts:
            found["accounts"] = [{"key": key, "health": health, "last_test_at": _iso(when)}
                                 for key, health, when in self.accounts]
        return found


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def health_report(queryset: QuerySet[Integration] | None = None) -> list[IntegrationHealth]:
    """Every enabled integration's health (of ``queryset`` if given), by slug, with its
    enabled accounts' if it has any: one query, one more when any has accounts."""
    base = queryset if queryset is not None else Integration.objects.all()
    needed = failures_needed()
    has_accounts = Exists(Account.objects.filter(integration=OuterRef("pk"), enabled=True))
    rows = list(with_recent_tests(base.filter(enabled=True).order_by("slug"), needed)
                .annotate(has_accounts=has_accounts))
    accounts: dict[int, list[tuple[str, str, datetime | None]]] = {}
    if any(annotation(i, "has_accounts") for i in rows):
        listed = Account.objects.filter(integration__in=rows, enabled=True).order_by("key")
        for account in with_recent_tests(listed, needed):
            accounts.setdefault(account.integration_id, []).append(
                (account.key, health_from(account, needed), annotation(account, "last_test_at"))
            )
    report = []
    for i in rows:
        own = (health_from(i, needed), annotation(i, "last_test_at"))
        theirs = tuple(accounts.get(i.pk, ()))
        tested = [when for _, _, when in theirs if when is not None]
        last = max([own[1], *tested]) if own[1] is not None else max(tested, default=None)
        report.append(IntegrationHealth(
            i.slug, worst([own[0], *(health for _, health, _ in theirs)]), last, theirs
        ))
    return report


def health_of(integration: Integration, account: Account | None = None) -> str:
    """One integration's health now from its test calls made for no account, or one
    account's (one query)."""
    needed = failures_needed()
    annotated: Tested | None
    if account is not None:
        annotated = with_recent_tests(Account.objects.filter(pk=account.pk), needed).first()
    else:
        own = Integration.objects.filter(pk=integration.pk)
        annotated = with_recent_tests(own, needed).first()
    return UNKNOWN if annotated is None else health_from(annotated, needed)


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


def _transition(
    row: CallLog, last_test_id: int | None, flags: list[bool | None], needed: int
) -> Transition | None:
    """The change ``row`` made to its integration's or account's health, if any: none
    unless it is the newest test call (``last_test_id``); ``flags`` are the newest
    ``needed + 1`` results, newest first."""
    if last_test_id != row.pk:
        return None
    old, new = classify(flags[1:], needed), classify(flags[:needed], needed)
    if old == new:
        return None
    account = row.account if row.account_id is not None else None
    return Transition(row.integration, account.key if account else None, old, new, row)


def observe(results: Sequence[TestResult]) -> list[Transition]:
    """Find the health changes that these just-logged test results caused and send
    ``health_changed`` for each; returns the changes (``testcalls`` alerts them).

    Health before a result is read from the test calls older than it, so call this
    after the rows are written (``run_test``/``run_tests`` do). A result for an account
    changes that account's health; one for no account, the integration's own. A result
    whose row was not written, or that is no longer the newest test call of its
    integration or account (a concurrent run logged a newer one, which that run
    reports), changes nothing here. One query for the run's integrations and one for
    its accounts, plus the signal's receivers.
    """
    own: dict[int, CallLog] = {}
    for_accounts: dict[int, CallLog] = {}
    for result in results:
        row = result.row
        if row is None or row.pk is None or row.integration_id is None:
            continue
        # A second result for one integration or account wins.
        if row.account_id is None:
            own[row.integration_id] = row
        else:
            for_accounts[row.account_id] = row
    needed = failures_needed()
    # Only the annotations are read (no model built per row): the rows already hold
    # their integration and account, the objects the run called.
    wanted = ["pk", "last_test_id", *(f"test_ok_{n}" for n in range(needed + 1))]
    found: list[tuple[CallLog, dict[str, Any]]] = []
    if own:
        integrations = Integration.objects.filter(pk__in=own).order_by("slug")
        found += [
            (own[values["pk"]], values)
            for values in with_recent_tests(integrations, needed + 1).values(*wanted)
        ]
    if for_accounts:
        accounts = Account.objects.filter(pk__in=for_accounts)
        found += [
            (for_accounts[values["pk"]], values)
            for values in with_recent_tests(
                accounts.order_by("integration__slug", "key"), needed + 1
            ).values(*wanted)
        ]
    candidates = (
        _transition(
            row,
            values["last_test_id"],
            [values[f"test_ok_{n}"] for n in range(needed + 1)],
            needed,
        )
        for row, values in found
    )
    transitions = [change for change in candidates if change is not None]
    for change in transitions:
        # A receiver's bug must not fail the test run, nor stop the alerts.
        answers = health_changed.send_robust(
            sender=Integration,
            integration=change.integration,
            account=change.call_log.account,
            old=change.old,
            new=change.new,
            call_log=change.call_log,
        )
        for receiver, answer in answers:
            if isinstance(answer, Exception):
                logger.error("health_changed receiver %r failed", receiver, exc_info=answer)
    return transitions
