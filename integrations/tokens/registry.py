"""Auth types by name, listed explicitly: a new auth type or preset is a module and one
line here (a test checks that every module under ``presets`` is listed).

``build_provider`` turns an integration (duck-typed: anything with its auth fields and
``get_secrets``) into its provider, from options validated by the type's Options form.
"""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration
from .assertion import ClientAssertionProvider
from .base import IntegrationLike, TokenProvider
from .bearer import BearerProvider
from .certificate import ClientCertificateProvider
from .exchange import ExchangeProvider
from .grant import GrantProvider
from .presets.app_store_connect import AppStoreConnectProvider
from .presets.atlassian_connect import AtlassianConnectProvider
from .presets.box import BoxProvider
from .presets.docusign import DocuSignProvider
from .presets.github import GitHubAppProvider
from .presets.google import GoogleSelfSignedProvider, GoogleServiceAccountProvider
from .presets.salesforce import SalesforceProvider
from .presets.snowflake import SnowflakeProvider

FLOWS: tuple[type[TokenProvider], ...] = (
    BearerProvider,
    GrantProvider,
    ClientAssertionProvider,
    ClientCertificateProvider,
    ExchangeProvider,
)
PRESETS: tuple[type[TokenProvider], ...] = (
    AppStoreConnectProvider,
    AtlassianConnectProvider,
    BoxProvider,
    DocuSignProvider,
    GitHubAppProvider,
    GoogleServiceAccountProvider,
    GoogleSelfSignedProvider,
    SalesforceProvider,
    SnowflakeProvider,
)
PROVIDERS: dict[str, type[TokenProvider]] = {cls.type: cls for cls in FLOWS + PRESETS}


def provider_class(auth_type: str) -> type[TokenProvider]:
    try:
        return PROVIDERS[auth_type]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidConfiguration(
            f"unknown auth type {auth_type!r}; use one of {known}", field="auth.type"
        ) from None


def auth_type_choices() -> list[tuple[str, Any]]:
    return [(name, cls.label) for name, cls in sorted(PROVIDERS.items())]


@sensitive_variables("options", "data")
def with_defaults(form_class: type[Any], options: dict[str, Any]) -> dict[str, Any]:
    """Options with each absent field at its ``initial``: a configuration file states
    only what differs from the defaults, and a bound form would read absent as empty."""
    data: dict[str, Any] = {}
    for name, field in form_class.base_fields.items():
        initial = field.initial() if callable(field.initial) else field.initial
        if initial is not None:
            data[name] = initial
    data.update({name: value for name, value in options.items() if value is not None})
    return data


@sensitive_variables("options", "form")
def auth_errors(
    auth_type: str, options: dict[str, Any]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Validate auth options (secrets included) with the type's Options form: errors
    keyed ``auth.<option>``, or the cleaned options."""
    try:
        cls = provider_class(auth_type)
    except InvalidConfiguration as exc:
        return {"auth.type": [exc.message]}, {}
    form_class: Any = cls.Options  # django-stubs cannot type a form class held in a ClassVar
    form = form_class(data=with_defaults(form_class, options))
    if form.is_valid():
        return {}, form.cleaned_data
    errors = {
        f"auth.{name}" if name != "__all__" else "auth": [str(m) for m in messages]
        for name, messages in form.errors.items()
    }
    return errors, {}


@sensitive_variables("secrets", "cleaned")
def build_provider(integration: IntegrationLike) -> TokenProvider:
    """The integration's token provider, from validated options and decrypted secrets."""
    secrets = integration.get_secrets()
    errors, cleaned = auth_errors(integration.auth_type, {**integration.auth_config, **secrets})
    if errors:
        field, messages = next(iter(errors.items()))
        raise InvalidConfiguration(messages[0], field=field, entry=integration.slug)
    return provider_class(integration.auth_type)(integration, cleaned)
