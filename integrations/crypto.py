"""Secrets at rest: AES-256-GCM under a key ring, each ciphertext bound to its place.

Stored form: ``enc:v1:<key id>:<base64url(nonce || ciphertext+tag)>``. The key id is a
fingerprint of the key, so decryption picks the right key whatever the ring's order;
the first key of ``INTEGRATIONS_ENCRYPTION_KEYS`` encrypts (security.md #6-9). The
associated data names app.model, row id and field, so a ciphertext copied into another
row or field fails to decrypt.

Exception messages must not contain sensitive information.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

from .exceptions import IntegrationConfigurationError, SecretDecryptionError
from .settings import app_settings

PREFIX = "enc:v1:"
NONCE_BYTES = 12


def configured_keys() -> list[str]:
    """``INTEGRATIONS_ENCRYPTION_KEYS`` as a list of key strings.

    Accepts a list or a comma-separated string: iterating a string set by hand in
    settings.py would otherwise yield one "key" per character.
    """
    value = app_settings.ENCRYPTION_KEYS
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


@sensitive_variables("text", "raw")
def parse_key(text: str) -> bytes:
    """Decode one storage key (32 random bytes, URL-safe base64, as Fernet prints)."""
    try:
        # validate=True: the lenient decoder silently drops characters outside the
        # alphabet, so a mangled key could decode to something else.
        raw = base64.b64decode(text.strip().encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise IntegrationConfigurationError(
            "INTEGRATIONS_ENCRYPTION_KEYS holds a key that is not URL-safe base64"
        ) from None
    if len(raw) != 32:
        raise IntegrationConfigurationError(
            f"INTEGRATIONS_ENCRYPTION_KEYS holds a key of {len(raw)} bytes; each must be "
            "32 random bytes in URL-safe base64 (Fernet.generate_key() prints one)"
        )
    return raw


def key_id(raw: bytes) -> str:
    """A short public fingerprint of a storage key: names the key, reveals nothing."""
    return hashlib.sha256(b"integrations-storage-key:" + raw).hexdigest()[:8]


def associated_data(label: str, row_id: str, field_name: str) -> bytes:
    """What a ciphertext is bound to: app.model, the row's stable id and the field."""
    return f"{label}|{row_id}|{field_name}".encode()


@dataclass(frozen=True)
class KeyRing:
    """Storage keys: the first encrypts, every one decrypts by key id."""

    keys: tuple[bytes, ...] = field(repr=False)

    @classmethod
    @sensitive_variables("texts")
    def from_strings(cls, texts: list[str] | tuple[str, ...]) -> KeyRing:
        return cls(tuple(parse_key(text) for text in texts if text.strip()))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(raw) for raw in self.keys)

    @property
    def primary_id(self) -> str:
        return key_id(self._primary())

    def _primary(self) -> bytes:
        if not self.keys:
            raise IntegrationConfigurationError(
                "INTEGRATIONS_ENCRYPTION_KEYS is empty: add a key to store secrets "
                '(python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())")'
            )
        return self.keys[0]

    @sensitive_variables("plaintext")
    def encrypt(self, plaintext: str, aad: bytes) -> str:
        primary = self._primary()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(primary).encrypt(nonce, plaintext.encode("utf-8"), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{PREFIX}{key_id(primary)}:{body}"

    @sensitive_variables("plaintext", "raw")
    def decrypt(self, token: str, aad: bytes) -> str:
        kid, body = self._split(token)
        by_id = {key_id(raw): raw for raw in self.keys}
        raw = by_id.get(kid)
        if raw is None:
            if not self.keys:
                raise SecretDecryptionError(
                    f"stored secret needs key {kid}, but INTEGRATIONS_ENCRYPTION_KEYS is empty"
                )
            raise SecretDecryptionError(
                f"no key with id {kid} in INTEGRATIONS_ENCRYPTION_KEYS "
                "(was it removed before integrations_rotate_keys ran?)"
            )
        try:
            blob = base64.urlsafe_b64decode(body.encode("ascii"))
            plaintext = AESGCM(raw).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretDecryptionError(
                f"stored secret failed authentication under key {kid}: it was altered "
                "or belongs to another row or field"
            ) from None
        return plaintext.decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        """True when ``token`` was sealed under a key other than the primary one."""
        kid, _ = self._split(token)
        return kid != self.primary_id

    @staticmethod
    def _split(token: str) -> tuple[str, str]:
        if not isinstance(token, str) or not token.startswith(PREFIX) or token.count(":") != 3:
            raise SecretDecryptionError("stored secret is not in the enc:v1 format")
        kid, body = token[len(PREFIX) :].split(":", 1)
        return kid, body


@functools.cache
def keyring() -> KeyRing:
    """The process's key ring from settings; cleared when the setting changes."""
    return KeyRing.from_strings(configured_keys())


@receiver(setting_changed)
def _reload_keyring(*, setting: str, **kwargs: object) -> None:
    if setting == "INTEGRATIONS_ENCRYPTION_KEYS":
        keyring.cache_clear()
