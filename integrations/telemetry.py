"""OpenTelemetry spans and metrics for outbound calls (docs/reference.md "Operations").

Through ``opentelemetry-api`` only: the site configures the SDK and its exporters, this
module never does. Whether OpenTelemetry is installed is decided once, at import:
without it ``ENABLED`` is False and the HTTP layer skips ``traced`` at the cost of one
attribute check per call.

- ``traced(integration, method, perform)``: one CLIENT span around a call made through
  ``IntegrationSession`` (retries included), current while the call runs, and one
  ``integrations.call.duration`` measurement (seconds).
- ``obtain_token(integration, obtain)``: around a token fetched or minted on a cache miss; a
  ``token.refresh`` event on the current call's span and one ``integrations.token.requests``.
- ``rows_lost(count, reason)``: call-log rows not written (``lost``: the database refused
  them; ``dropped``: the background queue was full), ``integrations.calllog.lost_rows``.
- ``use_providers(...)``: take tracer and meter from given providers (tests; sites that keep
  their providers out of the globals).

What telemetry may carry (security.md #39): slug, account, method, host, port, URL path
without query, status code, attempts and an error's class name. Never a header, token,
key, assertion, query value, body or exception message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from .accounts import AccountScope

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
except ImportError:  # the `otel` extra is not installed: everything below is a no-op
    ENABLED = False
else:
    ENABLED = True

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .http.outcome import Outcome
    from .tokens.base import IntegrationLike

T = TypeVar("T")

SCOPE = "integrations"
# Seconds, as OpenTelemetry's HTTP semantic conventions advise for http.client durations.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# Any other method is reported as _OTHER (semantic conventions): a caller's method
# string must not become an unbounded set of metric series.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
DEFAULT_PORTS = {"http": 80, "https": 443}

Attributes = dict[str, str | int]


class _Instruments:
    """The tracer and the two metric instruments, from one pair of providers."""

    __slots__ = ("tracer", "duration", "token_requests", "lost_rows", "providers")

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.providers = (tracer_provider, meter_provider)
        # Without explicit providers these are the API's proxies: they follow whatever
        # global providers the site sets, before or after this import.
        self.tracer: Tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.duration: Histogram = meter.create_histogram(
            "integrations.call.duration",
            unit="s",
            description="Duration of calls to remote APIs, retries included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_requests: Counter = meter.create_counter(
            "integrations.token.requests",
            unit="{request}",
            description="Tokens fetched or minted on a token cache miss, by outcome.",
        )
        self.lost_rows: Counter = meter.create_counter(
            "integrations.calllog.lost_rows",
            unit="{row}",
            description="Call-log rows not written: refused by the database, or dropped.",
        )


_instruments: _Instruments | None = _Instruments() if ENABLED else None


def use_providers(
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Take the tracer and meter from these providers; ``None`` means the global one.
    Without OpenTelemetry installed this does nothing."""
    global _instruments
    if ENABLED:
        _instruments = _Instruments(tracer_provider, meter_provider)


def flush() -> None:
    """Export what the site's providers still hold (a worker process about to exit
    without the interpreter's exit hooks, integrations/fanout.py)."""
    if _instruments is None:
        return
    tracer_provider, meter_provider = _instruments.providers
    for provider in (
        tracer_provider or trace.get_tracer_provider(),
        meter_provider or metrics.get_meter_provider(),
    ):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush()


def names(integration: IntegrationLike) -> tuple[str, str | None]:
    """(slug, account key or None): a provider acting for an account sees its integration
    through an ``AccountScope``."""
    if isinstance(integration, AccountScope):
        return integration.integration.slug, integration.key
    return integration.slug, None


def method_name(method: str) -> str:
    method = method.upper()
    return method if method in KNOWN_METHODS else "_OTHER"


