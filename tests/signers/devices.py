"""Real signing devices for the signer tests: a SoftHSM2 token in a temporary directory
and moto's KMS in server mode on loopback, each with keys generated inside it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "integrations"
USER_PIN = "CANARY-pin-4711"
SO_PIN = "CANARY-so-pin-0815"
# key label -> (key type, size or curve OID)
HSM_KEYS = {
    "rsa": ("RSA", 2048),
    "p256": ("EC", "1.2.840.10045.3.1.7"),
    "p384": ("EC", "1.3.132.0.34"),
    "p521": ("EC", "1.3.132.0.35"),
    "ed25519": ("EC_EDWARDS", "1.3.101.112"),
}
# JWS alg -> the HSM key label that signs it.
HSM_KEY_FOR = {
    **{alg: "rsa" for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": "p256",
    "ES384": "p384",
    "ES512": "p521",
    "EdDSA": "ed25519",
    "Ed25519": "ed25519",
}
KMS_SPEC_FOR = {
    **{alg: "RSA_2048" for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": "ECC_NIST_P256",
    "ES384": "ECC_NIST_P384",
    "ES512": "ECC_NIST_P521",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def softhsm_token(directory: Path) -> Iterator[dict[str, Any]]:
    """A fresh token labelled TOKEN_LABEL under ``directory``, keys from HSM_KEYS made
    on the token (sensitive, never extractable). Yields what a signer needs plus
    ``ed25519``: whether the token could make an Ed25519 key."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    tokens = directory / "tokens"
    tokens.mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
         "--pin", USER_PIN, "--so-pin", SO_PIN],
        check=True, capture_output=True, env=os.environ.copy(),
    )
    lib = pkcs11.lib(SOFTHSM_MODULE)
    lib.reinitialize()  # the module may have been loaded with another SOFTHSM2_CONF
    token = lib.get_token(token_label=TOKEN_LABEL)
    private = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True}
    ed25519 = Mechanism.EC_EDWARDS_KEY_PAIR_GEN in token.slot.get_mechanisms()
    session = token.open(rw=True, user_pin=USER_PIN)
    try:
        for label, (kind, size) in HSM_KEYS.items():
            if kind == "RSA":
                session.generate_keypair(KeyType.RSA, size, store=True, label=label,
                                         private_template=private)
                continue
            if kind == "EC_EDWARDS" and not ed25519:
                continue
            params = session.create_domain_parameters(
                getattr(KeyType, kind),
                {Attribute.EC_PARAMS: encode_named_curve_parameters(size)}, local=True,
            )
            params.generate_keypair(store=True, label=label, private_template=private)
        # A secret key under a private key's label elsewhere is not needed; an AES key
        # gives the "wrong key type" case a real object.
        session.generate_key(KeyType.AES, 256, store=True, label="aes")
    finally:
        session.close()  # logs out: the signers log in themselves
    try:
        yield {"module": SOFTHSM_MODULE, "token_label": TOKEN_LABEL, "pin": USER_PIN,
               "ed25519": ed25519}
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@contextmanager
def moto_kms() -> Iterator[dict[str, Any]]:
    """moto's server (a real HTTP server on loopback speaking the KMS API) in its own
    process, with one SIGN_VERIFY key per spec in KMS_SPEC_FOR. Fake credentials come
    from the environment, as boto3's chain reads them."""
    import boto3

    port = free_port()
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "CANARY-aws-secret",
            "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {name: os.environ.get(name) for name in [*fake, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.update(fake)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        kms = boto3.client("kms", region_name="eu-west-1", endpoint_url=endpoint)
        keys = {}
        for spec in sorted(set(KMS_SPEC_FOR.values())):
            meta = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]
            keys[spec] = meta["Arn"]
        disabled = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
        kms.disable_key(KeyId=disabled["KeyMetadata"]["KeyId"])
        encrypt = kms.create_key(KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT")
        yield {"endpoint_url": endpoint, "region": "eu-west-1", "keys": keys,
               "disabled": disabled["KeyMetadata"]["Arn"],
               "encrypt": encrypt["KeyMetadata"]["Arn"], "client": kms}
    finally:
        server.terminate()
        server.wait(10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
