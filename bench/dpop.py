"""DPoP benchmark: what a proof per request costs against a loopback keep-alive call.

The loopback API server is bench.calls' (its own process, keep-alive HTTP/1.1, a small
fixed JSON body), whose token endpoint answers ``token_type: DPoP`` to a request
carrying a proof. Calls go through the real app: ``services.get_session`` of a
``client_assertion`` integration (cached token, ``log_calls=none``), once as Bearer and
once with ``dpop`` on, so the DPoP figure holds everything the app does per call (the
proof with ``ath`` and the origin's nonce, the ``Authorization: DPoP`` header, the
nonce bookkeeping of the answer). Figures are the best of five interleaved rounds:

- one proof (``DPoPKey.proof`` with ``ath``), per algorithm;
- the app's DPoP work per request (``DPoPBinding.authorize``: the origin's nonce, the
  proof with ``ath``, both headers), ES256 and EdDSA;
- a call with a Bearer token, and the same call with DPoP per algorithm; the
  difference is what DPoP costs a call.

Target (issue 13): an ES256 proof costs less than 10% of a loopback call. Run with
``python -m bench dpop``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.calls import LoopbackAPI, json_response, serve

ROUNDS = 5
CALLS_PER_ROUND = 400
PROOFS_PER_ROUND = 1000
ALGORITHMS = ("ES256", "EdDSA", "Ed25519", "ES384", "PS256")
CALL_ALGORITHMS = ("ES256", "EdDSA")
TOKEN = "bench-access-token-" + "x" * 40
SQLITE_FILE = Path(tempfile.gettempdir()) / "integrations-bench-dpop.sqlite3"

_DPOP_TOKEN_RESPONSE = json_response(
    json.dumps({"access_token": TOKEN, "token_type": "DPoP", "expires_in": 3600}).encode()
)


class DPoPAPI(LoopbackAPI):
    """bench.calls' server, whose token endpoint answers a request carrying a proof with
    a DPoP token (the resource checks no proof: the client's cost is what is measured)."""

    def answer(self, head: bytes, fields: dict[bytes, bytes]) -> bytes:
        if head.startswith(b"POST /token") and b"dpop" in fields:
            return _DPOP_TOKEN_RESPONSE
        return super().answer(head, fields)


def timed(work: Callable[[], object], count: int) -> float:
    """Seconds per call of ``count`` calls."""
    start = time.perf_counter()
    for _ in range(count):
        work()
    return (time.perf_counter() - start) / count


def interleaved(works: dict[str, tuple[Callable[[], object], int]]) -> dict[str, float]:
    """Best seconds per call of each work over ROUNDS rounds, taking turns so drift in
    the machine's load hits them alike."""
    figures: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(ROUNDS):
        for name, (work, count) in works.items():
            figures[name].append(timed(work, count))
    return {name: min(values) for name, values in figures.items()}


def run() -> None:
    """In a child process on its own SQLite file (migrated there)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{SQLITE_FILE}",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
    }
    try:
        subprocess.run(
            [sys.executable, "-c", "import bench.dpop as b; b.measure()"], env=env, check=True
        )
    finally:
        for leftover in SQLITE_FILE.parent.glob(SQLITE_FILE.name + "*"):
            leftover.unlink()


def _integration(slug: str, base: str, dpop: str | None) -> None:
    from integrations.models import Integration
    from integrations.tokens.sender import ensure_dpop_key
    from tests.keys import ec_pem

    auth = {"algorithm": "ES256", "client_id": "bench", "token_url": f"{base}/token"}
    if dpop:
        auth.update(dpop=True, dpop_algorithm=dpop)
    row = Integration(
        slug=slug, name=slug, base_url=f"{base}/v1/", auth_type="client_assertion",
        auth_config=auth, log_calls="none",
    )
    row.set_secrets({"key": ec_pem()})
    ensure_dpop_key(row)
    row.full_clean()
    row.save()


def measure() -> None:
    import django
    import requests

    django.setup()
    from django.core.management import call_command

    from integrations import services
    from integrations.tokens.dpop import DPoPKey

    call_command("migrate", verbosity=0)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child, DPoPAPI), daemon=True)
    process.start()
    try:
        base = f"http://127.0.0.1:{parent.recv()}"
        _integration("bearer", base, None)
        for algorithm in CALL_ALGORITHMS:
            _integration(f"dpop-{algorithm.lower()}", base, algorithm)
        works: dict[str, tuple[Callable[[], object], int]] = {}
        for slug in ["bearer", *(f"dpop-{a.lower()}" for a in CALL_ALGORITHMS)]:
            session = services.get_session(slug)
            response = session.get("items?page=1")  # the token, the keep-alive connection
            assert response.status_code == 200, response.content
            label = "Bearer" if slug == "bearer" else f"DPoP {slug[5:].upper()}"
            works[f"call, {label}"] = (
                lambda session=session: session.get("items?page=1"),
                CALLS_PER_ROUND,
            )
        url = f"{base}/v1/items?page=1"
        prepared = requests.Request("GET", url).prepare()
        for algorithm in CALL_ALGORITHMS:
            dpop = services.get_session(f"dpop-{algorithm.lower()}").auth.dpop  # type: ignore[union-attr]
            works[f"app's DPoP, {algorithm}"] = (
                lambda dpop=dpop: dpop.authorize(prepared, TOKEN),
                PROOFS_PER_ROUND,
            )
        for algorithm in ALGORITHMS:
            key = DPoPKey.generate(algorithm)
            works[f"proof {algorithm}"] = (
                lambda key=key: key.proof("GET", url, nonce="n-1", access_token=TOKEN),
                PROOFS_PER_ROUND,
            )
        figures = interleaved(works)
    finally:
        process.terminate()
        process.join()
    floor = figures["call, Bearer"]
    print("Through services.get_session (client_assertion, cached token, log_calls=none):\n")
    print(f"{'':22}{'per call':>12}{'x Bearer call':>16}")
    for name, seconds in figures.items():
        verdict = ""
        if name in ("proof ES256", "app's DPoP, ES256"):
            verdict = "  (target < 0.100)" + ("" if seconds / floor < 0.1 else " MISSED")
        if name.startswith("call, DPoP"):
            verdict = f"  (+{(seconds - floor) * 1e6:.1f}us over Bearer)"
        print(f"{name:22}{seconds * 1e6:>10.1f}us{seconds / floor:>16.3f}{verdict}")


if __name__ == "__main__":
    run()
