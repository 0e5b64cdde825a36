"""Form fields of the admin's integration form: a secret textarea that never renders
its value, and JSON fields whose nesting is bounded."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

# Deeper than any header map, test request or claim set needs; far below the depth at
# which parsing, checking or storing the value exhausts Python's recursion limit.
MAX_JSON_DEPTH = 32


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), counted without
    recursion and only up to ``limit + 1``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending and deepest <= limit:
        item, level = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest


class BoundedJSONField(forms.JSONField):
    """A JSON field that refuses nesting deeper than ``MAX_JSON_DEPTH`` as a field error.

    Python's parser raises RecursionError (a 500, with the posted secrets in the error
    report) on deeply nested input, and every later walk over the value would too
    (security.md #30). A re-rendered form shows such input as the text it was.
    """

    def to_python(self, value: Any) -> Any:
        try:
            converted = super().to_python(value)
        except RecursionError:
            converted = None
        else:
            if json_depth(converted) <= MAX_JSON_DEPTH:
                return converted
        raise ValidationError(
            f"is nested too deeply: at most {MAX_JSON_DEPTH} levels of lists and objects",
            code="invalid",
        )

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            value = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        if json_depth(value) > MAX_JSON_DEPTH and isinstance(data, str):
            return InvalidJSONInput(data)
        return value


def bounded(option: forms.Field) -> forms.Field:
    """``option`` with its JSON parsing bounded (an Options form's JSON fields)."""
    if isinstance(option, forms.JSONField) and not isinstance(option, BoundedJSONField):
        base = type(option)
        option.__class__ = type(f"Bounded{base.__name__}", (BoundedJSONField, base), {})
    return option


class SecretTextarea(forms.Textarea):
    """A textarea (PEM keys span lines) that, like PasswordInput(render_value=False),
    never renders a value: not the stored one, not the one just submitted."""

    def format_value(self, value: Any) -> None:
        return None
