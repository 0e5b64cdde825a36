"""The AWS KMS signer against moto's KMS server on loopback (security.md #32: the key
stays in KMS; ECDSA DER signatures become raw R||S)."""

from __future__ import annotations

import base64
import multiprocessing
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from integrations.exceptions import SigningError
from integrations.signers import sign_jwt
from integrations.signers.aws_kms import AwsKmsSigner
from integrations.signers.base import b64url, hash_for
from tests.child import FORKS
from tests.loopback import LoopbackServer, Reply
from tests.signers.devices import KMS_SPEC_FOR, free_port
from tests.signers.verify import assert_public, verify

CLAIMS = {"iss": "kms", "sub": "svc", "iat": 1700000000}


def _signer(kms: dict[str, Any], algorithm: str, **changes: Any) -> AwsKmsSigner:
    options = {
        "key_id": kms["keys"][KMS_SPEC_FOR[algorithm]],
        "region": kms["region"],
        "endpoint_url": kms["endpoint_url"],
        **changes,
    }
    return AwsKmsSigner(algorithm, **options)


@pytest.mark.parametrize("algorithm", [a for a in sorted(KMS_SPEC_FOR) if a[:2] != "PS"])
def test_tokens_signed_by_kms_verify_with_joserfc(kms: dict[str, Any], algorithm: str) -> None:
    signer = _signer(kms, algorithm)
    token = sign_jwt(signer, CLAIMS, {"kid": "kms-1"})
    _, claims = verify(token, signer.public_jwk(), algorithm)
    assert claims == CLAIMS
    assert signer.sign_count == 1
    assert_public(signer.public_jwk())


@pytest.mark.parametrize("algorithm", ["PS256", "PS384", "PS512"])
def test_pss_signatures_from_kms_verify(kms: dict[str, Any], algorithm: str) -> None:
    """Real KMS salts PSS with the hash length (RFC 7518 §3.5), which joserfc checks.
    moto salts with the maximum length instead, so its signatures are checked here with
    the salt length recovered (PSS.AUTO); the JWS framing is the same as for RS*."""
    signer = _signer(kms, algorithm)
    token = sign_jwt(signer, CLAIMS)
    head, payload, signature = token.split(".")
    raw = signer.public_key()
    sig = base64.urlsafe_b64decode(signature + "==")
    digest = hash_for(algorithm)
    raw.verify(  # type: ignore[union-attr, call-arg]
        sig, f"{head}.{payload}".encode(),
        padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO), digest,
    )
    assert b64url(sig) == signature


def test_ecdsa_der_becomes_raw_r_s(kms: dict[str, Any]) -> None:
    for algorithm, size in (("ES256", 64), ("ES384", 96), ("ES512", 132)):
        signer = _signer(kms, algorithm)
        signatures = {len(signer.sign(b"a.b")) for _ in range(5)}
        assert signatures == {size}


def test_a_key_of_the_wrong_spec_is_refused_before_signing(kms: dict[str, Any]) -> None:
    signer = _signer(kms, "RS256", key_id=kms["keys"]["ECC_NIST_P256"])
    with pytest.raises(SigningError, match="RS256 needs RSASSA_PKCS1_V1_5_SHA_256.*ECC_NIST_P256"):
        sign_jwt(signer, CLAIMS)
    assert signer.sign_count == 0
    signer = _signer(kms, "ES384", key_id=kms["keys"]["ECC_NIST_P256"])
    with pytest.raises(SigningError, match="ES384 needs ECDSA_SHA_384"):
        sign_jwt(signer, CLAIMS)


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("encrypt", "refused sign .*: ValidationException|not a SIGN_VERIFY key"),
        ("missing", "refused get_public_key .*: no such key"),
    ],
)
def test_a_refusing_kms_is_a_clear_signing_error(
    kms: dict[str, Any], which: str, message: str
) -> None:
    key_id = {
        "encrypt": kms["encrypt"],
        "missing": "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000",
    }[which]
    with pytest.raises(SigningError, match=message) as caught:
        sign_jwt(_signer(kms, "ES256", key_id=key_id), CLAIMS)
    assert "CANARY" not in str(caught.value) and "testing" not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AccessDeniedException", "access denied"),
        ("DisabledException", "the key is disabled"),
        ("KMSInvalidStateException", "the key is not usable in its current state"),
    ],
)
def test_refusals_moto_does_not_model_are_clear_too(
    kms: dict[str, Any], server: LoopbackServer, code: str, reason: str
) -> None:
    """moto signs with disabled keys and has no key policies: a loopback endpoint
    answers as KMS does (HTTP 400, ``__type``), with a message naming a principal."""
    body = {"__type": code, "message": "User: arn:aws:iam::1:user/CANARY is not authorized"}
    server.route(
        "POST", "/", lambda _: Reply(400, body, {"Content-Type": "application/x-amz-json-1.1"})
    )
    signer = _signer(kms, "ES256", endpoint_url=server.url, max_attempts=1)
    with pytest.raises(SigningError, match=f"refused get_public_key .*: {reason}") as caught:
        sign_jwt(signer, CLAIMS)
    assert "CANARY" not in str(caught.value)


def test_an_unreachable_endpoint_fails_fast(kms: dict[str, Any]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    signer = _signer(kms, "ES256", endpoint_url=dead, connect_timeout=0.5, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SigningError, match=f"AWS KMS at {dead} is unreachable"):
        sign_jwt(signer, CLAIMS)
    assert time.monotonic() - started < 10


def test_missing_credentials_are_named(kms: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SigningError, match="no AWS credentials"):
        sign_jwt(_signer(kms, "ES256"), CLAIMS)


def test_missing_region_is_named(kms: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(SigningError, match="needs a region"):
        sign_jwt(_signer(kms, "ES256", region=""), CLAIMS)


def test_eddsa_and_hmac_are_not_offered(kms: dict[str, Any]) -> None:
    for algorithm in ("EdDSA", "Ed25519", "HS256"):
        with pytest.raises(SigningError, match="not supported"):
            AwsKmsSigner(algorithm, key_id="k", region="eu-west-1")


def _sign_in_child(signer: AwsKmsSigner, queue: Any) -> None:
    try:
        queue.put(("ok", sign_jwt(signer, {"child": True}), signer.client() is not None))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}", False))


@FORKS
def test_a_forked_child_makes_its_own_client(kms: dict[str, Any]) -> None:
    signer = _signer(kms, "ES256")
    jwk = signer.public_jwk()
    parent_client = signer.client()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_sign_in_child, args=(signer, queue))
    child.start()
    status, value, _ = queue.get(timeout=60)
    child.join(30)
    assert status == "ok", value
    verify(value, jwk, "ES256")
    assert signer.client() is parent_client
    verify(sign_jwt(signer, {"parent": True}), jwk, "ES256")
