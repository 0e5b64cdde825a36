"""Verify tokens with joserfc, not PyJWT, so a bug shared with the minting side cannot
hide. Returns (header, claims)."""

from __future__ import annotations

import json
from typing import Any

from joserfc import jws
from joserfc.jwk import import_key


def verify(
    token: str, key_pem_or_secret: str | bytes, algorithm: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the signature with the public (or shared) key and return header and claims."""
    raw = key_pem_or_secret
    if isinstance(raw, str):
        raw = raw.encode()
    key_type = {"HS": "oct", "RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}[algorithm[:2]]
    key = import_key(raw, key_type)
    registry = jws.JWSRegistry(algorithms=[algorithm])
    obj = jws.deserialize_compact(token, key, registry=registry)
    header = dict(obj.protected)
    assert header["alg"] == algorithm, header
    return header, json.loads(obj.payload)
