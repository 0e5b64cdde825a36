"""What the management commands share: finding the integration a command names."""

from __future__ import annotations

from django.core.management.base import CommandError

from ..models import Integration


def integration_by_slug(slug: str) -> Integration:
    """The integration named on the command line; CommandError (exit 2) when none is."""
    integration = Integration.objects.filter(slug=slug).first()
    if integration is None:
        raise CommandError(f"no integration with slug {slug!r}", returncode=2)
    return integration
