"""Storage-key rotation: re-encrypt every secret under the primary key (security.md #8)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from .crypto import keyring
from .exceptions import SecretDecryptionError
from .models import Integration, SigningKey


@dataclass
class RotationReport:
    """What a rotation did: counts, and each secret it could not decrypt (slug, reason)."""

    rotated: int = 0
    current: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def rotate_all(*, batch_size: int = 100) -> RotationReport:
    """Re-encrypt every stored secret under the first key, ``batch_size`` rows per
    transaction. An undecryptable secret is reported and left as it is; the rest are
    rotated. Running it again changes nothing.

    Raises IntegrationConfigurationError when the key ring is empty.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    keyring().primary_id  # noqa: B018  (fails now, with the setting's name, if no key)
    report = RotationReport()
    for model in (Integration, SigningKey):  # signing keys: next keys' PEM or PIN
        _rotate_table(model, report, batch_size)
    return report


def _rotate_table(
    model: type[Integration] | type[SigningKey], report: RotationReport, batch_size: int
) -> None:
    last_pk = 0
    while True:
        # Keyset pagination: each batch is read, locked and written in its own short
        # transaction, so a large table never holds one long lock.
        with transaction.atomic():
            batch = list(
                model.objects.select_for_update()
                .exclude(encrypted_secrets="")
                .filter(pk__gt=last_pk)
                .order_by("pk")[:batch_size]
            )
            if not batch:
                return
            for row in batch:
                _rotate_one(row, report)
        last_pk = batch[-1].pk


def _rotate_one(row: Integration | SigningKey, report: RotationReport) -> None:
    name = row.slug if isinstance(row, Integration) else f"signing key {row.kid}"
    try:
        changed = row.rotate_secrets()
    except SecretDecryptionError as exc:
        report.failed.append((name, str(exc)))
        return
    if not changed:
        report.current += 1
        return
    # update() skips auto_now and signals: a rotation is not an edit. Token caches keyed
    # by the old ciphertext simply miss once.
    type(row).objects.filter(pk=row.pk).update(encrypted_secrets=row.encrypted_secrets)
    report.rotated += 1
