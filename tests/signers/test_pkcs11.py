"""The PKCS#11 signer against a real SoftHSM2 token whose keys were generated inside it
(security.md #32: the key never leaves the token; the PIN never shows)."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

from integrations.exceptions import SigningError
from integrations.signers import sign_jwt
from integrations.signers.pkcs11 import Pkcs11Signer
from tests.child import FORKS
from tests.signers.devices import HSM_KEY_FOR, USER_PIN
from tests.signers.verify import assert_public, verify

CLAIMS = {"iss": "hsm", "aud": "https://api.example.com", "iat": 1700000000}


def _signer(softhsm: dict[str, Any], algorithm: str, **changes: Any) -> Pkcs11Signer:
    options = {
        "module": softhsm["module"],
        "token_label": softhsm["token_label"],
        "key_label": HSM_KEY_FOR.get(algorithm, "rsa"),
        "pin": softhsm["pin"],
        **changes,
    }
    return Pkcs11Signer(algorithm, **options)


@pytest.mark.parametrize("algorithm", sorted(HSM_KEY_FOR))
def test_tokens_signed_on_the_hsm_verify_with_joserfc(
    softhsm: dict[str, Any], algorithm: str
) -> None:
    if algorithm in ("EdDSA", "Ed25519") and not softhsm["ed25519"]:
        pytest.skip("this SoftHSM2 build has no CKM_EC_EDWARDS_KEY_PAIR_GEN / CKM_EDDSA")
    signer = _signer(softhsm, algorithm)
    token = sign_jwt(signer, CLAIMS, {"kid": "hsm-1"})
    _, claims = verify(token, signer.public_jwk(), algorithm)
    assert claims == CLAIMS
    assert signer.sign_count == 1
    # The public key is cached: previews and JWKS do not ask the token again.
    assert signer.public_key() is signer.public_key()


def test_ecdsa_signatures_are_raw_r_s_of_the_curve_size(softhsm: dict[str, Any]) -> None:
    """RFC 7518 §3.4: 2 x 66 bytes on P-521 even though 521 bits fit in 65.x bytes."""
    for algorithm, size in (("ES256", 64), ("ES384", 96), ("ES512", 132)):
        assert len(_signer(softhsm, algorithm).sign(b"x.y")) == size


def test_public_jwk_holds_only_allowlisted_members(softhsm: dict[str, Any]) -> None:
    """security.md #33, on device keys of each family."""
    for algorithm in ("RS256", "ES512", "EdDSA" if softhsm["ed25519"] else "ES256"):
        jwk = _signer(softhsm, algorithm).public_jwk()
        assert_public(jwk)
        assert jwk["use"] == "sig" and jwk["alg"] == algorithm


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pin": "0000-wrong"}, "wrong PIN"),
        ({"token_label": "no-such-token"}, "'no-such-token' is not present"),
        ({"key_label": "no-such-key"}, "no private key labelled 'no-such-key'"),
        ({"key_label": "aes"}, "no private key labelled 'aes'"),
        ({"module": "/nonexistent/libpkcs11.so"}, "does not exist"),
    ],
    ids=["wrong-pin", "unknown-token", "unknown-key", "secret-key", "no-module"],
)
def test_device_faults_are_clear_signing_errors(
    softhsm: dict[str, Any], changes: dict[str, str], message: str
) -> None:
    signer = _signer(softhsm, "RS256", **changes)
    with pytest.raises(SigningError, match=message) as caught:
        sign_jwt(signer, CLAIMS)
    assert USER_PIN not in str(caught.value) and "0000-wrong" not in str(caught.value)
    assert caught.value.__cause__ is None  # no device traceback chained to it


@pytest.mark.parametrize(
    ("algorithm", "key_label", "message"),
    [
        ("RS256", "p256", "RS256 needs an RSA key; 'p256' .* is EC"),
        ("ES256", "rsa", "ES256 needs an EC key"),
        ("ES384", "p256", "ES384 needs an EC key on secp384r1"),
        ("Ed25519", "p256", "Ed25519 needs an Edwards-curve key"),
    ],
)
def test_a_key_of_the_wrong_type_is_refused(
    softhsm: dict[str, Any], algorithm: str, key_label: str, message: str
) -> None:
    signer = _signer(softhsm, algorithm, key_label=key_label)
    with pytest.raises(SigningError, match=message):
        signer.public_key()
        signer.sign(b"a.b")


def test_a_wrong_pin_is_tried_once(softhsm: dict[str, Any]) -> None:
    """A real HSM locks the PIN after a few wrong tries: the signer does not retry."""
    signer = _signer(softhsm, "RS256", pin="0000-wrong")
    with pytest.raises(SigningError) as first:
        signer.sign(b"a.b")
    with pytest.raises(SigningError) as second:
        signer.sign(b"a.b")
    assert second.value is first.value


def test_the_pin_is_not_in_repr_or_vars(softhsm: dict[str, Any]) -> None:
    signer = _signer(softhsm, "ES256")
    signer.sign(b"a.b")
    assert USER_PIN not in repr(signer)
    others = {k: v for k, v in vars(signer).items() if k != "_Pkcs11Signer__pin"}
    assert USER_PIN not in repr(others)


def test_sixteen_threads_share_one_signer(softhsm: dict[str, Any]) -> None:
    signer = _signer(softhsm, "ES256")
    jwk = signer.public_jwk()
    tokens: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                tokens.append(sign_jwt(signer, {"n": n, "i": i}))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(tokens) == 160
    for token in tokens:
        verify(token, jwk, "ES256")
    assert signer.sign_count == 160


def _wrong_pin_in_fresh_child(softhsm: dict[str, Any], queue: Any) -> None:
    # After fork no login exists in this process, so the token itself checks the PIN.
    try:
        _signer(softhsm, "RS256", pin="0000-wrong").sign(b"a.b")
        queue.put("signed")
    except SigningError as exc:
        queue.put(str(exc))


@FORKS
def test_a_wrong_pin_is_refused_by_the_token(softhsm: dict[str, Any]) -> None:
    _signer(softhsm, "RS256").sign(b"a.b")  # the parent is logged in with the right PIN
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_wrong_pin_in_fresh_child, args=(softhsm, queue))
    child.start()
    message = queue.get(timeout=60)
    child.join(30)
    assert message == "PKCS#11 token 'integrations' refused the PIN (wrong PIN)"


def _sign_in_child(signer: Pkcs11Signer, queue: Any) -> None:
    try:
        queue.put(("ok", sign_jwt(signer, {"child": True})))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


@FORKS
def test_signing_works_in_a_forked_child_and_after(softhsm: dict[str, Any]) -> None:
    """The child re-initialises the module and logs in again; the parent's session
    is untouched and keeps signing."""
    signer = _signer(softhsm, "PS256")
    jwk = signer.public_jwk()
    sign_jwt(signer, {"parent": "before"})  # the parent holds an open session
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_sign_in_child, args=(signer, queue))
    child.start()
    status, value = queue.get(timeout=60)
    child.join(30)
    assert status == "ok", value
    assert child.exitcode == 0
    verify(value, jwk, "PS256")
    verify(sign_jwt(signer, {"parent": "after"}), jwk, "PS256")
