"""The AWS KMS signer: KMS signs with an asymmetric SIGN_VERIFY key that never leaves it.

security.md #32: the app sends the JWS signing input (``MessageType=RAW``; a digest for
inputs over KMS's 4096-byte RAW limit) and gets the signature; ECDSA signatures come back
DER and are converted to JWS's raw R||S. Credentials come from boto3's chain
(environment, profile, instance role); none is held here. The public key is read once
with GetPublicKey and cached. The client is made on first use in each process (a forked
child makes its own: a client's connection pool must not be shared across fork).
Timeouts and retries are bounded so an unreachable endpoint fails within seconds.
"""

from __future__ import annotations

import os
import threading
import weakref
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization

from ..exceptions import InvalidConfiguration, SignerUnreachable, SigningError
from .base import (
    EC_ALGORITHMS,
    RSA_PKCS1_ALGORITHMS,
    RSA_PSS_ALGORITHMS,
    PublicKey,
    Signer,
    check_algorithm,
    der_to_raw,
    hash_for,
)

EXTRA = 'pip install "django-integrations[kms]"'
# JWS alg -> KMS SigningAlgorithm. KMS's PSS uses MGF1 with the same hash and a salt as
# long as the hash, as RFC 7518 §3.5 requires.
SIGNING_ALGORITHMS = {
    **{f"RS{bits}": f"RSASSA_PKCS1_V1_5_SHA_{bits}" for bits in (256, 384, 512)},
    **{f"PS{bits}": f"RSASSA_PSS_SHA_{bits}" for bits in (256, 384, 512)},
    **{f"ES{bits}": f"ECDSA_SHA_{bits}" for bits in (256, 384, 512)},
}
SUPPORTED = (*RSA_PKCS1_ALGORITHMS, *RSA_PSS_ALGORITHMS, *EC_ALGORITHMS)
RAW_MESSAGE_LIMIT = 4096
# Errors KMS reports for a key that exists but cannot sign now or for us.
_REFUSALS = {
    "AccessDeniedException": "access denied",
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is not usable in its current state",
    "NotFoundException": "no such key",
    "InvalidKeyUsageException": "the key is not a SIGN_VERIFY key",
    "KeyUnavailableException": "the key is unavailable",
    "UnrecognizedClientException": "the credentials were not recognised",
    "InvalidSignatureException": "the request signature was refused (credentials or clock)",
    "ExpiredTokenException": "the session credentials have expired",
}


# Of those, the ones that say the configured key_id is wrong (not a passing state).
_KEY_FAULTS = {"NotFoundException", "InvalidKeyUsageException"}

