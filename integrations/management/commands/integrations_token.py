from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.accounts import build_account_provider
from integrations.calllog import describe_error
from integrations.certificates import ClientCertificate
from integrations.exceptions import (
    AccountDisabled,
    AccountNotFound,
    IntegrationDisabled,
    IntegrationError,
    IntegrationNotFound,
)
from integrations.http.mtls import integration_ssl_context
from integrations.http.session import create_session
from integrations.services import load_account, load_integration
from integrations.tokens.base import JWTProvider, Token, TokenProvider
from integrations.tokens.preview import shown_request
from integrations.tokens.sender import DPoPBinding
from integrations.validation import build_provider


def decoded(token: str) -> dict[str, Any] | None:
    """Header and claims of a JWT, unverified (we only show them); None when opaque."""
    try:
        return {
            "header": jwt.get_unverified_header(token),
            "claims": jwt.decode(token, options={"verify_signature": False}),
        }
    except jwt.PyJWTError:
        return None


REVEAL_HELP = "also print the token itself (a live credential: keep it out of logs)"
HELP = (
    "Obtain a fresh token for an integration (bypassing the cache) and print its "
    "decoded header and claims as JSON; the token itself only with --reveal. "
    "Exit 0 ok, 1 the token could not be obtained, 2 usage error or unknown slug."
)


class Command(BaseCommand):
    help = HELP
    # The client certificate the token request presented, if any.
    certificate: ClientCertificate | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--reveal", action="store_true", help=REVEAL_HELP)
        parser.add_argument("--account", metavar="KEY", help="a token for this account")

    def handle(self, *args: Any, slug: str, reveal: bool, **options: Any) -> None:
        key = options["account"]
        try:
            integration = load_integration(slug)
            account = load_account(integration, key) if key is not None else None
        except (IntegrationNotFound, AccountNotFound) as exc:
            raise CommandError(str(exc), returncode=2) from None
        except (IntegrationDisabled, AccountDisabled) as exc:
            raise CommandError(str(exc), returncode=1) from None
        try:
            provider = (
                build_account_provider(integration, account.key, account.options)
                if account is not None
                else build_provider(integration)
            )
            token = self.obtain(provider)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=1) from None
        except Exception as exc:  # the token endpoint unreachable, timed out, refused
            raise CommandError(describe_error(exc), returncode=1) from None
        report = self.describe(provider, token)
        report["slug"] = integration.slug
        report["account"] = key
        if reveal:
            self.stderr.write(self.style.WARNING(
                "WARNING: the token below is a live credential. Do not paste it into "
                "tickets or chats, and keep it out of shell history and CI logs."
            ))
            report["token"] = token.value
        self.stdout.write(json.dumps(report, indent=2, default=str))

    def obtain(self, provider: TokenProvider) -> Token:
        # The client certificate goes to the token endpoint as in calls (RFC 8705).
        mtls = integration_ssl_context(provider.integration)
        self.certificate = mtls[0] if mtls else None
        http = create_session(
            ca_bundle=provider.integration.ca_bundle, ssl_context=mtls[1] if mtls else None
        )
        # A per-request token covers one request: show the one for the test call.
        return provider.obtain(http, shown_request(provider))

    def binding(self, provider: TokenProvider, claims: dict[str, Any]) -> dict[str, Any]:
        """``cnf`` (RFC 7800): the token's own when it is a JWT carrying one, else what
        this client proves: its DPoP key's ``jkt`` and its certificate's ``x5t#S256``."""
        if isinstance(claims.get("cnf"), dict):
            return {"cnf": claims["cnf"], "cnf_from": "the token's claims"}
        cnf: dict[str, str] = {}
        dpop = getattr(provider, "dpop", None)
        if isinstance(dpop, DPoPBinding):
            cnf["jkt"] = dpop.key.jkt()
        if self.certificate is not None:
            cnf["x5t#S256"] = self.certificate.thumbprint
        if not cnf:
            return {}
        return {"cnf": cnf, "cnf_from": "the proof key and client certificate this client uses"}

    def describe(self, provider: TokenProvider, token: Token) -> dict[str, Any]:
        report: dict[str, Any] = {
            "slug": provider.slug,
            "auth_type": provider.integration.auth_type,
            "expires_at": datetime.fromtimestamp(token.expires_at, UTC).isoformat(),
            "expires_in": int(token.expires_at - time.time()),
            "kid": token.kid or None,
            "jti": token.jti or None,
            "token_type": getattr(token, "token_type", "") or None,
        }
        jwt_parts = decoded(token.value)
        report.update(self.binding(provider, jwt_parts["claims"] if jwt_parts else {}))
        if jwt_parts is not None:
            report.update(format="jwt", **jwt_parts)
        else:
            report["format"] = "opaque"
            if isinstance(provider, JWTProvider):
                # The access token says nothing; show what we sign to get one.
                assertion, _ = provider.mint()
                report["assertion"] = decoded(assertion)
        return report
