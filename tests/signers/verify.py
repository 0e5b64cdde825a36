"""Verify signer output with joserfc against the signer's own published JWK, so the
public key the app would publish is the one that checks the device's signatures."""

from __future__ import annotations

import json
from typing import Any

from joserfc import jws
from joserfc.jwk import import_key

from integrations.signers.base import PUBLIC_JWK_MEMBERS

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth", "r", "t"}


def verify(token: str, jwk: dict[str, Any], algorithm: str) -> tuple[dict[str, Any], Any]:
    """(header, claims) of ``token`` if its signature verifies with ``jwk``."""
    assert_public(jwk)
    key = import_key(jwk)
    obj = jws.deserialize_compact(token, key, registry=jws.JWSRegistry(algorithms=[algorithm]))
    header = dict(obj.protected)
    assert header["alg"] == algorithm, header
    return header, json.loads(obj.payload)


def assert_public(jwk: dict[str, Any]) -> None:
    """security.md #33: every member is on the allowlist; none is private."""
    assert set(jwk) <= set(PUBLIC_JWK_MEMBERS), sorted(set(jwk) - set(PUBLIC_JWK_MEMBERS))
    assert not set(jwk) & PRIVATE_MEMBERS
