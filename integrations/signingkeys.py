"""An integration's signing keys and their rollover (docs/key-custody.md).

The integration's configured key (a stored PEM or a ``signer`` device) is the **active**
key: it signs, as it always has. A **next** key (at most one) is published but does not
sign yet; **retired** keys are published until dropped. Next and retired keys are
``SigningKey`` rows. Each key has a kid: the configured ``key_id``, else the RFC 7638
thumbprint of its public key.

Rollover without downtime: ``add_next`` (the provider fetches the JWKS, or the operator
registers the new public key) → ``promote`` (next signs, the old active is retired) →
``drop_retired`` once tokens signed by the old key have expired and the provider's JWKS
cache has moved on. ``add_next`` turns ``send_kid`` on: a provider holding two keys needs
the kid to choose.

A retired key keeps only its public JWK: it never signs again, so its private key (or
its PIN) is not kept. JWKs hold allowlisted public members only (security.md #33).

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import keypairs
from .exceptions import InvalidConfiguration
from .models import Integration, KeyState, SigningKey
from .signers.base import (
    HMAC_ALGORITHMS,
    PublicKey,
    jwk_thumbprint,
    public_jwk_of,
    public_members,
)
from .tokens import build_provider, provider_class
from .tokens.base import JWTProvider, TokenProvider
from .tokens.custody import PIN_FIELD, SIGNER_FIELD, key_signer, owner_of, signer_problems
from .tokens.preview import custody_label
from .tokens.signing import load_signing_key


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of one key: never private material."""

    kid: str
    state: str
    algorithm: str
    thumbprint: str
    jwk: dict[str, Any]
    pem: str
    custody: str
    created: datetime | None = None
    row: SigningKey | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "state": self.state,
            "algorithm": self.algorithm,
            "created": self.created.isoformat() if self.created else None,
            "thumbprint": self.thumbprint,
            "custody": self.custody,
            "jwk": self.jwk,
            "pem": self.pem,
        }


def published_jwk(jwk: dict[str, Any], kid: str, algorithm: str) -> dict[str, Any]:
    """A JWK as the JWKS publishes it: allowlisted members, kid, alg, use "sig"."""
    return public_members({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})


def public_key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """The public key a (public) JWK describes: RSA, EC P-256/384/521, Ed25519/Ed448."""

    def number(name: str) -> int:
        text = str(jwk[name])
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    if kty == "EC" and crv in curves:
        return ec.EllipticCurvePublicNumbers(number("x"), number("y"), curves[crv]).public_key()
    if kty == "OKP" and crv in ("Ed25519", "Ed448"):
        size = 32 if crv == "Ed25519" else 57
        raw = number("x").to_bytes(size, "big")
        if crv == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return ed448.Ed448PublicKey.from_public_bytes(raw)
    raise InvalidConfiguration(f"cannot read a {kty} {crv or ''} JWK".replace("  ", " "))


