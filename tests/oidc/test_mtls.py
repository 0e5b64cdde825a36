"""The client_certificate secret: checks on save and loading from memory (security.md #35)."""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from integrations.exceptions import InvalidConfiguration
from integrations.http import mtls
from integrations.http.mtls import (
    ClientCertificateAdapter,
    client_ssl_context,
    load_client_certificate,
    parse_client_certificate,
)
from integrations.http.session import GuardedSession
from tests.oidc.server import key_pem, self_signed_certificate

NOW = datetime.datetime.now(datetime.UTC)


def certificate(key: Any, *, days: int = 90, start_days: int = -1) -> str:
    cert = self_signed_certificate(
        key,
        "client",
        NOW + datetime.timedelta(days=start_days),
        NOW + datetime.timedelta(days=days),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ca_leaf() -> str:
    leaf = trustme.CA().issue_cert("client.test", common_name="client")
    return leaf.private_key_and_cert_chain_pem.bytes().decode()


def test_a_trustme_chain_parses(ca_leaf: str) -> None:
    parsed = parse_client_certificate(ca_leaf)
    assert "CN=client" in parsed.subject
    assert not parsed.self_signed and parsed.warnings == ()
    assert parsed.pem.count("BEGIN CERTIFICATE") >= 1 and "PRIVATE KEY" in parsed.pem
    assert "PRIVATE" not in repr(parsed)


def test_key_in_front_of_the_certificate_is_fine() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert parse_client_certificate(key_pem(key) + certificate(key)).key_description == (
        "EC secp256r1"
    )


def refused(text: str) -> InvalidConfiguration:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_client_certificate(text)
    assert caught.value.field == "client_certificate"
    assert "BEGIN" not in str(caught.value)
    return caught.value


def test_a_key_that_does_not_match_is_refused() -> None:
    one, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    assert "does not belong" in str(refused(certificate(one) + key_pem(other)))


def test_an_expired_certificate_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert "expired" in str(refused(certificate(key, days=-1, start_days=-30) + key_pem(key)))


def test_a_certificate_not_yet_valid_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert "not valid before" in str(refused(certificate(key, start_days=2) + key_pem(key)))


def test_expiry_within_30_days_is_warned_of() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    parsed = parse_client_certificate(certificate(key, days=10) + key_pem(key))
    assert len(parsed.warnings) == 1 and "expires on" in parsed.warnings[0]


def test_weak_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert "2048" in str(refused(certificate(small) + key_pem(small)))
    weak_ec = ec.generate_private_key(ec.SECP224R1())
    assert "P-256" in str(refused(certificate(weak_ec) + key_pem(weak_ec)))


def test_parse_errors_never_quote_the_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    text = key_pem(key)
    broken = text.replace(text.splitlines()[2], "A" * len(text.splitlines()[2]))
    error = refused(certificate(key) + broken)
    assert text.splitlines()[1] not in str(error)
    refused("no PEM here")
    refused(certificate(key))  # no key
    refused(key_pem(key))  # no certificate
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    ).decode()
    assert "encrypted" in str(refused(certificate(key) + encrypted))


def test_memfd_loading_leaves_no_file_behind(
    ca_leaf: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not hasattr(os, "memfd_create"):
        pytest.skip("no memfd_create on this platform")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def no_files(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the key must not be written to a file")

    monkeypatch.setattr(tempfile, "mkdtemp", no_files)
    before = set(os.listdir(f"/proc/{os.getpid()}/fd"))
    context = ssl.create_default_context()
    assert load_client_certificate(context, parse_client_certificate(ca_leaf)) == "memfd"
    assert set(os.listdir(f"/proc/{os.getpid()}/fd")) <= before  # the memfd is closed
    assert list(tmp_path.iterdir()) == []


def test_without_memfd_a_private_file_is_used_and_removed(
    ca_leaf: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: dict[str, int] = {}

    class Watching(ssl.SSLContext):
        def load_cert_chain(self, certfile: Any, *args: Any, **kwargs: Any) -> None:
            seen["file"] = os.stat(certfile).st_mode & 0o777
            seen["dir"] = os.stat(os.path.dirname(certfile)).st_mode & 0o777
            super().load_cert_chain(certfile, *args, **kwargs)

    context = Watching(ssl.PROTOCOL_TLS_CLIENT)
    assert load_client_certificate(context, parse_client_certificate(ca_leaf)) == "private-file"
    assert seen == {"file": 0o600, "dir": 0o700}
    assert list(tmp_path.iterdir()) == []


def test_the_adapter_keeps_the_guard_and_mounts_on_https(ca_leaf: str) -> None:
    http = GuardedSession()
    adapter = mtls.mount_client_certificate(http, client_ssl_context(ca_leaf))
    assert http.get_adapter("https://api.example/") is adapter
    assert isinstance(adapter, ClientCertificateAdapter)
    assert adapter.poolmanager.connection_pool_kw["ssl_context"] is adapter.ssl_context
    # The guarded connection classes stay in place (security.md #11).
    from integrations.http.adapter import POOL_CLASSES

    assert adapter.poolmanager.pool_classes_by_scheme is POOL_CLASSES
    with pytest.raises(Exception, match="verification cannot be turned off"):
        http.get("https://127.0.0.1:9/", verify=False)
