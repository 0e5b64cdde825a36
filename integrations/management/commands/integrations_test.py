from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Exists, OuterRef, Q, QuerySet

from integrations.calllog import describe_error
from integrations.models import Account, CallSource, Integration
from integrations.tasks import enqueue_tests
from integrations.testcalls import (
    CALLS_PER_PROCESS,
    DEFAULT_PARALLEL,
    Target,
    TestResult,
    default_parallel,
    default_processes,
    run_tests,
    targets,
)

SLOWEST_SHOWN = 3


class Command(BaseCommand):
    help = (
        "Fire each integration's test request and log it. "
        "Exit 0 all passed, 1 any failed, 2 usage error or unknown slug."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", metavar="SLUG")
        parser.add_argument(
            "--all",
            action="store_true",
            help="every enabled integration (one with accounts: each enabled account)",
        )
        parser.add_argument(
            "--account", metavar="KEY", help="test one account of the (one) named integration"
        )
        parser.add_argument(
            "--only-failed",
            action="store_true",
            help="only those whose last test call failed (of the named ones, or of all "
            "enabled ones when none is named)",
        )
        parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
        parser.add_argument(
            "--parallel",
            type=int,
            metavar="N",
            help=f"test calls in flight at once (default: up to {DEFAULT_PARALLEL})",
        )
        parser.add_argument(
            "--processes",
            type=int,
            metavar="N",
            help="worker processes sharing the --parallel calls (default: one per CPU "
            f"once there are {CALLS_PER_PROCESS:,} test calls for each; 1 = this process)",
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="enqueue one background task per integration (TASKS setting) and print "
            "the task ids instead of waiting; exit 0 once enqueued",
        )

    def handle(self, *args: Any, slugs: list[str], **options: Any) -> None:
        parallel = options["parallel"]
        if parallel is not None and parallel < 1:
            raise CommandError("--parallel must be at least 1", returncode=2)
        if options["processes"] is not None and options["processes"] < 1:
            raise CommandError("--processes must be at least 1", returncode=2)
        selected = self.select(slugs, every=options["all"], only_failed=options["only_failed"])
        integrations: list[Target]
        if options["account"] is not None:
            integrations = self.one_account(selected, slugs, options["account"])
        else:
            integrations = targets(selected)
            if options["only_failed"]:
                integrations = only_failed_accounts(integrations)
        if not integrations:
            self.stderr.write("Nothing to test.")
            if options["json"]:
                self.stdout.write("[]")
            return
        if options["enqueue"]:
            self.enqueue(integrations, as_json=options["json"])
            return
        started = time.perf_counter()
        progress = Progress(self, len(integrations)) if self.stderr.isatty() else None
        processes = options["processes"] or default_processes(
            len(integrations), parallel or default_parallel(len(integrations))
        )
        results = run_tests(
            integrations,
            source=CallSource.COMMAND,
            parallel=parallel,
            processes=processes,
            on_result=progress.update if progress else None,
        )
        if progress:
            progress.finish()
        for result in results:
            if options["verbosity"] >= 1 or not result.ok:
                self.report(result)
        if options["json"]:
            self.stdout.write(json.dumps([result.as_dict() for result in results], indent=2))
        self.summarize(results, time.perf_counter() - started)
        failed = sum(not result.ok for result in results)
        if failed:
            raise CommandError(f"{failed} of {len(results)} test call(s) failed", returncode=1)

    def select(self, slugs: list[str], *, every: bool, only_failed: bool) -> list[Integration]:
        if every and slugs:
            raise CommandError("name slugs or give --all, not both", returncode=2)
        if not (every or slugs or only_failed):
            raise CommandError("name one or more slugs, or give --all", returncode=2)
        if slugs:
            found = {i.slug: i for i in Integration.objects.filter(slug__in=slugs)}
            with_accounts = (
                set(
                    Account.objects.filter(integration__slug__in=slugs)
                    .values_list("integration_id", flat=True)
                    .distinct()
                )
                if only_failed
                else set()
            )
            unknown = [slug for slug in dict.fromkeys(slugs) if slug not in found]
            if unknown:
                raise CommandError(f"unknown integration: {', '.join(unknown)}", returncode=2)
            selected = [found[slug] for slug in dict.fromkeys(slugs)]
            if only_failed:
                failing = set(last_test_failed(slug__in=slugs))
                selected = [i for i in selected if i.pk in failing or i.pk in with_accounts]
            return selected
        enabled = Integration.objects.filter(enabled=True).order_by("slug")
        if only_failed:
            # One with accounts stays: which of its accounts failed is for each
            # account's own last test to say (only_failed_accounts), not for the
            # integration's newest test of any account.
            has_accounts = Exists(Account.objects.filter(integration=OuterRef("pk")))
            enabled = enabled.annotate(has_accounts=has_accounts).filter(
                Q(pk__in=last_test_failed(enabled=True)) | Q(has_accounts=True)
            )
        return list(enabled)

    def one_account(self, selected: list[Any], slugs: list[str], key: str) -> list[Target]:
        if len(slugs) != 1:
            raise CommandError("--account needs exactly one SLUG", returncode=2)
        account = Account.objects.filter(integration__slug=slugs[0], key=key).first()
        if account is None:
            raise CommandError(f"integration {slugs[0]!r} has no account {key!r}", returncode=2)
        return [(selected[0], account)] if selected else []

    def enqueue(self, integrations: list[Target], *, as_json: bool) -> None:
        try:
            results = enqueue_tests(integrations)
        except Exception as exc:
            # The engine is unreachable or misconfigured (Redis down, queue unknown).
            raise CommandError(f"could not enqueue: {describe_error(exc)}", returncode=1) from None
        pairs = list(zip(integrations, results, strict=True))
        if as_json:
            # slug and account apart, as each result of a run (TestResult.as_dict()).
            enqueued = [
                {"slug": slug, "account": key, "task_id": r.id, "status": str(r.status)}
                for (slug, key), r in ((split_label(target), r) for target, r in pairs)
            ]
            self.stdout.write(json.dumps(enqueued, indent=2))
        else:
            for target, result in pairs:
                self.stdout.write(f"{result.id}\t{label(target)}")
        backend = type(results[0].task.get_backend()).__name__
        self.stderr.write(f"Enqueued {len(results)} test call(s) on {backend}.")

    def report(self, result: TestResult) -> None:
        slug = f"{result.slug}[{result.account}]" if result.account else result.slug
        if result.ok:
            self.stderr.write(
                self.style.SUCCESS(f"ok    {slug}: {result.status_code} in {result.duration_ms} ms")
            )
        else:
            reason = result.error or f"status {result.status_code}"
            self.stderr.write(self.style.ERROR(f"FAIL  {slug}: {reason}"))

    def summarize(self, results: list[TestResult], elapsed: float) -> None:
        failed = sum(not result.ok for result in results)
        line = f"{len(results) - failed} passed, {failed} failed in {elapsed:.1f} s"
        timed = sorted((r for r in results if r.status_code is not None),
                       key=lambda r: r.duration_ms, reverse=True)[:SLOWEST_SHOWN]
        if timed:
            line += "; slowest: " + ", ".join(
                f"{label(r)} {r.duration_ms} ms" for r in timed
            )
        self.stderr.write(self.style.ERROR(line) if failed else self.style.SUCCESS(line))


def split_label(item: Target | TestResult) -> tuple[str, str | None]:
    """(slug, account key or None)."""
    if isinstance(item, TestResult):
        return item.slug or "", item.account
    if isinstance(item, tuple):
        return item[0].slug, item[1].key if item[1] is not None else None
    return item.slug, None


def label(item: Target | TestResult) -> str:
    """``slug``, or ``slug[account]`` for a call made for an account."""
    slug, key = split_label(item)
    return f"{slug}[{key}]" if key else slug


def only_failed_accounts(selected: list[Target]) -> list[Target]:
    """Of the (integration, account) pairs, those whose account's own last test failed
    (one query, by integration: no list of 100,000 ids); integrations without accounts
    were filtered already."""
    integrations = {t[0].pk for t in selected if isinstance(t, tuple) and t[1] is not None}
    if not integrations:
        return selected
    accounts = Account.objects.filter(integration__in=integrations, enabled=True)
    latest: QuerySet[Any] = accounts.with_last_test()
    failing = set(latest.filter(last_test_ok=False).values_list("pk", flat=True))
    return [
        t for t in selected if not isinstance(t, tuple) or (t[1] is not None and t[1].pk in failing)
    ]


def last_test_failed(**filters: Any) -> list[int]:
    """Primary keys of those (matching ``filters``) whose most recent test call failed
    (never tested: excluded)."""
    # QuerySet[Any]: django-stubs cannot see with_last_test()'s annotations.
    latest: QuerySet[Any] = Integration.objects.filter(**filters).with_last_test()
    return list(latest.filter(last_test_ok=False).values_list("pk", flat=True))


class Progress:
    """``[12/1000] 11 passed, 1 failed`` rewritten in place on a terminal's stderr."""

    def __init__(self, command: BaseCommand, total: int) -> None:
        self.command = command
        self.total = total
        self.done = self.failed = 0

    def update(self, result: TestResult) -> None:
        self.done += 1
        self.failed += not result.ok
        self.command.stderr.write(
            f"\r[{self.done}/{self.total}] {self.done - self.failed} passed, "
            f"{self.failed} failed",
            ending="",
        )
        self.command.stderr.flush()

    def finish(self) -> None:
        self.command.stderr.write("")
