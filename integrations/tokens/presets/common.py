"""What every preset hands its generic flow the same way."""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..base import PresetOptions


@sensitive_variables()
def signing_options(form: type[PresetOptions], options: dict[str, Any]) -> dict[str, Any]:
    """The flow's signing options as the preset's ``Options`` form declares them: the
    algorithm it checks the key for (so the key is used as it was checked), the key from
    its key field, the lifetime, and the iat backdating its lifetime cap allows for."""
    return {
        "algorithm": form.key_algorithm,
        "key": options[form.key_field],
        "lifetime": options["lifetime"],
        "clock_skew": form.clock_skew,
    }
