from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import keypairs, signingkeys
from integrations.configfile import resolve_secret
from integrations.exceptions import IntegrationError, InvalidConfiguration
from integrations.management.cli import integration_by_slug
from integrations.models import Integration
from integrations.signingkeys import KeyInfo

HELP = (
    "List an integration's signing keys (kid, state, algorithm, created, thumbprint; "
    "never private material), or roll them over: --add-next, then (once the provider "
    "has the new public key) --promote, then --drop-retired. "
    "Exit 0 ok, 1 failed, 2 usage error or unknown slug."
)
ACTIONS = ("add_next", "promote", "drop_retired", "drop_next")
# A private key file is a few KiB.
MAX_KEY_FILE_BYTES = 64 * 1024


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        actions = parser.add_mutually_exclusive_group()
        actions.add_argument(
            "--add-next",
            action="store_true",
            help="add a next key (generated unless --key-file or --signer) and print its "
            "public half; turns send_kid on",
        )
        actions.add_argument(
            "--promote", action="store_true", help="next becomes active, active becomes retired"
        )
        actions.add_argument(
            "--drop-retired", action="store_true", help="remove retired keys from the JWKS"
        )
        actions.add_argument("--drop-next", action="store_true", help="remove the next key")
        parser.add_argument("--kind", choices=list(keypairs.KINDS), help="key type to generate")
        parser.add_argument("--key-file", metavar="PATH", help="a PEM private key to add")
        parser.add_argument(
            "--signer",
            metavar="JSON",
            help='a device key to add, e.g. {"type": "pkcs11", ..., "pin": {"env": "HSM_PIN"}}',
        )
        parser.add_argument("--kid", default="", help="the next key's kid (default: thumbprint)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        integration = integration_by_slug(slug)
        action = next((name for name in ACTIONS if options[name]), "")
        sources = [name for name in ("kind", "key_file", "signer") if options[name]]
        if action != "add_next" and (sources or options["kid"]):
            raise CommandError(
                "--kind, --key-file, --signer and --kid go with --add-next", returncode=2
            )
        if len(sources) > 1:
            raise CommandError("give one of --kind, --key-file, --signer", returncode=2)
        try:
            if action == "add_next":
                self.add_next(integration, options)
            elif action == "promote":
                self.promote(integration, options["json"])
            elif action in ("drop_retired", "drop_next"):
                self.drop(integration, action, options["json"])
            else:
                self.list(integration, options["json"])
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None

    def list(self, integration: Integration, as_json: bool) -> None:
        keys = signingkeys.all_keys(integration)
        if as_json:
            shown = [{k: v for k, v in key.as_dict().items() if k != "pem"} for key in keys]
            self.stdout.write(json.dumps({"slug": integration.slug, "keys": shown}, indent=2))
            return
        if not keys:
            self.stdout.write(f"{integration.slug}: no key pair (a shared secret, or no key)")
            return
        rows = [("KID", "STATE", "ALG", "CREATED", "THUMBPRINT", "WHERE")]
        for key in keys:
            created = key.created.strftime("%Y-%m-%d %H:%M") if key.created else "-"
            rows.append((key.kid, key.state, key.algorithm, created, key.thumbprint, key.custody))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())

    def add_next(self, integration: Integration, options: dict[str, Any]) -> None:
        signer, pin = self.signer_option(options["signer"])
        key, turned_on = signingkeys.add_next(
            integration,
            kind=options["kind"],
            private_pem=self.key_file(options["key_file"]),
            signer=signer,
            pin=pin,
            kid=options["kid"],
        )
        self.stderr.write(self.style.SUCCESS(
            f"Added next key {key.kid} ({key.algorithm}, {key.custody}) to "
            f"{integration.slug!r}: published in the JWKS, not signing yet. Register the "
            "public key below with the provider (or let it fetch the JWKS), then --promote."
        ))
        if turned_on:
            self.stderr.write(
                "send_kid is now on: tokens carry their key's kid, so a provider holding "
                "both keys can choose."
            )
        self.show(key, options["json"])

    def promote(self, integration: Integration, as_json: bool) -> None:
        active, retired = signingkeys.promote(integration)
        if as_json:
            self.stdout.write(
                json.dumps({"active": active.as_dict(), "retired": retired.as_dict()}, indent=2)
            )
            return
        self.stdout.write(
            f"{integration.slug}: {active.kid} is now active and signs; {retired.kid} is "
            "retired (still published until --drop-retired)."
        )

    def drop(self, integration: Integration, action: str, as_json: bool) -> None:
        if action == "drop_next":
            kids = [signingkeys.drop_next(integration)]
        else:
            kids = signingkeys.drop_retired(integration)
        if as_json:
            self.stdout.write(json.dumps({"slug": integration.slug, "dropped": kids}))
            return
        what = "next" if action == "drop_next" else "retired"
        if kids:
            self.stdout.write(f"{integration.slug}: dropped {what} key(s) {', '.join(kids)}")
        else:
            self.stdout.write(f"{integration.slug}: no {what} keys")

    def show(self, key: KeyInfo, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(key.as_dict(), indent=2))
            return
        self.stdout.write(key.pem.strip())
        self.stdout.write(json.dumps(key.jwk, indent=2))

    def signer_option(self, text: str | None) -> tuple[dict[str, Any] | None, str]:
        """The device settings and its PIN, read from the environment or a file: a PIN
        typed on the command line would stay in shell history and process lists."""
        if not text:
            return None, ""
        try:
            config = json.loads(text)
        except ValueError:
            raise CommandError("--signer is not JSON", returncode=2) from None
        if not isinstance(config, dict):
            raise CommandError("--signer must be a JSON object", returncode=2)
        value = config.pop("pin", None)
        if isinstance(value, str):
            raise CommandError(
                'give the PIN as {"env": "NAME"} or {"file": "path"}, never on the command line',
                returncode=2,
            )
        try:
            pin = resolve_secret(value, entry="--signer", field="pin", base_dir=Path.cwd())
        except InvalidConfiguration as exc:
            raise CommandError(str(exc), returncode=1) from None
        return config, pin or ""

    def key_file(self, path: str | None) -> str:
        if not path:
            return ""
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", returncode=1) from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise CommandError(f"{path} is too large to be a private key", returncode=1)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not a PEM file", returncode=1) from None
