from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import keypairs
from integrations.exceptions import IntegrationError
from integrations.forms import key_field
from integrations.management.cli import integration_by_slug
from integrations.models import Integration
from integrations.tokens import provider_class
from integrations.tokens.preview import public_key_info


class Command(BaseCommand):
    help = (
        "Generate a key pair for an integration: the private half is stored encrypted "
        "and never shown, the public half (to upload to the provider) goes to stdout. "
        "With --public, print the public half of the stored key. "
        "Exit 0 ok, 1 failed, 2 usage error or unknown slug."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--kind",
            choices=list(keypairs.KINDS),
            help="key type (default: the usual one for the integration's algorithm)",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="overwrite a stored key (the provider must then get the new public key)",
        )
        parser.add_argument(
            "--public", action="store_true", help="print the stored key's public half only"
        )
        parser.add_argument("--jwk", action="store_true", help="print a JWK instead of PEM")

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        integration = integration_by_slug(slug)
        if options["public"]:
            if options["kind"] or options["replace"]:
                raise CommandError(
                    "--public generates nothing: drop --kind and --replace", returncode=2
                )
        else:
            self.generate(integration, options["kind"], replace=options["replace"])
        try:
            public = public_key_info(integration)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        if public is None:
            raise CommandError(
                f"{slug!r} signs with a shared secret: it has no public key", returncode=1
            )
        self.stderr.write(f"{public['algorithm']} key, RFC 7638 thumbprint {public['thumbprint']}")
        self.stdout.write(
            json.dumps(public["jwk"], indent=2) if options["jwk"] else public["pem"].strip()
        )

    def generate(self, integration: Integration, kind: str | None, *, replace: bool) -> None:
        try:
            cls = provider_class(integration.auth_type)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        target = key_field(cls)
        if target is None:
            raise CommandError(
                f"{integration.auth_type} takes no generated key (its key comes from the "
                "provider)",
                returncode=2,
            )
        algorithm = getattr(cls.Options, "key_algorithm", None) or integration.auth_config.get(
            "algorithm"
        )
        kind = kind or usual_kind(algorithm)
        if kind is None:
            raise CommandError(
                f"no key type here signs {algorithm}"
                + (": it uses a shared secret" if str(algorithm).startswith("HS") else ""),
                returncode=2,
            )
        label, algorithms = keypairs.KINDS[kind]
        if algorithm and algorithm not in algorithms:
            raise CommandError(
                f"an {label} key signs {', '.join(algorithms)}, not {algorithm}", returncode=2
            )
        try:
            stored = integration.get_secrets()
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        if target in stored and not replace:
            raise CommandError(
                f"{integration.slug!r} already has a key; pass --replace to overwrite it "
                "(the provider then needs the new public key)",
                returncode=2,
            )
        pair = keypairs.generate(kind)
        integration.update_secrets({target: pair.private_pem})
        try:
            integration.full_clean()
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"not saved: {messages}", returncode=1) from None
        integration.save()
        self.stderr.write(self.style.SUCCESS(
            f"Generated an {label} key for {integration.slug!r}, stored encrypted. "
            "Register the public key below with the provider."
        ))


def usual_kind(algorithm: str | None) -> str | None:
    """The first key type that signs ``algorithm`` (RSA 2048 for RS256, P-256 for ES256)."""
    return next((kind for kind, (_, algs) in keypairs.KINDS.items() if algorithm in algs), None)
