"""Key custody: signers that hold or reach a JWT signing key (security.md #32, #33).

``local`` signs in-process with a PEM key or HMAC secret; ``pkcs11`` asks an HSM through
a PKCS#11 module; ``aws_kms`` asks AWS KMS. The optional device signers import their
third-party libraries (python-pkcs11, boto3) only when constructed.
"""

from .base import Signer, public_jwk_of, public_members, sign_jwt

__all__ = ["Signer", "public_jwk_of", "public_members", "sign_jwt"]
