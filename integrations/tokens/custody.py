"""Key custody for the token providers: which signer holds an integration's key.

A JWT flow or preset signs with its stored key (a ``LocalSigner`` over the PEM or
shared secret in its encrypted secrets) or, when its ``signer`` option is set, with a key
that never leaves a PKCS#11 token or AWS KMS (security.md #32). The ``signer`` option is
plain (it names the device and the key, never a credential); the PKCS#11 PIN is the
``signer_pin`` secret, stored encrypted like any other.

Signers are cached per process by (integration, key version): a provider rebuilt after
a save, a preview, a validation or another account of the same integration reuses the
same signer, hence one PKCS#11 login, one KMS client and one public-key read per key, and
a wrong PIN tried once (HSMs lock a PIN after a few wrong tries). The signers themselves
are thread safe and re-open their sessions after fork.

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import (
    InvalidConfiguration,
    SecretDecryptionError,
    SignerUnreachable,
    SigningError,
)
from ..signers import aws_kms, pkcs11
from ..signers.base import HMAC_ALGORITHMS
from ..signers.base import Signer as KeySigner
from ..signers.local import LocalSigner
from ..urlpaths import check_url
from .signing import load_signing_key

SIGNER_FIELD = "signer"
PIN_FIELD = "signer_pin"
# Device type -> (required settings, optional settings), all strings.
DEVICE_SETTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pkcs11": (("module", "token_label", "key_label"), ()),
    "aws_kms": (("key_id",), ("region", "endpoint_url")),
}
SUPPORTED = {"pkcs11": pkcs11.SUPPORTED, "aws_kms": aws_kms.SUPPORTED}
# How many signers a process keeps: far more keys than one deployment configures.
CACHE_SIZE = 256


def device_type(config: Any) -> str:
    """The device type of a ``signer`` option ("" for none or a malformed one)."""
    if isinstance(config, dict) and isinstance(config.get("type"), str):
        return str(config["type"])
    return ""


def takes_pin(config: Any) -> bool:
    return device_type(config) == "pkcs11"


def signer_problems(config: Any, algorithm: str | None, pin: str) -> list[tuple[str, str]]:
    """What is wrong with a ``signer`` option and its PIN, as (option, message): the
    shape, the algorithm, the optional dependency. The device itself is not asked here
    (``device_problem`` does, where the integration is known)."""
    if not isinstance(config, dict):
        return [(SIGNER_FIELD, 'must be a JSON object such as {"type": "pkcs11", ...}')]
    kind = device_type(config)
    if kind not in DEVICE_SETTINGS:
        return [(SIGNER_FIELD, f"type must be one of {', '.join(DEVICE_SETTINGS)}")]
    required, optional = DEVICE_SETTINGS[kind]
    problems: list[tuple[str, str]] = []
    if "pin" in config:
        problems.append(
            (
                SIGNER_FIELD,
                "the PIN is a secret: give it as signer.pin in the configuration file or in "
                "the Signer PIN field, never among the plain options",
            )
        )
    unknown = sorted(set(config) - {"type", "pin", *required, *optional})
    if unknown:
        problems.append((SIGNER_FIELD, f"unknown setting(s) {', '.join(unknown)} for {kind}"))
    for name in required:
        if not isinstance(config.get(name), str) or not config[name].strip():
            problems.append((SIGNER_FIELD, f"the {kind} signer needs {name} (a string)"))
    for name in optional:
        if config.get(name) is not None and not isinstance(config[name], str):
            problems.append((SIGNER_FIELD, f"{name} must be a string or null"))
    if kind == "pkcs11" and isinstance(config.get("module"), str):
        if not os.path.isabs(config["module"]):
            problems.append((SIGNER_FIELD, "module must be the absolute path of the library"))
    if isinstance(config.get("endpoint_url"), str) and config["endpoint_url"]:
        try:
            check_url(config["endpoint_url"], "endpoint_url")
        except InvalidConfiguration as exc:
            problems.append((SIGNER_FIELD, f"endpoint_url: {exc.message}"))
    if algorithm in HMAC_ALGORITHMS:
        problems.append(
            (
                SIGNER_FIELD,
                f"{algorithm} signs with a shared secret; a signer holds a key pair "
                "(RS, PS, ES or EdDSA algorithms)",
            )
        )
    elif algorithm and algorithm not in SUPPORTED[kind]:
        problems.append((SIGNER_FIELD, f"the {kind} signer cannot sign {algorithm}"))
    if kind == "pkcs11" and not pin:
        problems.append((PIN_FIELD, "the pkcs11 signer needs the token's PIN (a secret)"))
    if kind == "aws_kms" and pin:
        problems.append((PIN_FIELD, "aws_kms takes no PIN: credentials come from boto3's chain"))
    try:
        (pkcs11.import_pkcs11 if kind == "pkcs11" else aws_kms.import_boto3)()
    except InvalidConfiguration as exc:
        problems.append((SIGNER_FIELD, exc.message))
    return problems


@sensitive_variables("pin")
def build_key_signer(
    algorithm: str,
    *,
    material: str = "",
    config: dict[str, Any] | None = None,
    pin: str = "",
    kid: str = "",
) -> KeySigner:
    """A new signer (uncached): the device named by ``config``, else the local key
    ``material`` checked as the token engine checks keys (security.md #2-3)."""
    kind = device_type(config)
    if config and kind == "pkcs11":
        return pkcs11.Pkcs11Signer(
            algorithm,
            module=config["module"],
            token_label=config["token_label"],
            key_label=config["key_label"],
            pin=pin,
            kid=kid,
        )
    if config and kind == "aws_kms":
        return aws_kms.AwsKmsSigner(
            algorithm,
            key_id=config["key_id"],
            region=config.get("region") or "",
            endpoint_url=config.get("endpoint_url") or None,
            kid=kid,
        )
    if config:
        raise InvalidConfiguration(f"unknown signer type {kind!r}", field=SIGNER_FIELD)
    load_signing_key(algorithm, material)
    return LocalSigner(algorithm, material, kid=kid)


@sensitive_variables("material", "pin", "text")
def key_version(
    algorithm: str, material: str, config: dict[str, Any] | None, pin: str, kid: str
) -> str:
    """A digest that changes with any of the key's settings (never the settings)."""
    text = json.dumps([algorithm, material, config or {}, pin, kid], sort_keys=True)
    return hashlib.sha256(b"integrations-key-version:" + text.encode()).hexdigest()


class SignerCache:
    """Signers by (owner, key version), least recently used dropped past ``size``."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._signers: OrderedDict[tuple[str, str], KeySigner] = OrderedDict()
        self._lock = threading.Lock()
        # One build at a time per key: 32 threads starting a run over one integration's
        # accounts would otherwise each parse (or open) the same key.
        self._building: dict[tuple[str, str], threading.Lock] = {}
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A lock held by another thread at fork time would never be released here.
        self._lock = threading.Lock()
        self._building = {}

    def _cached(self, key: tuple[str, str]) -> KeySigner | None:
        with self._lock:
            signer = self._signers.get(key)
            if signer is not None:
                self._signers.move_to_end(key)
            return signer

    def get(self, owner: str, version: str, build: Callable[[], KeySigner]) -> KeySigner:
        key = (owner, version)
        signer = self._cached(key)
        if signer is not None:
            return signer
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        # Outside the cache's lock: a device may be slow to open, and other keys wait
        # for nothing.
        try:
            with building:
                signer = self._cached(key)
                if signer is None:
                    signer = build()
                    with self._lock:
                        signer = self._signers.setdefault(key, signer)
                        self._signers.move_to_end(key)
                        while len(self._signers) > self.size:
                            self._signers.popitem(last=False)
        finally:
            with self._lock:
                self._building.pop(key, None)
        return signer

    def signers(self, owner: str | None = None) -> list[KeySigner]:
        """The cached signers (of ``owner``): tests and benchmarks read their counts."""
        with self._lock:
            return [s for (o, _), s in self._signers.items() if owner in (None, o)]

    def clear(self) -> None:
        with self._lock:
            self._signers.clear()


signer_cache = SignerCache()


def owner_of(integration: Any) -> str:
    """The cache owner: the integration's slug, also for an account's view of it (one
    key, one device session for all of an integration's accounts)."""
    return str(getattr(getattr(integration, "integration", integration), "slug", ""))


@sensitive_variables("material", "pin")
def key_signer(
    owner: str,
    algorithm: str,
    *,
    material: str = "",
    config: dict[str, Any] | None = None,
    pin: str = "",
    kid: str = "",
) -> KeySigner:
    """The process's signer for this key of ``owner``, built on first use."""
    version = key_version(algorithm, material, config, pin, kid)
    return signer_cache.get(
        owner,
        version,
        lambda: build_key_signer(algorithm, material=material, config=config, pin=pin, kid=kid),
    )


@sensitive_variables("options")
def device_problem(owner: str, algorithm: str, options: dict[str, Any]) -> tuple[str, str] | None:
    """Ask a configured device for its public key (once per process and key): a wrong
    PIN, an unknown label or a key of the wrong type is (option, message); a device that
    cannot be reached now is no reason to refuse a save (it fails the calls instead)."""
    config = options.get(SIGNER_FIELD)
    if not config:
        return None
    try:
        signer = key_signer(
            owner,
            algorithm,
            config=config,
            pin=options.get(PIN_FIELD) or "",
            kid=options.get("key_id") or "",
        )
        signer.public_key()
    except SignerUnreachable:
        return None
    except SigningError as exc:
        if exc.field == "pin":
            return PIN_FIELD, str(exc)
        return SIGNER_FIELD, f"{exc.field}: {exc}" if exc.field else str(exc)
    except InvalidConfiguration as exc:
        return SIGNER_FIELD, exc.message
    return None


def exported_signer(config: Any) -> Any:
    """The ``signer`` option as the configuration file shows it: a PKCS#11 signer with
    ``"pin": null`` (kept; the PIN is never exported)."""
    if isinstance(config, dict) and takes_pin(config):
        return {**config, "pin": None}
    return config


# -- the configuration file and forms: where the PIN goes, what a custody change drops --


@sensitive_variables("auth", "signer")
def move_signer_pin(auth: dict[str, Any], entry: str) -> dict[str, Any]:
    """A configuration-file ``auth`` with ``signer.pin`` moved to the ``signer_pin``
    secret (resolved and stored encrypted like any secret; never in ``auth_config``)."""
    if auth.get(PIN_FIELD) is not None:
        raise InvalidConfiguration(
            "give the PIN inside the signer, as signer.pin", entry=entry, field=f"auth.{PIN_FIELD}"
        )
    auth = {name: value for name, value in auth.items() if name != PIN_FIELD}
    signer = auth.get(SIGNER_FIELD)
    if not isinstance(signer, dict) or "pin" not in signer:
        return auth
    plain = {name: value for name, value in signer.items() if name != "pin"}
    return {**auth, SIGNER_FIELD: plain, PIN_FIELD: signer["pin"]}


def exported_auth(secret_fields: tuple[str, ...], auth: dict[str, Any]) -> dict[str, Any]:
    """An exported ``auth``: every secret null (kept), the PIN as ``signer.pin: null``
    rather than a secret of its own."""
    shown = {name: value for name, value in auth.items() if name != PIN_FIELD}
    shown.update({name: None for name in secret_fields if name != PIN_FIELD})
    if shown.get(SIGNER_FIELD):
        shown[SIGNER_FIELD] = exported_signer(shown[SIGNER_FIELD])
    return shown


def moot_secrets(key_field: str | None, options: dict[str, Any]) -> set[str]:
    """The secret options this configuration does not use: the key when a signer holds
    it, else the signer's PIN."""
    if key_field is None:
        return set()
    return {key_field} if options.get(SIGNER_FIELD) else {PIN_FIELD}


@sensitive_variables("secrets")
def kept_secrets(
    key_field: str | None, options: dict[str, Any], secrets: dict[str, str], entered: Any
) -> dict[str, str]:
    """``secrets`` without what a change of custody made moot: the stored key once a
    signer holds it, the PIN once there is no signer. One given in this very change
    (``entered``) stays, for the Options form to report the clash."""
    moot = moot_secrets(key_field, options) - set(entered)
    return {name: value for name, value in secrets.items() if name not in moot}


@sensitive_variables("secrets")
def drop_moot_secrets(integration: Any, key_field: str | None, entered: Any) -> None:
    """``kept_secrets`` applied to an integration's stored secrets (unreadable ones are
    left alone: validation reports them)."""
    try:
        secrets = integration.get_secrets()
    except SecretDecryptionError:
        return
    kept = kept_secrets(key_field, integration.auth_config or {}, secrets, entered)
    if kept != secrets:
        integration.set_secrets(kept)
