"""Accounts: what one integration does differently for each account it acts for
(docs/reference.md, Accounts).

One GitHub App acts for many installations, one Google service account impersonates
many users: an account holds only its overrides of the integration's auth options.
Which options an auth type accepts per account is declared on its provider
(``account_options``; ``account_required`` for those an account cannot do without).

Form options (``installation_id``, ``subject``, ``scope``) are merged over the
integration's before its Options form checks them; ``claims`` are merged over the
token's claims after the preset has mapped its fields, so ``{"sub": "alice"}`` works for
a flow and for a preset alike.

Per-account tokens (security.md #31): the provider built for an account sees the
integration through ``AccountScope``, whose ``slug`` is ``billing[acme]`` and whose
fingerprint covers the account's key and options. Token cache keys are made of both, so
a token minted for one account is never served to another, and an edit of one account
makes a new key for that account only.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.views.decorators.debug import sensitive_variables

from .exceptions import InvalidConfiguration, SecretDecryptionError
from .tokens.base import TokenProvider
from .tokens.registry import auth_errors, build_provider, provider_class
from .validation import unstorable

if TYPE_CHECKING:
    from .tokens.base import IntegrationLike

KEY_PATTERN = r"[A-Za-z0-9_.@:-]{1,100}"
KEY_RE = re.compile(KEY_PATTERN)
KEY_RULE = "1-100 characters of letters, digits and _ . @ : -"
# Claims the app sets itself (as for an integration's own claims).
RESERVED_CLAIMS = frozenset({"iat", "exp"})

T = TypeVar("T")


def key_problem(key: Any) -> str:
    """Why ``key`` cannot name an account, or ""."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        return f"must be {KEY_RULE}"
    return ""


def accepted_options(auth_type: str) -> tuple[str, ...]:
    """The options an account of this auth type may override; () for an unknown type."""
    try:
        return provider_class(auth_type).account_options
    except InvalidConfiguration:
        return ()


def form_options(options: dict[str, Any]) -> dict[str, Any]:
    """The overrides that go through the Options form (all but ``claims``)."""
    return {name: value for name, value in options.items() if name != "claims"}


