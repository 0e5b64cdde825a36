"""Receivers that keep per-process state in step with the database."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Integration


@receiver(post_save, sender=Integration)
@receiver(post_delete, sender=Integration)
def _integration_changed(*, instance: Integration, **kwargs: Any) -> None:
    from .services import forget_sessions

    forget_sessions(instance.slug)
