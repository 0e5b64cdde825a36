"""DPoP benchmark: what a proof per request costs against a loopback keep-alive call.

The loopback API server is bench.calls' (its own process, keep-alive HTTP/1.1, a small
fixed JSON body). Figures are the best of five rounds, per call or per proof:

- one proof (``DPoPKey.proof`` with ``ath``), per algorithm;
- a call through the app's ``GuardedSession`` with ``Authorization: Bearer``, and the
  same call with ``Authorization: DPoP`` plus a fresh proof.

Target (issue 13): an ES256 proof costs less than 10% of a loopback call. Run with
``python -m bench dpop``.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

from bench.calls import serve

ROUNDS = 5
CALLS_PER_ROUND = 400
PROOFS_PER_ROUND = 1000
ALGORITHMS = ("ES256", "EdDSA", "Ed25519", "ES384", "PS256")
TOKEN = "bench-access-token-" + "x" * 40


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
    from integrations.http.session import GuardedSession
    from integrations.tokens.dpop import DPoPKey

    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
    process.start()
    try:
        url = f"http://127.0.0.1:{parent.recv()}/v1/items?page=1"
        http = GuardedSession()
        es256 = DPoPKey.generate("ES256")
        bearer = {"Authorization": f"Bearer {TOKEN}"}

        def bearer_call() -> object:
            return http.get(url, headers=bearer)

        def dpop_call() -> object:
            proof = es256.proof("GET", url, access_token=TOKEN)
            return http.get(url, headers={"Authorization": f"DPoP {TOKEN}", "DPoP": proof})

        bearer_call()  # open the keep-alive connection
        keys = {algorithm: DPoPKey.generate(algorithm) for algorithm in ALGORITHMS}
        works: dict[str, tuple[Callable[[], object], int]] = {
            "loopback call, Bearer": (bearer_call, CALLS_PER_ROUND),
            "loopback call, DPoP+ES256": (dpop_call, CALLS_PER_ROUND),
        }
        for algorithm, key in keys.items():
            works[f"proof {algorithm}"] = (
                lambda key=key: key.proof("GET", url, access_token=TOKEN),
                PROOFS_PER_ROUND,
            )
        figures = interleaved(works)
        floor = figures["loopback call, Bearer"]
        print(f"{'':28}{'per call':>12}{'x loopback call':>18}")
        for name, seconds in figures.items():
            verdict = ""
            if name == "proof ES256":
                verdict = "  (target < 0.100)" + ("" if seconds / floor < 0.1 else " MISSED")
            print(f"{name:28}{seconds * 1e6:>10.1f}us{seconds / floor:>18.3f}{verdict}")
    finally:
        process.terminate()
        process.join()


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    run()
