"""List filters of the integration and call log admins."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import Integration
from ..tokens import PROVIDERS

# Past this many integrations the call log's integration filter is a slug box.
FILTER_LINKS = 50


class LastTestFilter(admin.SimpleListFilter):
    """By the newest test call's result, on the ``with_last_test()`` annotations."""

    title = "last test"
    parameter_name = "last_test"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ok", "Passed"), ("failed", "Failed"), ("never", "Never run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in {"ok", "failed"}:
            return queryset.filter(last_test_ok=value == "ok")
        if value == "never":
            return queryset.filter(last_test_id__isnull=True)
        return queryset


class AuthTypeFilter(admin.SimpleListFilter):
    title = "auth type"
    parameter_name = "auth_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, cls.label) for name, cls in sorted(PROVIDERS.items())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(auth_type=self.value()) if self.value() else queryset


class TextBoxFilter(admin.SimpleListFilter):
    """A filter shown as a text box (admin/integrations/text_box_filter.html) where a
    list of links would be too long: the value typed, then Enter, keeps the list's other
    query parameters but the page number. ``box_label`` names what to type; the form's
    class is ``<parameter_name>-filter``."""

    template = "admin/integrations/text_box_filter.html"
    box_label = ""

    def keep_other_params(self, request: HttpRequest) -> None:
        self.other_params = [
            (name, value)
            for name, values in request.GET.lists()
            for value in values
            if name not in {self.parameter_name, "p"}
        ]


class IntegrationFilter(TextBoxFilter):
    """Links to each integration while they are few; past ``FILTER_LINKS`` a slug box,
    since a thousand links help nobody and took longer to render than the page."""

    title = "integration"
    parameter_name = "integration"
    template = "admin/integrations/calllog/integration_filter.html"
    box_label = "Integration slug"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = list(
            Integration.objects.order_by("name").values_list("slug", "name")[: FILTER_LINKS + 1]
        )
        self.as_box = len(choices) > FILTER_LINKS
        self.keep_other_params(request)
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(integration__slug=self.value()) if self.value() else queryset