def options_fingerprint(integration_fingerprint: str, key: str, options: Any) -> str:
    """Changes when the integration's auth, the account's key or its options change."""
    material = json.dumps([integration_fingerprint, key, options], sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


class IntegrationsOwn(Generic[T]):
    """An attribute of an ``AccountScope`` that is its integration's, unchanged."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, scope: AccountScope, owner: type | None = None) -> T:
        value: T = getattr(scope.integration, self.name)
        return value


class AccountScope:
    """The integration as one account sees it: what a provider reads (``IntegrationLike``),
    with the account's form options merged into ``auth_config``."""

    def __init__(self, integration: IntegrationLike, key: str, options: dict[str, Any]) -> None:
        self.integration = integration
        self.key = key
        self.options = options
        # "billing[acme]": brackets cannot occur in a slug or an account key, so one
        # account's cache keys never prefix another's (tokens/cache.py drops older
        # versions by prefix).
        self.slug = f"{integration.slug}[{key}]"
        self.auth_config = {**(integration.auth_config or {}), **form_options(options)}
        self.auth_fingerprint = options_fingerprint(integration.auth_fingerprint, key, options)

    def __repr__(self) -> str:
        return f"<AccountScope {self.slug!r}>"

    base_url: IntegrationsOwn[str] = IntegrationsOwn()
    timeout: IntegrationsOwn[float] = IntegrationsOwn()
    auth_type: IntegrationsOwn[str] = IntegrationsOwn()
    test_request: IntegrationsOwn[Any] = IntegrationsOwn()
    ca_bundle: IntegrationsOwn[str] = IntegrationsOwn()

    @property
    def server_metadata(self) -> Any:
        """The integration's discovered metadata (tokens/endpoint.py reads it)."""
        return getattr(self.integration, "server_metadata", None)

    def get_secrets(self) -> dict[str, str]:
        return self.integration.get_secrets()


def build_account_provider(
    integration: IntegrationLike, key: str, options: dict[str, Any]
) -> TokenProvider:
    """The account's token provider: merged options validated by the Options form (an
    InvalidConfiguration naming ``slug[key]`` otherwise), claims merged over the token's."""
    provider = build_provider(AccountScope(integration, key, options))
    claims = options.get("claims")
    if isinstance(claims, dict) and claims:
        mapped: dict[str, Any] = provider.options.get("claims") or {}
        provider.options["claims"] = {**mapped, **claims}
    return provider


@sensitive_variables("secrets", "merged")
def account_errors(integration: IntegrationLike, options: Any) -> dict[str, list[str]]:
    """Problems with an account's ``options`` on this integration, keyed ``options`` or
    ``options.<name>``; {} when the account can be used."""
    if not isinstance(options, dict):
        return {"options": ["must be a JSON object"]}
    problem = unstorable(options)
    if problem:
        return {"options": [problem]}
    auth_type = integration.auth_type
    accepted = accepted_options(auth_type)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        return {
            "options": [
                f"{', '.join(unknown)} cannot be set per account for {auth_type} "
                f"(it accepts: {allowed})"
            ]
        }
    errors: dict[str, list[str]] = {}
    claims = options.get("claims")
    if "claims" in options:
        if not isinstance(claims, dict) or not all(isinstance(k, str) for k in claims):
            errors["options.claims"] = ["must be a JSON object"]
        elif RESERVED_CLAIMS & set(claims):
            reserved = ", ".join(sorted(RESERVED_CLAIMS & set(claims)))
            errors["options.claims"] = [f"{reserved} are set by the app, not here"]
    try:
        secrets = integration.get_secrets()
    except SecretDecryptionError as exc:
        return {**errors, "options": [str(exc)]}
    merged = {**(integration.auth_config or {}), **secrets, **form_options(options)}
    form_errors, cleaned = auth_errors(auth_type, merged)
    for name, messages in form_errors.items():
        option = name.removeprefix("auth.")
        if option in options:
            errors.setdefault(f"options.{option}", []).extend(messages)
        else:
            # The integration's own option is wrong: the account cannot fix it here.
            errors.setdefault("options", []).extend(
                f"the integration's {name}: {message}" for message in messages
            )
    if not form_errors:
        for name in provider_class(auth_type).account_required:
            if not cleaned.get(name):
                errors[f"options.{name}"] = ["is required (the integration has none)"]
    return errors


ENTRY_FIELDS: dict[str, type] = {"key": str, "name": str, "enabled": bool, "options": dict}


def parse_account_entries(value: Any, *, entry: str) -> list[dict[str, Any]]:
    """A configuration entry's ``accounts``, checked for shape: a list of objects with
    ``key`` (required, unique) and optional ``name``, ``enabled``, ``options``. Raises
    InvalidConfiguration naming ``accounts[key].field``; options are checked later,
    against the integration they belong to."""
    if not isinstance(value, list):
        raise InvalidConfiguration("must be a list of objects", entry=entry, field="accounts")
    seen: set[str] = set()
    parsed: list[dict[str, Any]] = []
    for position, item in enumerate(value, start=1):
        where = f"accounts[#{position}]"
        if not isinstance(item, dict):
            raise InvalidConfiguration("must be a JSON object", entry=entry, field=where)
        problem = key_problem(item.get("key"))
        if problem:
            raise InvalidConfiguration(problem, entry=entry, field=f"{where}.key")
        key: str = item["key"]
        where = f"accounts[{key}]"
        if key in seen:
            raise InvalidConfiguration("appears twice in this entry", entry=entry, field=where)
        seen.add(key)
        unknown = sorted(set(item) - set(ENTRY_FIELDS))
        if unknown:
            raise InvalidConfiguration(
                f"unknown field(s) {', '.join(unknown)}", entry=entry, field=where
            )
        for name, kind in ENTRY_FIELDS.items():
            if name in item and not isinstance(item[name], kind):
                kind_name = {str: "a string", bool: "true or false", dict: "a JSON object"}
                raise InvalidConfiguration(
                    f"must be {kind_name[kind]}", entry=entry, field=f"{where}.{name}"
                )
        name_problem = unstorable(item.get("name", "")) or (
            "must be at most 200 characters" if len(item.get("name", "")) > 200 else ""
        )
        if name_problem:
            raise InvalidConfiguration(name_problem, entry=entry, field=f"{where}.name")
        parsed.append(item)
    return parsed


def raise_account_errors(errors: dict[str, list[str]], *, entry: str, key: str) -> None:
    """The first of ``account_errors``' problems as InvalidConfiguration naming the
    integration, the account and the field: ``billing: accounts[acme].options.x: ...``."""
    if errors:
        name, messages = next(iter(errors.items()))
        raise InvalidConfiguration(messages[0], entry=entry, field=f"accounts[{key}].{name}")
