"""Signer benchmark: per-token signing cost of the local signer, a SoftHSM2 token and
moto's KMS server on loopback, for the same JWT (RS256 and ES256); then the per-call
cost through ``services.request`` with a cached token, for an integration signing with
each of them, and the device's sign operations over those calls (one: the token's).

Each figure is the mean wall time of ``sign_jwt`` over N tokens after one warm-up
(which reads and caches the public key); a few seconds per row at most. SoftHSM2 signs
in-process through PKCS#11; the KMS figure is a loopback HTTP round trip to moto and
says nothing about real KMS latency (tens of milliseconds per Sign in a region).
Nothing is asserted: the numbers are printed for reading.

The per-call rows call a loopback API (``log_calls`` none, so the call log's write is
not in the figure); a cached token is reused, so a device signer costs what the local
one does: signing happens only when the token is refreshed.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from integrations.signers import Signer, sign_jwt
from integrations.signers.local import LocalSigner
from tests.keys import ec_pem, rsa_pem

TOKENS = 300
BUDGET = 4.0  # seconds per row at most
CLAIMS = {"iss": "bench", "sub": "svc", "aud": "https://api.example.com", "iat": 1700000000}


def _mean_ms(signer: Signer) -> tuple[float, int]:
    sign_jwt(signer, CLAIMS)  # warm-up: session/client, public key
    started = time.perf_counter()
    count = 0
    while count < TOKENS and time.perf_counter() - started < BUDGET:
        sign_jwt(signer, {**CLAIMS, "n": count})
        count += 1
    return (time.perf_counter() - started) * 1000 / count, count


# Signer settings of the integrations the per-call rows use, by row kind.
DEVICES: dict[str, tuple[dict[str, Any], str]] = {}
CALLS = 300
WARM_UP = 20


def _rows(stack: ExitStack) -> list[tuple[str, str, Signer | str]]:
    rows: list[tuple[str, str, Signer | str]] = [
        ("local", "RS256", LocalSigner("RS256", rsa_pem())),
        ("local", "ES256", LocalSigner("ES256", ec_pem())),
    ]
    from tests.signers.devices import HSM_KEY_FOR, SOFTHSM_MODULE, softhsm_token

    if os.path.exists(SOFTHSM_MODULE):
        from integrations.signers.pkcs11 import Pkcs11Signer

        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        token = stack.enter_context(softhsm_token(directory))
        for algorithm in ("RS256", "ES256"):
            signer = Pkcs11Signer(
                algorithm, module=token["module"], token_label=token["token_label"],
                key_label=HSM_KEY_FOR[algorithm], pin=token["pin"],
            )
            stack.callback(signer.close)
            rows.append(("SoftHSM2", algorithm, signer))
        DEVICES["SoftHSM2"] = (
            {"type": "pkcs11", "module": token["module"], "token_label": token["token_label"],
             "key_label": HSM_KEY_FOR["ES256"]},
            token["pin"],
        )
    else:
        rows.append(("SoftHSM2", "-", f"skipped: {SOFTHSM_MODULE} missing"))
    try:
        from integrations.signers.aws_kms import AwsKmsSigner
        from tests.signers.devices import KMS_SPEC_FOR, moto_kms

        kms = stack.enter_context(moto_kms())
        for algorithm in ("RS256", "ES256"):
            rows.append((
                "moto KMS", algorithm,
                AwsKmsSigner(algorithm, key_id=kms["keys"][KMS_SPEC_FOR[algorithm]],
                             region=kms["region"], endpoint_url=kms["endpoint_url"]),
            ))
        DEVICES["moto KMS"] = (
            {"type": "aws_kms", "key_id": kms["keys"][KMS_SPEC_FOR["ES256"]],
             "region": kms["region"], "endpoint_url": kms["endpoint_url"]},
            "",
        )
    except ImportError as exc:
        rows.append(("moto KMS", "-", f"skipped: {exc.name} not installed"))
    return rows


def _cached_calls() -> None:
    """ms per ``services.request`` with a cached ES256 token, and sign operations."""
    from django.core.management import call_command

    from integrations import services
    from integrations.models import Integration
    from integrations.tokens.custody import signer_cache
    from tests.loopback import LoopbackServer, Reply

    call_command("migrate", verbosity=0)
    print(f"\n{'signer':<10} {'calls':>6} {'ms/call':>8} {'x local':>8} {'sign ops':>9}")
    with LoopbackServer() as api:
        api.route("GET", "/api/x", lambda r: Reply(200, {}))
        local = 0.0
        kinds: list[tuple[str, tuple[dict[str, Any], str] | None]] = [("local", None)]
        kinds += list(DEVICES.items())
        for kind, device in kinds:
            slug = "bench-" + kind.lower().replace(" ", "-").replace("#", "")
            Integration.objects.filter(slug=slug).delete()
            integration = Integration(
                slug=slug, name=slug, base_url=f"{api.url}/api/", log_calls="none",
                auth_type="jwt_bearer", auth_config={"algorithm": "ES256", "claims": {}},
            )
            if device is None:
                integration.set_secrets({"key": ec_pem()})
            else:
                integration.auth_config["signer"] = device[0]
                integration.set_secrets({"signer_pin": device[1]} if device[1] else {})
            integration.full_clean()
            integration.save()
            for _ in range(WARM_UP):  # the session, its connection and the token
                services.request(slug, "GET", "x")
            started = time.perf_counter()
            for _ in range(CALLS):
                services.request(slug, "GET", "x")
            mean = (time.perf_counter() - started) * 1000 / CALLS
            local = local or mean
            (signer,) = signer_cache.signers(slug)
            # Over all WARM_UP + CALLS calls; the local signer does not count its own.
            ops = str(getattr(signer, "sign_count", "-"))
            total = WARM_UP + CALLS
            print(f"{kind:<10} {total:>6} {mean:>8.3f} {mean / local:>8.2f} {ops:>9}", flush=True)
            integration.delete()


def run() -> None:
    with ExitStack() as stack:
        rows = _rows(stack)
        print(f"{'signer':<10} {'alg':<6} {'tokens':>6} {'ms/token':>9} {'x local':>8}")
        local: dict[str, float] = {}
        for kind, algorithm, signer in rows:
            if isinstance(signer, str):
                print(f"{kind:<10} {algorithm:<6} {signer}")
                continue
            mean, count = _mean_ms(signer)
            if kind == "local":
                local[algorithm] = mean
            ratio = mean / local[algorithm] if algorithm in local else float("nan")
            print(f"{kind:<10} {algorithm:<6} {count:>6} {mean:>9.3f} {ratio:>8.1f}", flush=True)
        _cached_calls()


if __name__ == "__main__":
    run()
