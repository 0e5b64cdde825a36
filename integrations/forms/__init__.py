"""The admin's integration form: model fields plus the chosen auth type's options.

Each auth type declares its options in an ``Options`` form; this form copies that type's
fields in as ``auth_<option>`` so only what the chosen type needs is shown and validated,
with or without JavaScript. Secret options are write-only (security.md #29): never rendered,
not even what was just typed, and a blank submit keeps the stored value.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import traceback
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import QueryDict
from django.views.decorators.debug import sensitive_variables

from .. import keypairs
from ..destinations import credential_destination_errors
from ..discovery_cache import prepare_for_save
from ..exceptions import InvalidConfiguration, SecretDecryptionError
from ..models import Integration
from ..tokens import PROVIDERS, TokenProvider, auth_type_choices, provider_class
from ..tokens.custody import SIGNER_FIELD, kept_secrets, moot_secrets
from ..tokens.sender import INTEGRATION_SECRETS
from ..tokens.sender_checks import sender_errors
from ..tokens.signing import key_fingerprint
from ..validation import auth_errors
from .certificate import TLS_FIELDS as TLS_FIELDS  # the admin's fieldset
from .certificate import client_certificate_field, stored_description
from .fields import BoundedJSONField, SecretTextarea, bounded

PREFIX = "auth_"
# The model fields the admin edits, in the groups its fieldsets show.
MAIN_FIELDS = ["name", "slug", "base_url", "enabled"]
REQUEST_FIELDS = [
    "headers",
    "timeout",
    "log_calls",
    "test_request",
    "follow_redirects",
    "ca_bundle",
    "idempotency_header",
]
MODEL_FIELDS = [*MAIN_FIELDS, "auth_type", *REQUEST_FIELDS]
logger = logging.getLogger(__name__)


def unchecked(cls: type[TokenProvider], exc: Exception) -> str:
    """The form error for options whose check crashed (security.md #30): generic, since
    the exception's text may quote a secret; the log says where, never what."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    logger.error(
        "checking %s options raised %s at %s",
        cls.type,
        type(exc).__name__,
        f"{where.filename}:{where.lineno}" if where else "?",
    )
    return (
        f"The {cls.label} options could not be checked: a value has an unexpected form "
        "(for example a number where text belongs, or a key file with a field of the "
        "wrong type). Check them and save again."
    )


def key_field(cls: type[TokenProvider]) -> str | None:
    """The secret option a generated key pair fills, as the auth type declares it."""
    return cls.generated_key_field


@sensitive_variables("value")
def fingerprint(cls: type[TokenProvider], options: dict[str, Any], name: str, value: str) -> str:
    """A safe, stable identifier of a stored secret: the public key's SHA-256 for a
    private key, else a salted hash that cannot be turned back into the secret."""
    algorithm = options.get("algorithm") or keypairs.usual_algorithm(value)
    if name == key_field(cls) and algorithm:
        try:
            return key_fingerprint(algorithm, value)
        except InvalidConfiguration:
            pass
    digest = hashlib.sha256(b"integrations-secret-fingerprint:" + value.encode()).hexdigest()
    return f"secret:{digest[:16]}"