def pem_of(public: PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# -- which keys there are --------------------------------------------------------------


def rollover_type(integration: Integration) -> tuple[type[TokenProvider], str]:
    """The auth type and the secret option holding its key, or InvalidConfiguration
    saying why this integration's keys cannot be rolled over here."""
    cls = provider_class(integration.auth_type)
    key_field = cls.generated_key_field
    if key_field is None:
        raise InvalidConfiguration(
            f"{integration.auth_type} keeps its key inside a key file or a shared secret: "
            "roll it over with the provider",
            field="auth.type",
        )
    if configured_algorithm(integration) in HMAC_ALGORITHMS:
        raise InvalidConfiguration(
            f"{integration.slug!r} signs with a shared secret: it has no public key to publish",
            field="auth.algorithm",
        )
    return cls, key_field


def configured_algorithm(integration: Integration) -> str:
    cls = provider_class(integration.auth_type)
    preset_key = getattr(cls, "signing_key", None)
    if preset_key is not None:
        return str(preset_key.algorithm)
    initial = cls.Options.base_fields.get("algorithm")
    default = initial.initial if initial is not None else ""
    return str((integration.auth_config or {}).get("algorithm") or default or "")


def active_key(integration: Integration) -> KeyInfo | None:
    """The configured key (None for a shared secret). A device is asked for its public
    key once per process; a fault raises SigningError."""
    provider = build_provider(integration)
    if not isinstance(provider, JWTProvider) or provider.signer.symmetric:
        return None
    signer = provider.signer
    jwk = published_jwk(signer.public_jwk or {}, signer.kid, signer.algorithm)
    return KeyInfo(
        kid=signer.kid,
        state=KeyState.ACTIVE,
        algorithm=signer.algorithm,
        thumbprint=signer.custody.thumbprint(),
        jwk=jwk,
        pem=signer.public_pem or "",
        custody=custody_label(signer.custody),
    )


def row_key(row: SigningKey) -> KeyInfo:
    jwk = published_jwk(row.public_jwk, row.kid, row.algorithm)
    device = str(row.signer.get("type", "")) if row.signer else ""
    where = f"{device} device" if device else "stored key (encrypted)"
    if row.state == KeyState.RETIRED:  # nothing private is kept once retired
        where = "public key only" + (f" (was on a {device} device)" if device else "")
    return KeyInfo(
        kid=row.kid,
        state=row.state,
        algorithm=row.algorithm,
        thumbprint=jwk_thumbprint(jwk),
        jwk=jwk,
        pem=pem_of(public_key_from_jwk(jwk)),
        custody=where,
        created=row.created_at,
        row=row,
    )


def all_keys(integration: Integration) -> list[KeyInfo]:
    """Active, next, then retired keys (newest first)."""
    active = active_key(integration)
    rows = sorted(
        integration.signing_keys.all(),
        key=lambda row: (row.state != KeyState.NEXT, -row.created_at.timestamp()),
    )
    return ([active] if active else []) + [row_key(row) for row in rows]


def jwks(integration: Integration) -> dict[str, Any] | None:
    """``{"keys": [...]}`` of every asymmetric key; None when there is none."""
    keys = all_keys(integration)
    return {"keys": [key.jwk for key in keys]} if keys else None


# -- rollover --------------------------------------------------------------------------


def save_integration(integration: Integration) -> None:
    """Validate (a device is asked for its key) and save; InvalidConfiguration if not."""
    try:
        integration.full_clean()
    except ValidationError as exc:
        name, messages = next(iter(exc.message_dict.items()))
        raise InvalidConfiguration(" ".join(messages), field=name) from None
    integration.save()


@sensitive_variables("private_pem", "pin", "pair")
def add_next(
    integration: Integration,
    *,
    kind: str | None = None,
    private_pem: str = "",
    signer: dict[str, Any] | None = None,
    pin: str = "",
    kid: str = "",
) -> tuple[KeyInfo, bool]:
    """Add the next key: generated (``kind``), given (``private_pem``) or on a device
    (``signer`` and its ``pin``). Returns it and whether ``send_kid`` was turned on."""
    cls, _ = rollover_type(integration)
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        pending = locked.signing_keys.filter(state=KeyState.NEXT).first()
        if pending is not None:
            raise InvalidConfiguration(
                f"{integration.slug!r} already has a next key ({pending.kid}): promote it "
                "or drop it first"
            )
        algorithm = next_algorithm(cls, integration, kind)
        secrets: dict[str, str] = {}
        if signer:
            problems = signer_problems(signer, algorithm, pin)
            if problems:
                raise InvalidConfiguration(problems[0][1], field=problems[0][0])
            device = key_signer(owner_of(integration), algorithm, config=signer, pin=pin, kid=kid)
            public = device.public_key()  # a wrong PIN or label is refused now
            secrets = {"pin": pin} if pin else {}
        else:
            if not private_pem:
                pair = keypairs.generate(kind or usual_kind(algorithm))
                private_pem = pair.private_pem
            key = load_signing_key(algorithm, private_pem)
            assert not isinstance(key, bytes)  # not HMAC: rollover_type refused it
            public = key.public_key()
            secrets = {"key": private_pem}
        jwk = published_jwk(public_jwk_of(public, use=""), "", algorithm)
        kid = checked_kid(cls, integration, kid or jwk_thumbprint(jwk), jwk)
        row = SigningKey(
            integration=locked,
            kid=kid,
            state=KeyState.NEXT,
            algorithm=algorithm,
            signer=dict(signer or {}),
            public_jwk=published_jwk(jwk, kid, algorithm),
        )
        row.set_secrets(secrets)
        row.save()
        turned_on = "send_kid" in cls.Options.base_fields and not locked.auth_config.get("send_kid")
        if turned_on:
            locked.auth_config = {**locked.auth_config, "send_kid": True}
            save_integration(locked)
    return row_key(row), turned_on


def usual_kind(algorithm: str) -> str:
    kind = next((k for k, (_, algs) in keypairs.KINDS.items() if algorithm in algs), None)
    if kind is None:
        raise InvalidConfiguration(f"no key type here signs {algorithm}", field="kind")
    return kind


def next_algorithm(cls: type[TokenProvider], integration: Integration, kind: str | None) -> str:
    """The next key's algorithm: the preset's, else the integration's if the key type
    signs it, else the key type's usual one (a flow's algorithm follows its key)."""
    current = configured_algorithm(integration)
    if kind is None:
        return current
    if kind not in keypairs.KINDS:
        known = ", ".join(keypairs.KINDS)
        raise InvalidConfiguration(f"unknown key type {kind!r}; use one of {known}", field="kind")
    label, algorithms = keypairs.KINDS[kind]
    if current in algorithms:
        return current
    if getattr(cls, "signing_key", None) is not None:
        raise InvalidConfiguration(
            f"{integration.auth_type} signs {current}; an {label} key signs "
            f"{', '.join(algorithms)}",
            field="kind",
        )
    return algorithms[0]


def checked_kid(
    cls: type[TokenProvider], integration: Integration, kid: str, jwk: dict[str, Any]
) -> str:
    """The next key's kid, refused when it clashes or the auth type cannot carry it."""
    key_id_field = cls.Options.base_fields.get("key_id")
    thumbprint = jwk_thumbprint(jwk)
    if key_id_field is not None and key_id_field.required and kid == thumbprint:
        raise InvalidConfiguration(
            f"{integration.auth_type}'s provider issues the key id: give the next key's "
            "key_id (--kid)",
            field="kid",
        )
    if key_id_field is None and kid != thumbprint:
        raise InvalidConfiguration(
            f"{integration.auth_type} names keys by their thumbprint; it takes no kid",
            field="kid",
        )
    taken = set(integration.signing_keys.values_list("kid", flat=True))
    active = active_key(integration)
    if active is not None:
        taken.add(active.kid)
        if active.thumbprint == thumbprint:
            raise InvalidConfiguration("the next key is the active key", field="key")
    if kid in taken:
        raise InvalidConfiguration(f"kid {kid!r} is already used by a key here", field="kid")
    return kid


@sensitive_variables("secrets", "carried")
def promote(integration: Integration) -> tuple[KeyInfo, KeyInfo]:
    """Next becomes the integration's key (it signs from now on); the old active key is
    kept as retired, public half only. Returns (new active, retired)."""
    cls, key_field = rollover_type(integration)
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        row = locked.signing_keys.select_for_update().filter(state=KeyState.NEXT).first()
        if row is None:
            raise InvalidConfiguration(
                f"{integration.slug!r} has no next key: add one first (--add-next)"
            )
        old = active_key(locked)  # SigningError if its device cannot say its public key
        old_signer = dict(locked.auth_config.get(SIGNER_FIELD) or {})
        carried = row.get_secrets()
        secrets = {
            name: value
            for name, value in locked.get_secrets().items()
            if name not in (key_field, PIN_FIELD)
        }
        config = {k: v for k, v in locked.auth_config.items() if k != SIGNER_FIELD}
        if row.signer:
            config[SIGNER_FIELD] = dict(row.signer)
            if carried.get("pin"):
                secrets[PIN_FIELD] = carried["pin"]
        else:
            secrets[key_field] = carried["key"]
        if "algorithm" in cls.Options.base_fields:
            config["algorithm"] = row.algorithm
        if "key_id" in cls.Options.base_fields:
            config.pop("key_id", None)
            if (
                row.kid != jwk_thumbprint(row.public_jwk)
                or cls.Options.base_fields["key_id"].required
            ):
                config["key_id"] = row.kid
        locked.auth_config = config
        locked.set_secrets(secrets)
        row.delete()
        save_integration(locked)
        retired = None
        if old is not None:
            retired, _ = SigningKey.objects.update_or_create(
                integration=locked,
                kid=old.kid,
                defaults={
                    "state": KeyState.RETIRED,
                    "algorithm": old.algorithm,
                    "public_jwk": old.jwk,
                    "signer": old_signer,  # which device held it, for the record
                    "encrypted_secrets": "",
                    "retired_at": timezone.now(),
                },
            )
    new = active_key(locked)
    assert new is not None
    integration.refresh_from_db()
    return new, row_key(retired) if retired is not None else new


def drop_retired(integration: Integration) -> list[str]:
    """Remove the retired keys (they leave the JWKS); returns their kids."""
    rows = integration.signing_keys.filter(state=KeyState.RETIRED)
    kids = sorted(rows.values_list("kid", flat=True))
    rows.delete()
    return kids


def drop_next(integration: Integration) -> str:
    """Remove the next key (an add-next made by mistake); returns its kid."""
    row = integration.signing_keys.filter(state=KeyState.NEXT).first()
    if row is None:
        raise InvalidConfiguration(f"{integration.slug!r} has no next key")
    row.delete()
    return row.kid
