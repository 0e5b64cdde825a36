"""``integrations_discover SLUG``: read the issuer's metadata again (docs/reference.md,
Sender-constrained tokens and discovery)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.discovery_cache import issuer_of, prepare_for_save
from integrations.management.cli import integration_by_slug
from integrations.validation import validate_integration

HELP = (
    "Read an integration's authorization server metadata (RFC 8414, OpenID Connect "
    "Discovery) from its issuer again, check it and the options against each other, and "
    "store it with when it was read; also generates the DPoP proof key when dpop is on and "
    "none is stored. Prints what is used of the metadata as JSON. Exit 0 stored, 1 the "
    "metadata was unreachable, malformed or refused, or the options do not fit it, 2 "
    "usage error, unknown slug or no issuer."
)


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        integration = integration_by_slug(slug)
        if not issuer_of(integration):
            raise CommandError(
                f"{slug}: no issuer is configured (auth option issuer): nothing to discover",
                returncode=2,
            )
        problems = prepare_for_save(integration) or {
            name: messages[0] for name, messages in validate_integration(integration).items()
        }
        if problems:
            field, message = next(iter(problems.items()))
            raise CommandError(f"{slug}: {field}: {message}; nothing was stored", returncode=1)
        integration.save(
            update_fields=["server_metadata", "metadata_read_at", "encrypted_secrets", "updated_at"]
        )
        metadata = integration.server_metadata
        assert integration.metadata_read_at is not None
        self.stderr.write(f"{slug}: metadata of {metadata['issuer']} read from "
                          f"{metadata['source']}")
        shown = {name: value for name, value in metadata.items() if name != "fetched_at"}
        shown["read_at"] = integration.metadata_read_at.isoformat()
        self.stdout.write(json.dumps(shown, indent=2))
