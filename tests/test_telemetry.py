"""OpenTelemetry spans and metrics of outbound calls, recorded by the SDK's in-memory
exporter and reader from providers handed to ``telemetry.use_providers`` (the global
providers can be set only once per process, and the app never sets them)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from integrations import services, telemetry
from integrations.models import Account, CallLog
from tests.keys import CANARY
from tests.loopback import Reply

pytestmark = pytest.mark.django_db
QUERY_SECRET = "QUERY-value-5e1f-never-exported"


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        resource = Resource.create({"service.name": "shop"})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.reader])

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for resource_metrics in (data.resource_metrics if data else [])
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Recorded]:
    recorded = Recorded()
    telemetry.use_providers(recorded.tracer_provider, recorded.meter_provider)
    yield recorded
    telemetry.use_providers()  # back to the (unset) global providers


@pytest.fixture
def api(server, make_integration):
    server.route("GET", "/api/items", lambda r: Reply(200, {"ok": True}))
    server.route("GET", "/api/broken", lambda r: Reply(503, b"secret remote error body"))
    return make_integration(base_url=f"{server.url}/api/")


def test_one_client_span_per_call_with_what_an_operator_needs(otel, api, server):
    response = services.get_session("billing").get("items", params={"q": QUERY_SECRET})
    assert response.status_code == 200
    [span] = otel.finished()
    assert span.name == "integrations.call GET"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "integrations.slug": "billing",
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "url.path": "/api/items",
        "http.response.status_code": 200,
        "integrations.attempts": 1,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope.name == "integrations"


def test_failures_carry_the_error_type_only(otel, api, make_integration):
    make_integration("down", base_url="http://127.0.0.1:9/api/")
    with override_settings(INTEGRATIONS_RETRY_TOTAL=0):
        assert services.get_session("billing").get("broken").status_code == 503
        with pytest.raises(Exception) as raised:
            services.get_session("down").get("items")
    status_span, refused_span = otel.finished()
    assert status_span.attributes["error.type"] == "503"
    assert status_span.status.status_code is StatusCode.ERROR
    assert status_span.status.description is None
    assert refused_span.attributes["error.type"] == type(raised.value).__name__
    assert "http.response.status_code" not in refused_span.attributes
    assert refused_span.status.status_code is StatusCode.ERROR
    # No exception event: an exception's message is not ours to export.
    assert [event.name for event in refused_span.events] == ["token.refresh"]


def test_attempts_count_retries(otel, api, server):
    answers = iter([503, 200])
    server.route("GET", "/api/flaky", lambda r: Reply(next(answers), {}))
    with override_settings(INTEGRATIONS_RETRY_BACKOFF=0):
        services.get_session("billing").get("flaky")
    [span] = otel.finished()
    assert span.attributes["integrations.attempts"] == 2
    assert span.attributes["integrations.attempts"] == CallLog.objects.get().attempts


def test_token_refresh_is_an_event_on_misses_only(otel, api):
    session = services.get_session("billing")
    session.get("items")
    session.get("items")  # cached token: no event, no count
    first, second = otel.finished()
    assert [e.name for e in first.events] == ["token.refresh"]
    assert dict(first.events[0].attributes) == {
        "integrations.slug": "billing",
        "integrations.token.outcome": "ok",
    }
    assert second.events == ()
    [count] = otel.points("integrations.token.requests")
    assert count.value == 1
    assert dict(count.attributes) == {"integrations.slug": "billing",
                                      "integrations.token.outcome": "ok"}


def test_an_accounts_calls_name_it_on_spans_but_not_in_metrics(otel, api):
    Account.objects.create(integration=api, key="acme", options={"claims": {"sub": "acme"}})
    services.get_session("billing", "acme").get("items")
    [span] = otel.finished()
    assert span.attributes["integrations.slug"] == "billing"
    assert span.attributes["integrations.account"] == "acme"
    assert span.events[0].attributes["integrations.account"] == "acme"
    # One metric series per account would be unbounded: metrics name the integration.
    for name in ("integrations.call.duration", "integrations.token.requests"):
        [point] = otel.points(name)
        assert point.attributes["integrations.slug"] == "billing"
        assert "integrations.account" not in point.attributes


def test_a_token_that_cannot_be_obtained_is_counted_as_an_error(otel, api):
    def refuse() -> str:
        raise PermissionError("token endpoint said no: " + CANARY)

    with pytest.raises(PermissionError):
        telemetry.obtain_token(api, refuse)
    [count] = otel.points("integrations.token.requests")
    assert dict(count.attributes) == {"integrations.slug": "billing",
                                      "integrations.token.outcome": "error",
                                      "error.type": "PermissionError"}


def test_call_duration_histogram_in_seconds(otel, api):
    session = services.get_session("billing")
    session.get("items")
    session.get("items")
    with override_settings(INTEGRATIONS_RETRY_TOTAL=0):
        session.get("broken")
    data = otel.reader.get_metrics_data()
    [metric] = [m for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics if m.name == "integrations.call.duration"]
    assert metric.unit == "s"
    by_status = {p.attributes["http.response.status_code"]: p for p in metric.data.data_points}
    assert by_status[200].count == 2 and 0 < by_status[200].sum < 5
    assert dict(by_status[503].attributes) == {
        "integrations.slug": "billing", "http.request.method": "GET",
        "http.response.status_code": 503, "error.type": "503",
    }
    assert metric.data.data_points and list(by_status[200].explicit_bounds)[:3] == [
        0.005, 0.01, 0.025,
    ]


def test_test_calls_are_traced_too(otel, api):
    api.test_request = {"method": "GET", "path": "items", "expect_status": [200]}
    api.save()
    services.run_test("billing")
    assert [span.name for span in otel.finished()] == ["integrations.call GET"]


def test_unknown_methods_are_reported_as_other(otel, api, server):
    server.route("PURGE", "/api/items", lambda r: Reply(204))
    services.get_session("billing").request("purge", "items")
    [span] = otel.finished()
    assert span.name == "integrations.call _OTHER"


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("latin-1")
    elif isinstance(value, dict) or hasattr(value, "items"):
        for key, inner in value.items():
            yield str(key)
            yield from strings(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from strings(inner)
    elif value is not None:
        yield str(value)


def test_canary_sweep_nothing_secret_in_any_span_event_resource_or_metric(otel, server,
                                                                         make_integration):
    """security.md #39: no key, token, header value, query value or remote body."""
    seen_tokens: list[str] = []

    def items(request):
        seen_tokens.append(request.bearer)
        return Reply(401 if len(seen_tokens) == 1 else 200, b"remote body " + CANARY.encode())

    server.route("GET", "/api/items", items)
    make_integration(base_url=f"{server.url}/api/", headers={"X-Api-Key": CANARY})
    services.get_session("billing").get(
        f"{server.url}/api/items?key={QUERY_SECRET}", params={"token": QUERY_SECRET}
    )
    assert len(seen_tokens) == 2 and all(seen_tokens)  # refused once, refreshed
    exported: list[str] = []
    for span in otel.finished():
        exported += [span.name, *strings(dict(span.attributes)), str(span.status.description),
                     *strings(dict(span.resource.attributes))]
        for event in span.events:
            exported += [event.name, *strings(dict(event.attributes))]
    data = otel.reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        exported += strings(dict(resource_metrics.resource.attributes))
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                exported += [metric.name, metric.description, metric.unit]
                for point in metric.data.data_points:
                    exported += strings(dict(point.attributes))
    text = "\n".join(exported)
    assert "token.refresh" in text and "/api/items" in text  # the sweep saw the data
    for secret in (CANARY, QUERY_SECRET, *seen_tokens, *[t.split(".")[1] for t in seen_tokens]):
        assert secret not in text


