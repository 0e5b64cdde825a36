"""integrations.health and integrations.alerts: health from test calls (per integration
and per account), transitions as every test call path reports them, the alert digest
(docs/reference.md, Operations; security.md #39)."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import override_settings

from integrations.alerts import post_alert
from integrations.health import FAILING, OK, UNKNOWN, classify, health_of, health_report, observe
from integrations.models import Account, CallLog
from integrations.signals import health_changed
from integrations.tasks import enqueue_tests
from integrations.testcalls import TestResult, run_test, run_tests
from tests.commands.helpers import manage
from tests.keys import CANARY
from tests.loopback import Reply

pytestmark = pytest.mark.django_db

TEST_REQUEST = {"method": "GET", "path": "health", "expect_status": [200]}


@pytest.mark.parametrize(
    ("newest_first", "failures", "expected"),
    [
        ([], 2, UNKNOWN),
        ([None, None], 2, UNKNOWN),
        ([True], 2, OK),
        ([False], 2, UNKNOWN),
        ([False, True], 2, OK),
        ([False, False], 2, FAILING),
        ([False, False, True], 2, FAILING),
        ([True, False, False], 2, OK),
        ([False], 1, FAILING),
        ([False, False, True], 3, OK),
        ([False, False, False], 3, FAILING),
    ],
)
def test_classify(newest_first, failures, expected):
    """N failed test calls in a row are failing; one success among them is ok."""
    assert classify(newest_first, failures) == expected


@pytest.fixture
def remote(server):
    """A remote whose health endpoint answers with ``remote.status``; a failure's body
    holds the canary, which no alert may repeat (security.md #39)."""

    class Remote:
        status = 200

    def answer(request):
        if Remote.status == 200:
            return Reply(200, {"ok": True})
        return Reply(Remote.status, {"error": f"remote body {CANARY}"})

    server.route("GET", "/api/health", answer)
    server.route("POST", "/hook", lambda r: Reply(204))
    Remote.server = server
    return Remote


@pytest.fixture
def alerts(server, settings):
    """Alerts to the loopback webhook (a secret in its query, as chat webhooks have) and
    two addresses; no retry waits."""
    settings.INTEGRATIONS_ALERT_WEBHOOK = f"{server.url}/hook?token={CANARY}"
    settings.INTEGRATIONS_ALERT_EMAILS = "ops@example.com, oncall@example.com"
    settings.INTEGRATIONS_RETRY_BACKOFF = 0
    return server


def posted(server):
    return [json.loads(r.body) for r in server.calls("POST", "/hook")]


@pytest.fixture
def changes():
    """Every health_changed the test causes, as the signal's receivers get them: the
    test call paths (run_test, run_tests) report their own transitions."""
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    health_changed.connect(receiver)
    yield received
    health_changed.disconnect(receiver)


def moves(received):
    """(old, new) of each change received, and forget them."""
    found = [(event["old"], event["new"]) for event in received]
    received.clear()
    return found


def test_exactly_one_post_per_transition(remote, alerts, make_integration, changes):
    """unknown -> ok, one failure (no alert), a second (ok -> failing), more failures
    (no alert), a success (failing -> ok): three transitions, three POSTs."""
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    assert health_of(integration) == UNKNOWN
    seen = []
    for status in (200, 500, 500, 500, 200, 200):
        remote.status = status
        run_test(integration, source="command")
        seen.append(moves(changes))
    assert seen == [[(UNKNOWN, OK)], [], [(OK, FAILING)], [], [(FAILING, OK)], []]
    bodies = posted(alerts)
    assert [[(c["old"], c["new"]) for c in b["changes"]] for b in bodies] == [
        [(UNKNOWN, OK)], [(OK, FAILING)], [(FAILING, OK)]
    ]
    assert len(mail.outbox) == 3
    assert health_of(integration) == OK


def test_alert_carries_only_the_summary(remote, alerts, make_integration):
    """security.md #39: slug, account, old, new, when, status code, error class; no
    secret, query value or remote body in the POST or the mail."""
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    remote.status = 500
    run_test(integration, source="command")
    run_test(integration, source="command")
    (body,) = posted(alerts)
    (change,) = body["changes"]
    assert set(change) == {
        "slug", "account", "old", "new", "when", "status_code", "error_class"
    }
    assert change["slug"] == "billing" and change["account"] is None
    assert (change["old"], change["new"]) == (UNKNOWN, FAILING)
    assert change["status_code"] == 500 and change["error_class"] == "UnexpectedStatus"
    assert body["failing"] == 1 and body["recovered"] == 0
    request = alerts.calls("POST", "/hook")[0]
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers
    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject == "[integrations] billing is failing (was unknown)"
    for text in (request.body.decode(), message.subject, message.body):
        assert CANARY not in text and "remote body" not in text


def test_error_class_is_the_exception_name_only(remote, alerts, make_integration):
    """A connection failure is named by its class, never its message (which holds the
    host and port; security.md #39)."""
    integration = make_integration(
        base_url="http://127.0.0.1:9/api/", test_request=TEST_REQUEST
    )
    with override_settings(INTEGRATIONS_HEALTH_FAILURES=1, INTEGRATIONS_RETRY_TOTAL=0):
        run_test(integration, source="command")
    ((alert,),) = [body["changes"] for body in posted(alerts)]
    assert alert["status_code"] is None
    assert alert["error_class"] in {"ConnectionError", "NewConnectionError"}
    assert "127.0.0.1" not in json.dumps(posted(alerts))


def test_many_transitions_in_one_run_are_one_digest(remote, alerts, make_integration, changes):
    """Many integrations failing at once: one POST and one mail for the run."""
    integrations = [
        make_integration(slug, base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST)
        for slug in ("billing", "crm", "shipping")
    ]
    remote.status = 500
    with override_settings(INTEGRATIONS_HEALTH_FAILURES=1):
        run_tests(integrations, source="command", parallel=3)
    assert sorted(c["integration"].slug for c in changes) == ["billing", "crm", "shipping"]
    (body,) = posted(alerts)
    assert [c["slug"] for c in body["changes"]] == ["billing", "crm", "shipping"]
    assert body["failing"] == 3
    (message,) = mail.outbox
    assert "3 integrations changed health" in message.subject
    assert all(slug in message.body for slug in ("billing", "crm", "shipping"))


def test_signal_carries_the_transition(remote, make_integration, changes):
    """health_changed(sender, integration, account, old, new, call_log), with no alert
    configured: the signal alone."""
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    result = run_test(integration, source="command")
    (event,) = changes
    assert event["integration"] == integration and event["account"] is None
    assert (event["old"], event["new"]) == (UNKNOWN, OK)
    assert event["call_log"].pk == result.log_id
    assert remote.server.calls("POST", "/hook") == [] and mail.outbox == []


def test_an_older_result_changes_nothing(remote, make_integration):
    """A result that is no longer the newest test call (a later run logged another) is
    that later run's to report."""
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    first = run_test(integration, source="command")
    run_test(integration, source="command")
    assert observe([first]) == []


def test_unlogged_result_changes_nothing(db):
    """Health is read from the call log: a result without a row changes nothing."""
    assert observe([TestResult.missing(1)]) == []


def test_webhook_retries_then_delivers(server, settings, make_integration):
    """A 503 from the webhook is retried; the digest arrives once."""
    answers = iter([Reply(503), Reply(200)])
    server.route("POST", "/hook", lambda r: next(answers))
    settings.INTEGRATIONS_RETRY_BACKOFF = 0
    settings.INTEGRATIONS_ALERT_WEBHOOK = f"{server.url}/hook"
    outcome = post_alert.call({"changes": []})
    assert outcome == {"sent": True, "attempts": 2, "status_code": 200}
    assert len(server.calls("POST", "/hook")) == 2


def test_webhook_down_never_breaks_the_run(remote, settings, make_integration, caplog):
    """The webhook unreachable: the run still returns its transitions; the log names
    the error class, never the webhook URL (which may hold a secret)."""
    settings.INTEGRATIONS_ALERT_WEBHOOK = f"http://127.0.0.1:9/hook?token={CANARY}"
    settings.INTEGRATIONS_RETRY_BACKOFF = 0
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    assert run_test(integration, source="command").ok
    assert health_of(integration) == OK
    assert "webhook failed after 3 attempt(s): ConnectionError" in caplog.text
    assert CANARY not in caplog.text and "127.0.0.1:9" not in caplog.text


def test_webhook_goes_through_the_address_guard(server, settings):
    """security.md #39: the guarded session refuses a private address unless allowed."""
    server.route("POST", "/hook", lambda r: Reply(204))
    settings.INTEGRATIONS_ALLOW_PRIVATE_NETWORKS = False
    settings.INTEGRATIONS_RETRY_BACKOFF = 0
    settings.INTEGRATIONS_ALERT_WEBHOOK = f"{server.url}/hook"
    outcome = post_alert.call({"changes": []})
    assert outcome["sent"] is False
    assert server.calls("POST", "/hook") == []


def test_health_of_counts_only_test_calls(make_integration):
    """Calls from application code never change health: only test calls do."""
    integration = make_integration()
    for ok in (False, False):
        CallLog.objects.create(
            integration=integration, source="api", method="GET", url="x", ok=ok
        )
    assert health_of(integration) == UNKNOWN


def test_a_failing_receiver_stops_neither_the_run_nor_the_alert(remote, alerts, make_integration):
    """A receiver that raises is logged; the change is still returned and alerted."""
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    health_changed.connect(broken)
    try:
        assert run_test(integration, source="command").ok
    finally:
        health_changed.disconnect(broken)
    ((change,),) = [body["changes"] for body in posted(alerts)]
    assert change["new"] == OK


def test_each_account_has_its_own_health(remote, alerts, make_integration, changes):
    """Per account (docs/reference.md, Accounts): one account failing is that account's
    transition, named in the signal and the alert; the other account stays ok."""
    integration = make_integration(
        base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    good, bad = (
        Account.objects.create(integration=integration, key=key) for key in ("good", "bad")
    )
    with override_settings(INTEGRATIONS_HEALTH_FAILURES=1):
        run_tests([(integration, good), (integration, bad)], source="command")
        assert sorted((e["account"].key, e["old"], e["new"]) for e in changes) == [
            ("bad", UNKNOWN, OK), ("good", UNKNOWN, OK)
        ]
        changes.clear()
        remote.status = 500
        run_test(integration, source="command", account=bad)
        (event,) = changes
        assert (event["account"], event["old"], event["new"]) == (bad, OK, FAILING)
        assert event["integration"] == integration
        assert health_of(integration, bad) == FAILING and health_of(integration, good) == OK
        assert health_of(integration) == UNKNOWN  # no test call made for no account
    *_, body = posted(alerts)
    assert [(c["slug"], c["account"], c["new"]) for c in body["changes"]] == [
        ("billing", "bad", FAILING)
    ]


def test_every_test_call_path_reports_health(remote, make_integration, changes):
    """The command and the task feed health too (they run on run_tests/run_test)."""
    make_integration(base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST)
    crm = make_integration(
        "crm", base_url=f"{remote.server.url}/api/", test_request=TEST_REQUEST
    )
    assert manage("integrations_test", "billing").code == 0
    enqueue_tests([crm])  # the immediate backend: run when this returns
    assert [(e["integration"].slug, e["new"]) for e in changes] == [("billing", OK), ("crm", OK)]


def test_the_report_lists_each_accounts_health(make_integration, django_assert_num_queries):
    """An integration with accounts is failing when one of them is, and lists each
    enabled account's health (a disabled one is left out); two queries in all."""
    billing = make_integration()
    make_integration("crm")
    accounts = {
        key: Account.objects.create(integration=billing, key=key, enabled=key != "off")
        for key in ("good", "bad", "new", "off")
    }
    for key, oks in {"good": [True], "bad": [False, False], "off": [False, False]}.items():
        for ok in oks:
            CallLog.objects.create(
                integration=billing, account=accounts[key], source="command", is_test=True,
                method="GET", url="x", ok=ok,
            )
    with django_assert_num_queries(2):
        report = {entry.slug: entry.as_dict() for entry in health_report()}
    assert report["crm"] == {"slug": "crm", "health": UNKNOWN, "last_test_at": None}
    assert report["billing"]["health"] == FAILING
    assert report["billing"]["last_test_at"] is not None
    assert [(a["key"], a["health"]) for a in report["billing"]["accounts"]] == [
        ("bad", FAILING), ("good", OK), ("new", UNKNOWN)
    ]
