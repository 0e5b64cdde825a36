from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.calllog import describe_error
from integrations.exceptions import (
    AccountDisabled,
    AccountNotFound,
    IntegrationDisabled,
    IntegrationError,
    IntegrationNotFound,
)
from integrations.models import CallSource
from integrations.redaction import redact_text
from integrations.services import get_session
from integrations.validation import HEADER_NAME, HTTP_METHODS

# Response headers shown as [redacted]: whatever may carry a credential or a session.
CREDENTIAL_HEADER = re.compile(
    r"(?i)auth|cookie|token|secret|password|passwd|session|signature|credential|api-?key"
)


def shown_header(name: str, value: str) -> str:
    """A response header's value as printed: credential-like ones masked, the rest
    cleaned of anything token-shaped and of CR/LF."""
    if CREDENTIAL_HEADER.search(name):
        return "[redacted]"
    return redact_text(value, limit=None)


class Command(BaseCommand):
    help = (
        "One call through the service layer, logged. Prints the status and headers "
        "(credentials redacted) on stderr and the body on stdout. "
        "Exit 0 on 2xx, 1 on any other status or a failed call, 2 on a usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("method", help=f"one of {', '.join(sorted(HTTP_METHODS))}")
        parser.add_argument("path", help="appended to the integration's base_url")
        parser.add_argument("--data", metavar="JSON", help="JSON request body, or @FILE")
        parser.add_argument(
            "--header", action="append", default=[], metavar="K:V", help="repeatable"
        )
        parser.add_argument("--account", metavar="KEY", help="call for this account")

    def handle(self, *args: Any, slug: str, method: str, path: str, **options: Any) -> None:
        method = method.upper()
        if method not in HTTP_METHODS:
            raise CommandError(
                f"unknown method {method!r}; use one of {', '.join(sorted(HTTP_METHODS))}",
                returncode=2,
            )
        kwargs: dict[str, Any] = {"headers": parse_headers(options["header"])}
        if options["data"] is not None:
            kwargs["json"] = parse_data(options["data"])
        try:
            session = get_session(slug, options["account"], source=CallSource.COMMAND)
        except (IntegrationNotFound, AccountNotFound) as exc:
            raise CommandError(str(exc), returncode=2) from None
        except (IntegrationDisabled, AccountDisabled) as exc:
            raise CommandError(str(exc), returncode=1) from None
        except IntegrationError as exc:
            raise CommandError(redact_text(str(exc)), returncode=1) from None
        try:
            response = session.request(method, path, **kwargs)
        except Exception as exc:  # refused, unreachable, timed out: already logged
            raise CommandError(f"call failed: {describe_error(exc)}", returncode=1) from None
        self.show(response)
        if not response.ok:
            raise CommandError(f"status {response.status_code}", returncode=1)

    def show(self, response: requests.Response) -> None:
        self.stderr.write(f"{response.status_code} {response.reason}")
        for name, value in response.headers.items():
            self.stderr.write(f"{name}: {shown_header(name, value)}")
        self.stderr.write("")
        body = response.text
        if "json" in response.headers.get("Content-Type", ""):
            try:
                body = json.dumps(response.json(), indent=2, ensure_ascii=False)
            except ValueError:
                pass  # not what it says: print it as it came
        self.stdout.write(body)


def parse_data(value: str) -> Any:
    """``--data``: JSON text, or ``@path`` to a file holding it."""
    source = "--data"
    if value.startswith("@"):
        path = Path(value[1:])
        source = str(path)
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CommandError(f"cannot read {path}: {reason}", returncode=2) from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            returncode=2,
        ) from None


def parse_headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not HEADER_NAME.fullmatch(name):
            raise CommandError(f"--header {item!r} is not NAME:VALUE", returncode=2)
        if "\r" in value or "\n" in value:
            raise CommandError(f"--header {name}: value has a line break", returncode=2)
        headers[name] = value
    return headers
