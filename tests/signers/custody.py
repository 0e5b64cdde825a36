"""Key custody test helpers: device signer settings, the devices' own public keys, a
loopback API verifying tokens against them, and importing an entry that uses them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from integrations.signers.pkcs11 import Pkcs11Signer
from tests import jose
from tests.commands.helpers import manage
from tests.loopback import LoopbackServer, Recorded, Reply
from tests.signers.devices import HSM_KEY_FOR, KMS_SPEC_FOR, USER_PIN

HSM_ALGORITHMS = ["RS256", "PS384", "ES256", "ES512", "EdDSA"]
# PS* is end to end on SoftHSM2: moto salts PSS with the maximum length, not the hash
# length RFC 7518 §3.5 (and joserfc) want; tests/signers/test_aws_kms.py covers it.
KMS_ALGORITHMS = ["RS256", "RS512", "ES256", "ES384", "ES512"]



def hsm_signer(softhsm: dict[str, Any], algorithm: str, **changes: Any) -> dict[str, Any]:
    return {
        "type": "pkcs11",
        "module": softhsm["module"],
        "token_label": softhsm["token_label"],
        "key_label": HSM_KEY_FOR[algorithm],
        "pin": {"env": "HSM_PIN"},
        **changes,
    }


def kms_signer(kms: dict[str, Any], algorithm: str, **changes: Any) -> dict[str, Any]:
    return {
        "type": "aws_kms",
        "key_id": kms["keys"][KMS_SPEC_FOR[algorithm]],
        "region": kms["region"],
        "endpoint_url": kms["endpoint_url"],
        **changes,
    }


def kms_pem(kms: dict[str, Any], key_id: str) -> str:
    """The public key as KMS itself reports it (not the app's cached copy)."""
    der = kms["client"].get_public_key(KeyId=key_id)["PublicKey"]
    return serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def hsm_pem(softhsm: dict[str, Any], algorithm: str) -> str:
    """The public key read from the token by a signer of its own (not the app's)."""
    return fresh_hsm(softhsm, algorithm).public_pem()


def fresh_hsm(softhsm: dict[str, Any], algorithm: str) -> Pkcs11Signer:
    return Pkcs11Signer(
        algorithm,
        module=softhsm["module"],
        token_label=softhsm["token_label"],
        key_label=HSM_KEY_FOR[algorithm],
        pin=softhsm["pin"],
    )


def verifying_api(server: LoopbackServer, pem: str, algorithm: str) -> list[dict[str, Any]]:
    """GET /api/ping answers 200 only to a token that verifies with ``pem``."""
    headers: list[dict[str, Any]] = []

    def ping(request: Recorded) -> Reply:
        try:
            header, _ = jose.verify(request.bearer, pem, algorithm)
        except Exception as exc:  # noqa: BLE001
            return Reply(401, {"error": type(exc).__name__})
        headers.append(header)
        return Reply(200, {"ok": True})

    server.route("GET", "/api/ping", ping)
    return headers


def import_entry(tmp_path: Path, signer: dict[str, Any], *, slug: str = "hsm",
                 base_url: str = "http://127.0.0.1:9/api/", algorithm: str = "RS256",
                 **auth: Any) -> Any:
    entry = {
        "slug": slug,
        "base_url": base_url,
        "test_request": {"path": "ping", "expect_status": [200]},
        "auth": {"type": "jwt_bearer", "algorithm": algorithm, "claims": {"iss": "shop"},
                 "lifetime": 300, "signer": signer, **auth},
    }
    path = tmp_path / f"{slug}.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    return manage("integrations_import", str(path))


def no_pin_in(*texts: str) -> None:
    for text in texts:
        assert USER_PIN not in text and "CANARY-wrong" not in text
