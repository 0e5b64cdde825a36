"""Key material given as text: a PEM private key parsed, a shared secret checked.

The one place both are done, for the token engine's key checks (``tokens.signing``)
and for the local signer that signs with the same material (security.md #2-3).

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration
from .base import HMAC_ALGORITHMS

# Below these a secret is a pattern, not random bytes (security.md #2). Random text of
# 32 characters (hex, base64, a generated password) clears both by far.
MIN_DISTINCT_BYTES = 8
MIN_DISTINCT_STEPS = 4
MIN_LZ_PHRASES = 12
# Enough of a long secret to judge it; the checks are quadratic.
ENTROPY_SAMPLE = 512


@sensitive_variables("material")
def parse_private_key(algorithm: str, material: str) -> PrivateKeyTypes:
    """An unencrypted PEM private key (PKCS#8 or traditional) of any type; raises
    InvalidConfiguration(field="key") without quoting the material. The caller checks
    that the type suits ``algorithm``."""
    try:
        return serialization.load_pem_private_key(material.strip().encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise InvalidConfiguration(
            f"{algorithm} needs an unencrypted PEM private key; this value does not parse as one",
            field="key",
        ) from None
    except Exception:  # cryptography raises UnsupportedAlgorithm for odd key types
        raise InvalidConfiguration(
            "the PEM private key uses an unsupported key type", field="key"
        ) from None


@sensitive_variables("material", "secret")
def hmac_secret(algorithm: str, material: str) -> bytes:
    """The shared secret for an HS* ``algorithm``, refused when shorter than the hash,
    obviously not random, or a PEM key pasted in the wrong place."""
    secret = material.encode("utf-8")
    needed = HMAC_ALGORITHMS[algorithm]
    if len(secret) < needed:
        raise InvalidConfiguration(
            f"{algorithm} needs a secret of at least {needed} bytes; this one has {len(secret)}",
            field="key",
        )
    weakness = low_entropy(secret)
    if weakness:
        raise InvalidConfiguration(
            f"{algorithm} secret is not random enough ({weakness})", field="key"
        )
    if "-----BEGIN" in material:
        raise InvalidConfiguration(
            f"{algorithm} takes a shared secret, not a PEM key; pick an RS/PS/ES/EdDSA "
            "algorithm for a private key",
            field="key",
        )
    return secret


@sensitive_variables("secret", "sample")
def low_entropy(secret: bytes) -> str:
    """Why ``secret`` is obviously not random, or "" when it may be: few distinct bytes
    (``"a" * 32``), one short pattern repeated (``"abcdefgh" * 4``), evenly spaced bytes
    (``"abcdefghijklmnopqrstuvwxyz012345"``), or text made mostly of repeats of itself.
    Says how, never what."""
    sample = secret[:ENTROPY_SAMPLE]
    if len(set(sample)) < MIN_DISTINCT_BYTES:
        return f"fewer than {MIN_DISTINCT_BYTES} distinct bytes"
    period = next(
        (
            p
            for p in range(1, len(sample) // 2 + 1)
            if sample == (sample[:p] * len(sample))[: len(sample)]
        ),
        0,
    )
    if period:
        return f"one {period}-byte pattern repeated"
    if lz_phrases(sample) < MIN_LZ_PHRASES:
        return "mostly repeats of itself"
    steps = {b - a for a, b in zip(sample, sample[1:], strict=False)}
    if len(steps) < MIN_DISTINCT_STEPS:
        return "a run of evenly spaced bytes"
    return ""


def lz_phrases(data: bytes) -> int:
    """The Lempel-Ziv (1976) complexity of ``data``: how many phrases it splits into
    when each phrase is the shortest piece not seen before. Random text has many;
    text built from repeats of itself has few."""
    phrases, start = 0, 0
    while start < len(data):
        length = 1
        while (
            start + length <= len(data)
            and data[start : start + length] in data[: start + length - 1]
        ):
            length += 1
        phrases += 1
        start += length
    return phrases
