"""Storage-key rotation: re-encrypt every secret under the primary key (SECURITY 8)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from .crypto import keyring
from .exceptions import SecretDecryptionError
from .models import Integration


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
    last_pk = 0
    while True:
        # Keyset pagination: each batch is read, locked and written in its own short
        # transaction, so a large table never holds one long lock.
        with transaction.atomic():
            batch = list(
                Integration.objects.select_for_update()
                .exclude(encrypted_secrets="")
                .filter(pk__gt=last_pk)
                .order_by("pk")[:batch_size]
            )
            if not batch:
                return report
            for integration in batch:
                _rotate_one(integration, report)
        last_pk = batch[-1].pk


def _rotate_one(integration: Integration, report: RotationReport) -> None:
    try:
        changed = integration.rotate_secrets()
    except SecretDecryptionError as exc:
        report.failed.append((integration.slug, str(exc)))
        return
    if not changed:
        report.current += 1
        return
    # update() skips auto_now and signals: a rotation is not an edit. Token caches keyed
    # by the old ciphertext simply miss once.
    Integration.objects.filter(pk=integration.pk).update(
        encrypted_secrets=integration.encrypted_secrets
    )
    report.rotated += 1