class IntegrationForm(forms.ModelForm):  # type: ignore[type-arg]
    """Base form; ``form_for(auth_type)`` adds that type's options."""

    provider: type[TokenProvider] | None = None

    shown_type = forms.CharField(widget=forms.HiddenInput, required=False)
    auth_type = forms.ChoiceField(
        label="Auth type",
        help_text="Changing it shows the new type's options; fill them in and save again.",
    )
    # A secret of the integration, whatever its auth type (forms/certificate.py).
    client_certificate = client_certificate_field()

    # Set per request by the admin: the user holds integrations.manage_signing_keys.
    may_move_signer: ClassVar[bool] = False

    class Meta:
        model = Integration
        fields = MODEL_FIELDS
        field_classes = {"headers": BoundedJSONField, "test_request": BoundedJSONField}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["auth_type"].choices = auth_type_choices()  # type: ignore[attr-defined]
        self.generated: keypairs.KeyPair | None = None
        # Names (never values) of the secrets typed or generated in this submit.
        self.entered_secrets: set[str] = set()
        self.type_switched = False
        stored = stored_description(self.instance)
        if stored:
            self.fields["client_certificate"].help_text += " " + stored
        if self.provider is None:
            return
        if self.is_bound and self.data.get("shown_type") != self.provider.type:
            self.show_new_type(self.provider)
        self.initial["auth_type"] = self.provider.type
        self.initial["shown_type"] = self.provider.type
        if self.instance.pk and self.instance.auth_type == self.provider.type:
            for name, value in (self.instance.auth_config or {}).items():
                if name not in self.provider.secret_fields:
                    self.initial[PREFIX + name] = value

    def show_new_type(self, cls: type[TokenProvider]) -> None:
        """The operator picked another type, whose fields were not on the page: render
        them with their defaults (and anything submitted under the same name), marked as
        shown, so the next save validates them."""
        self.type_switched = True
        data = QueryDict(mutable=True)
        data.update(self.data)
        data["shown_type"] = cls.type
        for name, option in cls.Options.base_fields.items():
            key = PREFIX + name
            if key in data or name in cls.secret_fields or option.initial is None:
                continue
            initial = option.initial() if callable(option.initial) else option.initial
            data[key] = str(self.fields[key].prepare_value(initial))
        self.data = data

    def option_names(self) -> list[str]:
        return (
            [PREFIX + name for name in self.provider.Options.base_fields] if self.provider else []
        )

    @sensitive_variables("data", "secrets", "cleaned")
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        cls = self.provider
        if cls is None:
            return data
        if self.type_switched:
            # Not errors yet: the operator has not seen these fields.
            for name in self.option_names():
                self.errors.pop(name, None)
            raise ValidationError(
                f"Auth type is now {cls.label}: fill in its options below and save again."
            )
        plain = {
            name: data.get(PREFIX + name)
            for name in cls.Options.base_fields
            if name not in cls.secret_fields
        }
        if any(self.has_error(name) for name in self.option_names()):
            return data
        secrets = self.merged_secrets(cls, data)
        if secrets is None:
            return data
        # A signer replaces the stored key; no signer, no PIN (tokens/custody.py).
        secrets = kept_secrets(key_field(cls), plain, secrets, self.entered_secrets)
        try:
            errors, cleaned = auth_errors(cls.type, {**plain, **secrets})
        except Exception as exc:  # noqa: BLE001  (any crash of an Options form's clean)
            self.add_error(None, unchecked(cls, exc))
            return data
        if not errors:
            options = {
                name: cleaned[name]
                for name in plain
                if cleaned.get(name) is not None and cleaned.get(name) != ""
            }
            new_values = {"base_url": data.get("base_url"), "auth_type": cls.type}
            # Whoever may manage signing keys may also send a device signer elsewhere.
            entered = self.entered_secrets | ({SIGNER_FIELD} if self.may_move_signer else set())
            moved = credential_destination_errors(
                self.instance, {**new_values, "auth_config": options}, entered
            )
            errors = {name: [message] for name, message in moved.items()}
        self.add_named_errors(errors)
        if errors:
            return data
        self.instance.auth_type = cls.type
        self.instance.auth_config = options
        self.instance.set_secrets({
            name: value
            for name, value in secrets.items()
            if name in cls.secret_fields or name in INTEGRATION_SECRETS
        })
        # The DPoP key generated, the issuer's metadata read (with this submit's CA
        # bundle and timeout): the model's check then compares the options with it.
        self.instance.ca_bundle = data.get("ca_bundle") or ""
        self.instance.timeout = data.get("timeout") or self.instance.timeout
        problems = prepare_for_save(self.instance) or dict(
            sender_errors(cls, cleaned, self.instance.get_secrets(), self.instance.server_metadata)
        )  # on the option's own field; the model's check would say it for the whole form
        self.add_named_errors({name: [message] for name, message in problems.items()})
        return data

    def add_named_errors(self, errors: dict[str, list[str]]) -> None:
        """Errors keyed as ``validation`` names them (``auth.<option>``, model fields) on
        this form's fields; others on the form itself."""
        for name, messages in errors.items():
            field: str | None = (
                PREFIX + name.removeprefix("auth.") if name.startswith("auth.") else name
            )
            if field not in self.fields:
                field = None
            for message in messages:
                self.add_error(field, message)

    @sensitive_variables("submitted", "stored", "secrets")
    def merged_secrets(
        self, cls: type[TokenProvider], data: dict[str, Any]
    ) -> dict[str, str] | None:
        """Stored secrets of this type, overridden by what was typed or generated.

        None when an error was added (unreadable stored secrets, or a generated key that
        does not suit the algorithm).
        """
        submitted = {
            name: data[PREFIX + name] for name in cls.secret_fields if data.get(PREFIX + name)
        }
        if data.get("client_certificate"):
            submitted["client_certificate"] = data["client_certificate"]
        kind = data.get("generate_key")
        target = key_field(cls)
        custody = {SIGNER_FIELD: data.get(PREFIX + SIGNER_FIELD)}
        if kind and target:
            if target in submitted:
                self.add_error("generate_key", "Either paste a key or generate one, not both.")
                return None
            algorithm = data.get(PREFIX + "algorithm") or cls.key_algorithm
            label, algorithms = keypairs.KINDS[kind]
            if algorithm and algorithm not in algorithms:
                self.add_error(
                    "generate_key",
                    f"An {label} key signs {', '.join(algorithms)}, not {algorithm}: "
                    "choose one of those algorithms or another key type.",
                )
                return None
            self.generated = keypairs.generate(kind)
            submitted[target] = self.generated.private_pem
        self.entered_secrets = set(submitted)
        stored: dict[str, str] = {}
        if self.instance.pk and self.instance.encrypted_secrets:
            try:
                stored = self.instance.get_secrets()
            except SecretDecryptionError:
                if set(cls.secret_fields) - set(submitted) - moot_secrets(target, custody):
                    self.add_error(
                        None,
                        "The stored secrets cannot be decrypted with the configured "
                        "INTEGRATIONS_ENCRYPTION_KEYS; enter every secret again to "
                        "replace them.",
                    )
                    return None
        # The integration's own secrets (client certificate, DPoP key) outlive a type.
        kept = (*cls.secret_fields, *INTEGRATION_SECRETS)
        secrets = {name: value for name, value in stored.items() if name in kept}
        secrets.update(submitted)
        return secrets

    def _post_clean(self) -> None:
        # The model's own check runs the Options form again, over stored secrets too
        # (an imported configuration): a crash there is a form error as well.
        try:
            super()._post_clean()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001
            cls = self.provider or provider_class(self.instance.auth_type)
            self.add_error(None, unchecked(cls, exc))

    def _update_errors(self, errors: ValidationError) -> None:
        # Model.clean reports auth problems on auth_config, which is not a form field.
        # This form checked the same rules field by field: keep its messages.
        error_dict = getattr(errors, "error_dict", None)
        if error_dict and "auth_config" in error_dict:
            moved = error_dict.pop("auth_config")
            checked = self.type_switched or any(self.has_error(n) for n in self.option_names())
            if not checked:
                error_dict.setdefault(NON_FIELD_ERRORS, []).extend(moved)
        if error_dict and self.has_error("client_certificate"):
            error_dict.pop("client_certificate", None)  # said once, by clean()
        super()._update_errors(errors)  # type: ignore[misc]


