"""The registry lists every auth type explicitly, and each preset declares its rules
once: what the admin's key generation and type chooser read."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from integrations.tokens import presets, registry
from integrations.tokens.base import TokenProvider
from integrations.tokens.preset import Preset


def provider_classes_defined_in(module) -> list[type[TokenProvider]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, TokenProvider)
        and cls.__module__ == module.__name__
        and "type" in vars(cls)
    ]


PRESET_MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(presets.__path__))


@pytest.mark.parametrize("name", PRESET_MODULES)
def test_every_module_under_presets_is_registered(name):
    """A preset module whose line in registry.PRESETS is forgotten fails here instead
    of being silently absent from the admin and the import."""
    module = importlib.import_module(f"{presets.__name__}.{name}")
    defined = provider_classes_defined_in(module)
    assert defined, f"presets/{name}.py declares no preset"
    for cls in defined:
        assert cls in registry.PRESETS, f"{cls.__name__} is missing from registry.PRESETS"
        assert registry.PROVIDERS[cls.type] is cls


def test_names_are_unique_and_flows_are_not_presets():
    listed = registry.FLOWS + registry.PRESETS
    assert len({cls.type for cls in listed}) == len(listed) == len(registry.PROVIDERS)
    assert not any(cls.is_preset for cls in registry.FLOWS)
    assert all(cls.is_preset and issubclass(cls, Preset) for cls in registry.PRESETS)


GENERATED_KEY_FIELDS = {
    "jwt_bearer": "key",
    "jwt_grant": "key",
    "client_assertion": "key",
    "jwt_exchange": "key",
    "github_app": "private_key",
    "app_store_connect": "private_key",
    "salesforce": "private_key",
    "docusign": "private_key",
    "snowflake": "private_key",
    "atlassian_connect": None,  # a shared HMAC secret
    "google_service_account": None,  # the key is inside the key file
    "google_self_signed_jwt": None,
    "box": None,  # the key is inside Box's config
    "client_certificate": None,  # the TLS client certificate is its only credential
}


@pytest.mark.parametrize("auth_type", sorted(registry.PROVIDERS))
def test_generated_key_field_is_declared_and_a_secret(auth_type):
    """The secret a generated key pair fills is declared on the class (no naming rule
    to guess it by), is one of its secrets and an option of its form."""
    cls = registry.PROVIDERS[auth_type]
    assert cls.generated_key_field == GENERATED_KEY_FIELDS[auth_type]
    if cls.generated_key_field:
        assert cls.generated_key_field in cls.secret_fields
        assert cls.generated_key_field in cls.Options.base_fields
    assert set(cls.secret_fields) <= set(cls.Options.base_fields)
