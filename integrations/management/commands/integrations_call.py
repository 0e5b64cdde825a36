from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.audit import redact_text
from integrations.exceptions import IntegrationError
from integrations.models import CallSource
from integrations.services import get_session


class Command(BaseCommand):
    help = "One call through the service layer, logged. Exit 0 on 2xx, 1 otherwise."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("method")
        parser.add_argument("path")
        parser.add_argument("--data", help="JSON request body")
        parser.add_argument("--header", action="append", default=[], metavar="K:V")

    def handle(self, *args: Any, slug: str, method: str, path: str, **options: Any) -> None:
        kwargs: dict[str, Any] = {"headers": self.parse_headers(options["header"])}
        if options["data"] is not None:
            try:
                kwargs["json"] = json.loads(options["data"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--data is not valid JSON: {exc.msg}", returncode=2) from None
        try:
            session = get_session(slug, source=CallSource.COMMAND)
            response = session.request(method.upper(), path, **kwargs)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        except Exception as exc:
            raise CommandError(redact_text(f"{type(exc).__name__}: {exc}"), returncode=1) from None
        self.stderr.write(f"{response.status_code} {response.reason}")
        for name, value in response.headers.items():
            shown = "[redacted]" if name.lower() in {"set-cookie", "authorization"} else value
            self.stderr.write(f"{name}: {shown}")
        self.stdout.write(response.text)
        if not response.ok:
            raise CommandError(f"status {response.status_code}", returncode=1)

    @staticmethod
    def parse_headers(items: list[str]) -> dict[str, str]:
        headers = {}
        for item in items:
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise CommandError(f"--header {item!r} is not K:V", returncode=2)
            headers[name.strip()] = value.strip()
        return headers