def option_label(cls: type[TokenProvider], name: str) -> str:
    """An option's label as the form shows it."""
    field = cls.Options.base_fields.get(name)
    if field is not None and field.label:
        return str(field.label)
    return name.replace("_", " ").capitalize()


def form_for(auth_type: str) -> type[IntegrationForm]:
    """An ``IntegrationForm`` with ``auth_type``'s options (and a key generator when the
    type takes a private key)."""
    cls = provider_class(auth_type)
    attrs: dict[str, Any] = {"provider": cls, "__module__": __name__}
    for name, option in cls.Options.base_fields.items():
        option = copy.deepcopy(option)
        if name in cls.secret_fields:
            option.required = False
            option.widget = SecretTextarea(
                attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}
            )
            option.help_text = (
                f"{option.help_text} Write-only: leave blank to keep the stored value."
            ).strip()
        option.label = option_label(cls, name)
        attrs[PREFIX + name] = bounded(option)
    if key_field(cls):
        attrs["generate_key"] = forms.ChoiceField(
            label="Generate key pair",
            required=False,
            choices=[("", "No: use the pasted or stored key"), *keypairs.kind_choices()],
            help_text="Creates a new private key, stores it encrypted and shows its public "
            "key to upload to the provider. Replaces the stored key.",
        )
    return type(f"{cls.__name__}IntegrationForm", (IntegrationForm,), attrs)


def known_type(auth_type: str | None) -> str | None:
    return auth_type if auth_type in PROVIDERS else None
