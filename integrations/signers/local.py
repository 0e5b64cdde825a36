"""The local signer: a PEM private key or an HMAC secret held in this process.

Same algorithms and the same checks as the token engine's key loading (HS*, RS*, PS*,
ES*, EdDSA/Ed25519; RSA >= 2048 bits; HMAC secrets at least as long as the hash and not
obviously patterned; both parsed and checked by ``signers.material``, as the engine's
are), built on ``cryptography`` alone so that the JWS comes from ``sign_jwt`` like a device's.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration, SigningError
from .base import (
    HMAC_ALGORITHMS,
    RSA_PSS_ALGORITHMS,
    PrivateKey,
    PublicKey,
    Signer,
    check_public_key,
    der_to_raw,
    describe,
    hash_for,
)
from .material import hmac_secret, parse_private_key

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


class LocalSigner(Signer):
    """Signs with key material given as text: a PEM private key (unencrypted PKCS#8 or
    traditional) or, for HS*, the shared secret. Bad material raises
    InvalidConfiguration(field="key") on construction, never quoting the material."""

    def __init__(self, algorithm: str, material: str, *, kid: str = "") -> None:
        super().__init__(algorithm, kid=kid)
        self.symmetric = algorithm in HMAC_ALGORITHMS
        self._secret = b""
        self._key: PrivateKey | None = None
        if self.symmetric:
            self._secret = hmac_secret(algorithm, material)
        else:
            self._key = _private_key(algorithm, material)

    def _read_public_key(self) -> PublicKey:
        assert self._key is not None
        return self._key.public_key()

    @sensitive_variables("signing_input")
    def sign(self, signing_input: bytes) -> bytes:
        algorithm = self.algorithm
        if self.symmetric:
            return hmac.new(self._secret, signing_input, _HMAC_HASHES[algorithm]).digest()
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            digest = hash_for(algorithm)
            if algorithm in RSA_PSS_ALGORITHMS:
                # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash.
                pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
                return key.sign(signing_input, pss, digest)
            return key.sign(signing_input, padding.PKCS1v15(), digest)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            der = key.sign(signing_input, ec.ECDSA(hash_for(algorithm)))
            return der_to_raw(der, algorithm)
        if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            return key.sign(signing_input)
        raise SigningError(f"{algorithm}: no key to sign with")


@sensitive_variables("material")
def _private_key(algorithm: str, material: str) -> PrivateKey:
    key = parse_private_key(algorithm, material)
    if not isinstance(
        key,
        (
            rsa.RSAPrivateKey,
            ec.EllipticCurvePrivateKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PrivateKey,
        ),
    ):
        raise InvalidConfiguration(f"{algorithm} cannot use {describe(key)}", field="key")
    try:
        check_public_key(key.public_key(), algorithm)
    except SigningError as exc:
        raise InvalidConfiguration(str(exc), field="key") from None
    return key
