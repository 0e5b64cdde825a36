"""integrations_test: selection, exit codes, --json, --parallel, --only-failed, --enqueue."""

from __future__ import annotations

import json
import threading

import pytest

from integrations.models import CallLog, Integration
from tests.commands.helpers import TTY, manage
from tests.keys import CANARY
from tests.loopback import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(server, make_integration):
    """``up`` answers 200, ``down`` 500 (not retried: tests stay fast); both are tested
    with a GET of /health."""
    server.route("GET", "/up/health", lambda r: Reply(200, {}))
    server.route("GET", "/down/health", lambda r: Reply(500, {}))
    test_request = {"method": "GET", "path": "health"}
    make_integration("up", base_url=f"{server.url}/up/", test_request=test_request)
    make_integration("down", base_url=f"{server.url}/down/", test_request=test_request)


def test_all_passing_exits_0_and_logs_source_command(server, make_integration):
    """reference.md: exit 0 when every test passes; each call leaves a CallLog row
    (source command)."""
    server.route("GET", "/up/health", lambda r: Reply(200, {}))
    make_integration("up", base_url=f"{server.url}/up/", test_request={"path": "health"})
    ran = manage("integrations_test", "up")
    assert ran.code == 0, ran.err
    row = CallLog.objects.get()
    assert (row.source, row.is_test, row.ok, row.status_code) == ("command", True, True, 200)
    assert "1 passed, 0 failed" in ran.err and ran.out == ""


def test_json_is_the_only_stdout_and_has_the_contract_fields(two):
    """reference.md --json: one JSON list on stdout with slug/ok/status_code/duration_ms/error;
    human text on stderr; exit 1 because one failed."""
    ran = manage("integrations_test", "--all", "--json")
    assert ran.code == 1
    results = {item["slug"]: item for item in json.loads(ran.out)}
    assert set(results) == {"up", "down"}
    for item in results.values():
        assert {"slug", "ok", "status_code", "duration_ms", "error"} <= set(item)
    assert results["up"]["ok"] is True and results["up"]["error"] is None
    assert results["down"] == results["down"] | {"ok": False, "status_code": 500}
    assert "unexpected status 500" in results["down"]["error"]
    assert "FAIL  down" in ran.err and "1 passed, 1 failed" in ran.err


def test_all_skips_disabled_but_a_named_disabled_one_fails(two):
    """reference.md: --all is every enabled integration; a disabled one named fails
    with "disabled"."""
    Integration.objects.filter(slug="down").update(enabled=False)
    assert manage("integrations_test", "--all", "--json").code == 0
    ran = manage("integrations_test", "down", "--json")
    assert ran.code == 1
    assert json.loads(ran.out)[0]["error"] == "disabled"


def test_unknown_slug_exits_2_and_tests_nothing(two):
    """reference.md: an unknown slug is a usage error (exit 2) and no call is made."""
    ran = manage("integrations_test", "up", "nope")
    assert ran.code == 2 and "unknown integration: nope" in ran.err
    assert not CallLog.objects.exists()


@pytest.mark.parametrize("args", [[], ["up", "--all"], ["up", "--parallel", "0"]])
def test_usage_errors_exit_2(two, args):
    """reference.md: usage errors exit 2 with one line."""
    assert manage("integrations_test", *args).code == 2


def test_undecryptable_secret_fails_that_integration_only(two, settings):
    """reference.md, security.md #9: a secret the key ring cannot decrypt fails that integration's
    result with a clear error, the others still run; exit 1, no traceback, no secret."""
    settings.INTEGRATIONS_ENCRYPTION_KEYS = ["b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktISE="]
    ran = manage("integrations_test", "up", "--json")
    assert ran.code == 1
    [item] = json.loads(ran.out)
    assert item["ok"] is False and "decrypt" in item["error"].lower()
    assert "Traceback" not in ran.err and CANARY not in ran.out + ran.err


def test_only_failed_retests_those_whose_last_test_failed(two):
    """--only-failed picks integrations whose most recent test call failed."""
    manage("integrations_test", "--all")
    ran = manage("integrations_test", "--only-failed", "--json")
    assert [item["slug"] for item in json.loads(ran.out)] == ["down"]
    ran = manage("integrations_test", "up", "--only-failed")
    assert ran.code == 0 and "Nothing to test" in ran.err


def test_parallel_runs_calls_concurrently(server, make_integration):
    """--parallel N keeps N calls in flight: the server answers only once 4 requests wait
    together (a barrier, not a timer), so a serial run would fail every call."""
    barrier = threading.Barrier(4, timeout=10)

    def together(request):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return Reply(500, {"error": "not concurrent"})
        return Reply(200, {})

    server.route("GET", "/api/health", together)
    for n in range(8):
        make_integration(f"i{n}", base_url=f"{server.url}/api/", test_request={"path": "health"})
    ran = manage("integrations_test", "--all", "--parallel", "4", "--json")
    assert ran.code == 0, ran.err
    assert len(json.loads(ran.out)) == 8 and CallLog.objects.filter(ok=True).count() == 8


def test_progress_line_only_on_a_terminal(two):
    """STYLE: progress goes to stderr and only when stderr is a terminal."""
    plain = manage("integrations_test", "--all")
    assert "\r" not in plain.err
    tty = manage("integrations_test", "--all", err=TTY())
    assert "\r[2/2] 1 passed, 1 failed" in tty.err


def test_summary_names_the_slowest(two):
    """The summary counts passed/failed and names the slowest calls."""
    ran = manage("integrations_test", "--all")
    assert "1 passed, 1 failed in" in ran.err and "slowest: " in ran.err


def test_verbosity_0_shows_failures_only(two):
    """-v 0 keeps failures and the summary, drops the passing lines."""
    ran = manage("integrations_test", "--all", "-v", "0")
    assert "FAIL  down" in ran.err and "ok    up" not in ran.err


def test_enqueue_prints_task_ids_and_runs_as_tasks(two):
    """--enqueue: one task per integration, ids on stdout, exit 0 once enqueued; with the
    immediate backend the rows are already logged with source "task"."""
    ran = manage("integrations_test", "--all", "--enqueue", "--json")
    assert ran.code == 0, ran.err
    items = json.loads(ran.out)
    assert sorted(item["slug"] for item in items) == ["down", "up"]
    assert all(item["task_id"] for item in items)
    assert set(CallLog.objects.values_list("source", flat=True)) == {"task"}
    plain = manage("integrations_test", "up", "--enqueue")
    task_id, slug = plain.out.strip().split("\t")
    assert slug == "up" and task_id


def test_an_unexpected_error_fails_one_result_not_the_run(two, monkeypatch):
    """A bug hit while testing one integration becomes that integration's failed result
    (logged); the others are still tested and reported."""
    from integrations import testcalls

    real = testcalls.perform

    def flaky(integration, **kwargs):
        if integration.slug == "down":
            raise RuntimeError("boom")
        return real(integration, **kwargs)

    monkeypatch.setattr(testcalls, "perform", flaky)
    ran = manage("integrations_test", "--all", "--json", "--parallel", "2")
    results = {item["slug"]: item for item in json.loads(ran.out)}
    assert ran.code == 1
    assert results["up"]["ok"] is True
    assert results["down"]["error"] == "RuntimeError: boom"
    assert CallLog.objects.get(integration__slug="down").error == "RuntimeError: boom"
