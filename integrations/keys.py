"""Storage-key rotation: re-encrypt every secret under the primary key (SECURITY 8)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from .exceptions import SecretDecryptionError
from .models import Integration


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def rotate_all(*, batch_size: int = 100) -> RotationReport:
    """Rotate in batches, one transaction each; an undecryptable secret is reported and
    left as it is, the rest are rotated. Running it again changes nothing."""
    report = RotationReport()
    ids = list(
        Integration.objects.exclude(encrypted_secrets="").order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            batch = Integration.objects.select_for_update().filter(pk__in=ids[start : start + batch_size])
            for integration in batch.order_by("pk"):
                try:
                    changed = integration.rotate_secrets()
                except SecretDecryptionError as exc:
                    report.failed.append((integration.slug, str(exc)))
                    continue
                if changed:
                    # update() skips auto_now and signals: a rotation is not an edit, but
                    # token caches keyed by the old ciphertext simply miss once.
                    Integration.objects.filter(pk=integration.pk).update(
                        encrypted_secrets=integration.encrypted_secrets
                    )
                    report.rotated += 1
                else:
                    report.current += 1
    return report