_signers: weakref.WeakSet[AwsKmsSigner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for signer in list(_signers):
        signer._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def import_boto3() -> tuple[ModuleType, ModuleType, ModuleType]:
    """boto3, botocore.config and botocore.exceptions, or InvalidConfiguration naming
    the extra to install."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise InvalidConfiguration(
            f"the aws_kms signer needs boto3: {EXTRA}", field="signer"
        ) from None
    return boto3, botocore.config, botocore.exceptions


class AwsKmsSigner(Signer):
    """Signs with the KMS key ``key_id`` (id, ARN or alias) in ``region``.

    ``endpoint_url`` points at a VPC endpoint or an emulator; ``connect_timeout`` and
    ``read_timeout`` (seconds) and ``max_attempts`` bound each call. RS/PS/ES 256-512;
    KMS has no EdDSA for JWS. Refusals and faults raise SigningError.
    """

    def __init__(
        self,
        algorithm: str,
        *,
        key_id: str,
        region: str = "",
        endpoint_url: str | None = None,
        kid: str = "",
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = 2,
    ) -> None:
        super().__init__(check_algorithm(algorithm, SUPPORTED), kid=kid)
        if not key_id:
            raise InvalidConfiguration("the aws_kms signer needs key_id", field="key_id")
        self._boto3, self._config, self._errors = import_boto3()
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url or None
        self._timeouts = (connect_timeout, read_timeout, max_attempts)
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self.sign_count = 0  # Sign requests KMS answered, for benchmarks and tests
        _signers.add(self)

    def __repr__(self) -> str:
        return f"<AwsKmsSigner {self.algorithm} key_id={self.key_id!r}>"

    def _after_fork(self) -> None:
        # A lock held by another thread at fork time would never be released here.
        self._lock = threading.Lock()
        self._client = None

    def _where(self) -> str:
        place = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"AWS KMS{place}"

    def client(self) -> Any:
        """The KMS client of this process, made on first use."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                connect, read, attempts = self._timeouts
                config = self._config.Config(
                    connect_timeout=connect,
                    read_timeout=read,
                    retries={"max_attempts": attempts, "mode": "standard"},
                )
                try:
                    session = self._boto3.session.Session()
                    self._client = session.client(
                        "kms",
                        region_name=self.region or None,
                        endpoint_url=self.endpoint_url,
                        config=config,
                    )
                except self._errors.NoRegionError:
                    raise SigningError(
                        "AWS KMS needs a region: set the signer's region or AWS_DEFAULT_REGION",
                        field="region",
                    ) from None
                except (self._errors.BotoCoreError, ValueError) as exc:
                    raise SigningError(
                        f"{self._where()}: cannot create a client ({type(exc).__name__})"
                    ) from None
                self._pid = os.getpid()
            return self._client

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        errors = self._errors
        client = self.client()
        try:
            response: dict[str, Any] = getattr(client, operation)(KeyId=self.key_id, **params)
        except errors.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "unknown error"
            reason = _REFUSALS.get(code, code)
            raise SigningError(
                f"{self._where()} refused {operation} for key {self.key_id!r}: {reason}",
                field="key_id" if code in _KEY_FAULTS else "",
            ) from None
        except (errors.NoCredentialsError, errors.PartialCredentialsError):
            raise SigningError(
                "no AWS credentials found (boto3's chain: environment, profile, instance role)"
            ) from None
        except (
            errors.EndpointConnectionError,
            errors.ConnectTimeoutError,
            errors.ReadTimeoutError,
            errors.ConnectionClosedError,
        ) as exc:
            raise SignerUnreachable(
                f"{self._where()} is unreachable ({type(exc).__name__})"
            ) from None
        except errors.BotoCoreError as exc:
            raise SigningError(
                f"{self._where()}: {operation} failed ({type(exc).__name__})"
            ) from None
        return response

    def _read_public_key(self) -> PublicKey:
        response = self._call("get_public_key")
        wanted = SIGNING_ALGORITHMS[self.algorithm]
        spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec", "?")
        if response.get("KeyUsage", "SIGN_VERIFY") != "SIGN_VERIFY":
            raise SigningError(
                f"KMS key {self.key_id!r} is not a SIGN_VERIFY key", field="key_id"
            )
        offered = response.get("SigningAlgorithms") or []
        if wanted not in offered:
            raise SigningError(
                f"{self.algorithm} needs {wanted}; KMS key {self.key_id!r} ({spec}) offers "
                f"{', '.join(offered) or 'no signing algorithm'}",
                field="key_id",
            )
        try:
            public = serialization.load_der_public_key(bytes(response["PublicKey"]))
        except (KeyError, ValueError):
            raise SigningError(f"{self._where()} returned a malformed public key") from None
        return public  # type: ignore[return-value]  # checked against the algorithm by the caller

    def sign(self, signing_input: bytes) -> bytes:
        self.public_key()  # once: refuses a key of the wrong spec before any Sign call
        if len(signing_input) <= RAW_MESSAGE_LIMIT:
            message, message_type = signing_input, "RAW"
        else:
            digest = hashes.Hash(hash_for(self.algorithm))
            digest.update(signing_input)
            message, message_type = digest.finalize(), "DIGEST"
        response = self._call(
            "sign",
            Message=message,
            MessageType=message_type,
            SigningAlgorithm=SIGNING_ALGORITHMS[self.algorithm],
        )
        with self._lock:
            self.sign_count += 1
        signature = bytes(response.get("Signature") or b"")
        if not signature:
            raise SigningError(f"{self._where()} returned no signature")
        if self.algorithm in EC_ALGORITHMS:
            return der_to_raw(signature, self.algorithm)
        return signature
