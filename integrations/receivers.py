"""Receivers that keep per-process state in step with the database (connected by
``apps.IntegrationsConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Account, Integration
from .services import forget_account_sessions, forget_sessions


@receiver(post_save, sender=Integration)
@receiver(post_delete, sender=Integration)
def _integration_changed(*, instance: Integration, **kwargs: Any) -> None:
    forget_sessions(instance.slug)


@receiver(post_save, sender=Account)
@receiver(post_delete, sender=Account)
def _account_changed(*, instance: Account, **kwargs: Any) -> None:
    # By the integration's id: no query, even when a cascade deletes 10,000 accounts.
    forget_account_sessions(instance.integration_id, instance.key)
