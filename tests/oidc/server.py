"""node-oidc-provider for the tests: installed from tests/oidc's lock file, started over
HTTPS with trustme certificates, stopped at the end of the session.

The test keys and certificates are made here and registered with the provider:

- ``assertion``  private_key_jwt (ES256 key given inline as jwks); DPoP optional
- ``rollover``   private_key_jwt, registered by jwks_uri (served from ``jwks_dir``)
- ``dpop``       private_key_jwt, DPoP-bound tokens, the token endpoint wants a nonce
- ``ed25519``    private_key_jwt with an Ed25519 key, registered for alg ``Ed25519`` only
- ``tls``        tls_client_auth (subject DN), certificate-bound tokens
- ``selfsigned`` self_signed_tls_client_auth (jwks with x5c), certificate-bound tokens
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import queue
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from jwcrypto import jwk

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 60.0


def key_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_jwk(pem: str, **extra: Any) -> dict[str, Any]:
    return {**jwk.JWK.from_pem(pem.encode()).export_public(as_dict=True), **extra}


def self_signed(common_name: str, days: int = 90) -> tuple[str, x509.Certificate]:
    """An EC P-256 key and a self-signed certificate for it, valid ``days`` from now (a
    negative number: expired that long ago); returns (PEM text of certificate + key,
    certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days)
    cert = self_signed_certificate(
        key, common_name, min(now, not_after) - datetime.timedelta(days=1), not_after
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode() + key_pem(key)
    return pem, cert


def self_signed_certificate(
    key: Any,
    common_name: str,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    """A certificate for ``key`` signed by itself, valid from ``not_before`` to
    ``not_after``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


@dataclass
class OIDCProvider:
    url: str
    ca_path: str
    ca: trustme.CA
    jwks_dir: Path
    # client id -> private key PEM (assertion signing keys)
    assertion_keys: dict[str, str] = field(default_factory=dict)
    # name -> PEM certificate chain + key (client_certificate secrets)
    certificates: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return self.url + "/token"


def install() -> None:
    """``npm ci`` from the lock file when node_modules is missing."""
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (it comes with Node); the OIDC provider tests need it")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        check=True,
        timeout=600,
    )


def build(workdir: Path) -> tuple[dict[str, Any], OIDCProvider]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_cert.cert_chain_pems[0].write_to_path(str(workdir / "server.pem"))
    server_cert.private_key_pem.write_to_path(str(workdir / "server.key"))
    jwks_dir = workdir / "jwks"
    jwks_dir.mkdir()
    provider = OIDCProvider("", str(ca_path), ca, jwks_dir)

    for client_id in ("assertion", "rollover", "dpop"):
        provider.assertion_keys[client_id] = key_pem(ec.generate_private_key(ec.SECP256R1()))
    provider.assertion_keys["ed25519"] = key_pem(ed25519.Ed25519PrivateKey.generate())
    rollover_jwks = {"keys": [public_jwk(provider.assertion_keys["rollover"], kid="k1")]}
    (jwks_dir / "rollover.json").write_text(json.dumps(rollover_jwks))

    for name in ("tls", "other"):
        leaf = ca.issue_cert(
            f"{name}-client.test",
            common_name=f"{name}-client",
            organization_name="Integrations Tests",
            organization_unit_name="oidc",
        )
        provider.certificates[name] = leaf.private_key_and_cert_chain_pem.bytes().decode()
    tls_leaf = x509.load_pem_x509_certificate(provider.certificates["tls"].encode())
    selfsigned_pem, selfsigned_cert = self_signed("selfsigned-client")
    provider.certificates["selfsigned"] = selfsigned_pem
    selfsigned_jwk = public_jwk(
        selfsigned_pem,
        x5c=[base64.b64encode(selfsigned_cert.public_bytes(serialization.Encoding.DER)).decode()],
    )

    base = {"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []}
    base["scope"] = "api:read api:write"
    clients = [
        {
            **base,
            "client_id": "assertion",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [public_jwk(provider.assertion_keys["assertion"])]},
        },
        {
            **base,
            "client_id": "rollover",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://127.0.0.1:{port}/test-jwks/rollover",
        },
        {
            **base,
            "client_id": "dpop",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [public_jwk(provider.assertion_keys["dpop"])]},
            "dpop_bound_access_tokens": True,
        },
        {
            **base,
            "client_id": "ed25519",
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "Ed25519",
            "jwks": {"keys": [public_jwk(provider.assertion_keys["ed25519"])]},
        },
        {
            **base,
            "client_id": "tls",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": tls_leaf.subject.rfc4514_string(),
            "tls_client_certificate_bound_access_tokens": True,
        },
        {
            **base,
            "client_id": "selfsigned",
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [selfsigned_jwk]},
            "tls_client_certificate_bound_access_tokens": True,
        },
    ]
    config = {
        "tls": {
            "cert": str(workdir / "server.pem"),
            "key": str(workdir / "server.key"),
            "ca": str(ca_path),
        },
        "clients": clients,
        "requireNonce": ["dpop"],
        "jwksDir": str(jwks_dir),
    }
    return config, provider


class Running:
    """The provider's process; ``stop()`` ends it."""

    def __init__(self, workdir: Path) -> None:
        node = shutil.which("node")
        if node is None:
            if os.environ.get("REQUIRE_NODE"):
                pytest.fail("REQUIRE_NODE is set but Node.js is not installed")
            pytest.skip("Node.js is not installed: the node-oidc-provider tests need it")
        install()
        config, self.provider = build(workdir)
        # jwks_uri needs the port, known only once the server listens: the provider
        # fills "{port}" in (see provider.mjs).
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config))
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": self.provider.ca_path, "NODE_ENV": "test"}
        self.process = subprocess.Popen(
            [node, str(HERE / "provider.mjs"), str(config_path)],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stdout, lines), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            line = ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the OIDC provider did not start: {''.join(self.stderr)[-2000:]}")
        self.provider.url = f"https://127.0.0.1:{int(line.split()[1])}"

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