def test_without_opentelemetry_everything_is_a_no_op():
    """Blocked at import: the module decides once, and its functions just call through."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from integrations import telemetry\n"
        "assert telemetry.ENABLED is False and telemetry._instruments is None\n"
        "class I: slug = 's'\n"
        "assert telemetry.obtain_token(I(), lambda: 'tok') == 'tok'\n"
        "assert telemetry.traced(I(), 'GET', lambda: 'outcome') == 'outcome'\n"
        "telemetry.use_providers()\n"
        "assert telemetry._instruments is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_session_skips_telemetry_when_disabled(otel, api, monkeypatch):
    monkeypatch.setattr(telemetry, "ENABLED", False)
    monkeypatch.setattr(telemetry, "traced", None)  # would raise if called
    assert services.get_session("billing").get("items").status_code == 200
    assert otel.finished() == []


def test_flush_exports_what_a_batch_processor_still_holds() -> None:
    """A forked test-run worker (integrations/fanout.py) exits without the interpreter's
    exit hooks: telemetry.flush() is what exports its last spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    telemetry.use_providers(provider)
    try:
        with provider.get_tracer("test").start_as_current_span("held"):
            pass
        assert exporter.get_finished_spans() == ()
        telemetry.flush()
        assert [span.name for span in exporter.get_finished_spans()] == ["held"]
    finally:
        telemetry.use_providers()
        provider.shutdown()
