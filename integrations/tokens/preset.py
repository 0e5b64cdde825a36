"""Presets: a provider's published rules declared once over a generic flow.

A preset is a subclass of ``Preset`` and a flow (``BearerProvider``, ``GrantProvider``,
``ExchangeProvider``) that declares:

- ``type`` and ``label``;
- ``signing_key``: a ``PresetKey``, the secret option holding the key and the one
  algorithm the provider accepts (the key is checked for it on save and signs with it);
  None when the key sits inside another secret (a key file, Box's config);
- ``lifetime``: a ``Lifetime``, the default and the provider's cap, and whether the
  provider measures the cap from the backdated ``iat``;
- ``Options``: a ``PresetOptions`` form with the provider's own fields only: the key's
  secret field and the lifetime field are added from the declarations above;
- ``flow_options(options)``: the flow's options (claims, URLs) from those fields; it is
  given the plain options only, never a secret.

Registration is one line in ``registry.PRESETS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from .base import FlowOptions, JWTProvider, check_key, secret_field, send_kid_field, signer_field
from .custody import PIN_FIELD, SIGNER_FIELD
from .signing import HMAC_ALGORITHMS


@dataclass(frozen=True)
class PresetKey:
    """The secret option holding a preset's signing key, and the algorithm it must suit."""

    algorithm: str
    help_text: str
    field: str = "private_key"
    label: str = "Private key"

    @property
    def can_be_generated(self) -> bool:
        """A key pair can be generated for it: not for a shared HMAC secret."""
        return self.algorithm not in HMAC_ALGORITHMS


@dataclass(frozen=True)
class Lifetime:
    """A provider's token lifetime in seconds: the default and the cap. ``from_iat``:
    the provider measures the cap from ``iat``, which is backdated by ``clock_skew``."""

    initial: int
    cap: int
    from_iat: bool = False

    def field(self) -> forms.IntegerField:
        return forms.IntegerField(
            min_value=1,
            initial=self.initial,
            required=False,
            help_text=f"Seconds; at most {self.cap} for this provider.",
        )

    def check(self, form: forms.Form, lifetime: int | None, clock_skew: int) -> None:
        """Refuse a lifetime past the cap (security.md #30: presets keep their provider's)."""
        skew = clock_skew if self.from_iat else 0
        if lifetime and lifetime + skew > self.cap:
            what = f"lifetime + {skew} s of iat backdating" if skew else "lifetime"
            form.add_error(
                "lifetime",
                f"{what} must be at most {self.cap} seconds for this provider; "
                f"got {lifetime + skew}",
            )


class PresetOptions(forms.Form):
    """A preset's own fields; ``Preset`` fills in its rules when the preset is declared."""

    signing_key: ClassVar[PresetKey | None] = None
    lifetime_rule: ClassVar[Lifetime]
    clock_skew: ClassVar[int] = 30

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.signing_key is not None:
            check_key(self, data, self.signing_key.algorithm, self.signing_key.field)
        if not data.get("lifetime"):
            data["lifetime"] = self.lifetime_rule.initial
        self.lifetime_rule.check(self, data.get("lifetime"), self.clock_skew)
        return data


class Preset(JWTProvider):
    """Base of the presets; list a flow after it: ``class X(Preset, GrantProvider)``."""

    is_preset = True
    # Each preset names what its accounts may override; a flow's list is not inherited.
    account_options: ClassVar[tuple[str, ...]] = ()
    signing_key: ClassVar[PresetKey | None]
    lifetime: ClassVar[Lifetime]
    # Seconds iat is backdated (security.md #5); GitHub asks for 60.
    clock_skew: ClassVar[int] = 30

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.signing_key
        added: dict[str, Any] = {"lifetime": cls.lifetime.field()}
        if key is not None:
            added = {key.field: secret_field(key.label, key.help_text), **added}
            cls.secret_fields = (key.field,)
        if key is not None and key.can_be_generated:
            # A key pair may live in an HSM or KMS instead (tokens/custody.py).
            added = {
                **added,
                SIGNER_FIELD: signer_field(),
                PIN_FIELD: secret_field("Signer PIN", "The PKCS#11 token's user PIN."),
                "send_kid": send_kid_field(),
            }
            cls.secret_fields = (key.field, PIN_FIELD)
        cls.generated_key_field = key.field if key and key.can_be_generated else None
        cls.key_algorithm = key.algorithm if key else None
        declared: Any = cls.Options  # django-stubs cannot type a form class in a ClassVar
        if not issubclass(declared, PresetOptions):
            raise TypeError(f"{cls.__name__}.Options must be a PresetOptions form")
        cls.Options = type(
            declared.__name__,
            (declared,),
            {
                **added,
                "__module__": cls.__module__,
                "signing_key": key,
                # Read by integrations_keygen until it reads the provider's key_algorithm.
                "key_algorithm": cls.key_algorithm,
                "lifetime_rule": cls.lifetime,
                "clock_skew": cls.clock_skew,
            },
        )

    @sensitive_variables()
    def map_options(self, options: dict[str, Any]) -> FlowOptions:
        plain = {name: value for name, value in options.items() if name not in self.secret_fields}
        return {**self.signing_options(options), **self.flow_options(plain)}

    @sensitive_variables()
    def signing_options(self, options: dict[str, Any]) -> FlowOptions:
        """The algorithm the key was checked for (so it is used as checked), the key,
        the lifetime and the iat backdating."""
        assert self.signing_key is not None  # presets without one override this
        return {
            "algorithm": self.signing_key.algorithm,
            "key": options.get(self.signing_key.field) or "",
            "signer": options.get(SIGNER_FIELD) or {},
            "signer_pin": options.get(PIN_FIELD) or "",
            "send_kid": bool(options.get("send_kid")),
            "lifetime": options["lifetime"],
            "clock_skew": self.clock_skew,
        }

    def flow_options(self, options: dict[str, Any]) -> FlowOptions:
        """The flow's claims and URLs from the preset's own plain (not secret) fields."""
        raise NotImplementedError


@sensitive_variables("text", "data")
def pasted_json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object of a provider's file pasted into a secret (``what``: "the key
    file"), or ValidationError saying it is not one, never quoting it."""
    try:
        data = json.loads(text)
    except ValueError:
        raise forms.ValidationError(f"{what} is not JSON: paste the whole file") from None
    if not isinstance(data, dict):
        raise forms.ValidationError(f"{what} is not a JSON object: paste the whole file")
    return data