def traced(
    integration: IntegrationLike, method: str, perform: Callable[[], Outcome]
) -> Outcome:
    """Run ``perform`` (one call, retries included) inside a CLIENT span and measure it.

    ``perform`` returns errors in its ``Outcome`` rather than raising; anything it
    does raise still ends the span and is re-raised unchanged.
    """
    tools = _instruments
    if tools is None:
        return perform()
    slug, account = names(integration)
    method = method_name(method)
    start: Attributes = {"integrations.slug": slug, "http.request.method": method}
    if account:
        start["integrations.account"] = account
    span = tools.tracer.start_span(
        f"integrations.call {method}",
        kind=trace.SpanKind.CLIENT,
        attributes=start,
        record_exception=False,  # an exception's message is not ours to export
        set_status_on_exception=False,
    )
    # Current while the call runs: token.refresh lands on it, and spans of an
    # instrumented requests/urllib3 nest under it.
    context_token = otel_context.attach(trace.set_span_in_context(span))
    started = time.perf_counter()
    try:
        outcome = perform()
    except BaseException as exc:
        otel_context.detach(context_token)
        _end(tools, span, start, None, type(exc).__name__, time.perf_counter() - started)
        raise
    seconds = time.perf_counter() - started
    otel_context.detach(context_token)
    error = outcome.error
    status = outcome.status_code
    error_type = (
        type(error).__name__
        if error is not None
        else str(status)
        if status is not None and status >= 400
        else None
    )
    _end(tools, span, start, outcome, error_type, seconds)
    return outcome


def _end(
    tools: _Instruments,
    span: Span,
    start: Attributes,
    outcome: Outcome | None,
    error_type: str | None,
    seconds: float,
) -> None:
    measured: Attributes = {
        "integrations.slug": start["integrations.slug"],
        "http.request.method": start["http.request.method"],
    }
    status = outcome.status_code if outcome is not None else None
    if status is not None:
        measured["http.response.status_code"] = status
    if error_type is not None:
        measured["error.type"] = error_type
    if span.is_recording():
        attributes = dict(measured)
        if outcome is not None:
            attributes.update(where(outcome.url))
            attributes["integrations.attempts"] = outcome.attempts
        span.set_attributes(attributes)
        if error_type is not None:
            span.set_status(trace.StatusCode.ERROR)  # no description: it could carry text
    span.end()
    tools.duration.record(seconds, measured)


def where(url: str) -> Attributes:
    """server.address, server.port and url.path of ``url``; the query, fragment and any
    user:password@ never leave this function."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a malformed URL: report nothing rather than fail the call
        return {}
    found: Attributes = {"url.path": parts.path or "/"}
    if parts.hostname:
        found["server.address"] = parts.hostname
    if port is not None:
        found["server.port"] = port
    return found


def rows_lost(count: int, reason: str) -> None:
    """Count call-log rows that were not written (security.md #25: never silently)."""
    tools = _instruments
    if tools is not None:
        tools.lost_rows.add(count, {"integrations.calllog.reason": reason})


def obtain_token(integration: IntegrationLike, obtain: Callable[[], T]) -> T:
    """Call ``obtain`` (a token cache miss) and record it: a ``token.refresh`` event on
    the current span and one ``integrations.token.requests`` with its outcome."""
    tools = _instruments
    if tools is None:
        return obtain()
    try:
        token = obtain()
    except Exception as exc:
        _token_recorded(tools, integration, {"integrations.token.outcome": "error",
                                             "error.type": type(exc).__name__})
        raise
    _token_recorded(tools, integration, {"integrations.token.outcome": "ok"})
    return token


def _token_recorded(
    tools: _Instruments, integration: IntegrationLike, attributes: Attributes
) -> None:
    # The span event names the account; the counter does not (one series per account
    # would be unbounded cardinality).
    attributes["integrations.slug"], account = names(integration)
    tools.token_requests.add(1, attributes)
    if account:
        attributes["integrations.account"] = account
    trace.get_current_span().add_event("token.refresh", attributes)
