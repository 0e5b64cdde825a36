"""What OpenTelemetry costs per call: ours (cached token, ``log_calls=none``) against a
bare ``requests.Session`` on one loopback API, in one child process per case so each
decides at import as a site would:

- OpenTelemetry not installed (its import blocked: ``telemetry.ENABLED`` is False);
- installed, no SDK configured (the API's no-op proxies, what a site gets by default);
- installed with the SDK recording: a TracerProvider with a BatchSpanProcessor to an
  in-memory exporter and a MeterProvider with an in-memory reader.

Each child runs interleaved rounds of bare and ours and prints its best round (CPU time
of the process per call is the steadier figure on a shared machine).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable

ROUNDS = 5
CALLS = 300
CASES = {
    "OpenTelemetry not installed": "blocked",
    "opentelemetry-api, no SDK configured": "api",
    "SDK recording (batch span processor, in-memory)": "sdk",
}


def run() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": "sqlite:////tmp/integrations-bench-telemetry.sqlite3",
    }
    print(f"{ROUNDS} interleaved rounds of {CALLS} calls; best round of each.\n")
    print(
        "| case | bare µs (wall / CPU) | ours µs (wall / CPU) | × bare CPU "
        "| telemetry alone µs/call |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    results = {}
    for label, mode in CASES.items():
        out = subprocess.run(
            [sys.executable, "-c", f"import bench.telemetry as b; b.measure({mode!r})"],
            env=env, check=True, capture_output=True, text=True, timeout=300,
        ).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])
    for label, r in results.items():
        print(
            f"| {label} | {r['bare'][0]:.0f} / {r['bare'][1]:.0f} | {r['ours'][0]:.0f} / "
            f"{r['ours'][1]:.0f} | {r['ours'][1] / r['bare'][1]:.2f} | {r['alone']:.2f} |"
        )
    print(
        "\ntelemetry alone: what perform() adds around one call, timed without I/O "
        "(best of 5 timeit runs): the ENABLED check, or traced() with its span, context "
        "and histogram record."
    )


def _best(call: Callable[[], object], rounds: list[tuple[float, float]]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(CALLS):
        call()
    rounds.append(((time.perf_counter() - wall) / CALLS * 1e6,
                   (time.process_time() - cpu) / CALLS * 1e6))


def measure(mode: str) -> None:
    """Child process: one case; prints a JSON line {bare: [wall, cpu], ours: [...]}."""
    if mode == "blocked":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    import django

    django.setup()
    import requests
    from django.core.management import call_command

    from bench.calls import _integration, serve
    from integrations import services, telemetry
    from tests.keys import rsa_pem

    assert telemetry.ENABLED is (mode != "blocked")
    if mode == "sdk":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
        telemetry.use_providers(tracer_provider, MeterProvider(
            metric_readers=[InMemoryMetricReader()]))
    call_command("migrate", verbosity=0)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(child,),
                                                           daemon=True)
    process.start()
    try:
        base = f"http://127.0.0.1:{parent.recv()}"
        slug = f"bench-otel-{mode}-{os.getpid()}"
        _integration(slug, f"{base}/api/", "none", rsa_pem())
        bare = requests.Session()
        bare.trust_env = False
        bare.headers["Authorization"] = "Bearer " + "x" * 600
        ours = services.get_session(slug)
        clients = {"bare": lambda: bare.get(f"{base}/api/resource"),
                   "ours": lambda: ours.get("resource")}
        for call in clients.values():
            for _ in range(50):
                call()
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(ROUNDS):
            for name, call in clients.items():
                _best(call, rounds[name])
    finally:
        process.terminate()
        process.join()
    found: dict[str, object] = {name: [min(r[0] for r in got), min(r[1] for r in got)]
                                for name, got in rounds.items()}
    found["alone"] = _alone(ours.integration)
    print(json.dumps(found))


def _alone(integration: object) -> float:
    """µs that perform()'s telemetry branch adds to one call, without the call."""
    import timeit

    from integrations import telemetry
    from integrations.http.outcome import Outcome

    outcome = Outcome("GET", "http://127.0.0.1:1/api/resource?x=1", time.perf_counter())

    def perform() -> Outcome:
        return outcome

    def branch() -> Outcome:  # what IntegrationSession.perform does first
        if telemetry.ENABLED:
            return telemetry.traced(integration, "GET", perform)  # type: ignore[arg-type]
        return perform()

    number = 20_000
    with_branch = min(timeit.repeat(branch, number=number, repeat=5))
    bare = min(timeit.repeat(perform, number=number, repeat=5))
    return (with_branch - bare) / number * 1e6
