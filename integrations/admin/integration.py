"""The integration admin: the list with each row's last test call, and the change form
with exactly the chosen auth type's options.

The list stays at a constant number of queries: each row is annotated with its last test
call's id and those rows are fetched in one query per page. Secrets are write-only
(security.md #29); test calls and previews are in ``views``.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.views.decorators.debug import sensitive_post_parameters

from .. import charts, keypairs
from ..forms import (
    MAIN_FIELDS,
    PREFIX,
    REQUEST_FIELDS,
    TLS_FIELDS,
    IntegrationForm,
    form_for,
    key_field,
    known_type,
)
from ..models import CallLog, Integration, IntegrationQuerySet
from ..tokens import PROVIDERS
from . import panels
from .accounts import accounts_panel
from .filters import AuthTypeFilter, LastTestFilter
from .keys import SigningKeyViews
from .views import TestCallViews

DEFAULT_TYPE = "jwt_bearer"

# Every posted value of the add and change forms is hidden from error reports (the
# DEBUG page, the mail to ADMINS): secrets, but also headers and claims, which may
# carry credentials too (security.md #29).
sensitive_posts = method_decorator(sensitive_post_parameters())


class IntegrationChangeList(ChangeList):
    """Attaches each listed integration's last test call, fetched for the whole page
    in one query (by the ids ``with_last_test()`` annotated), as ``last_test_row``:
    the cells show its latency, which the annotations do not carry."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = CallLog.objects.in_bulk(
            [obj.last_test_id for obj in self.result_list if obj.last_test_id]
        )
        # The 24 h sparklines of the whole page: one query (integrations.charts).
        lines = charts.sparklines(obj.pk for obj in self.result_list)
        for obj in self.result_list:
            obj.last_test_row = rows.get(obj.last_test_id)
            obj.sparkline = lines.get(obj.pk, "")


class IntegrationAdmin(SigningKeyViews, TestCallViews):
    form = IntegrationForm
    list_display = [
        "name", "slug", "auth_type_label", "enabled", "last_test", "last_test_when", "calls_24h",
    ]
    list_filter = ["enabled", AuthTypeFilter, LastTestFilter]
    search_fields = ["name", "slug", "base_url"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["run_test_calls"]
    change_form_template = "admin/integrations/integration/change_form.html"

    class Media:
        js = ["integrations/auth_type.js"]

    # Lists -------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        # The default manager's queryset: an IntegrationQuerySet (django-stubs cannot tell).
        queryset = cast(IntegrationQuerySet, super().get_queryset(request))
        return queryset.with_last_test()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return IntegrationChangeList

    @admin.display(description="auth type", ordering="auth_type")
    def auth_type_label(self, obj: Integration) -> str:
        cls = PROVIDERS.get(obj.auth_type)
        return cls.label if cls else obj.auth_type

    @admin.display(description="last test")
    def last_test(self, obj: Integration) -> SafeString | str:
        row: CallLog | None = getattr(obj, "last_test_row", None)
        if row is None:
            return "never"
        return format_html(
            '<img src="{}" alt="{}"> {} · {} ms',
            static(f"admin/img/icon-{'yes' if row.ok else 'no'}.svg"),
            "ok" if row.ok else "failed",
            row.status_code if row.status_code is not None else "no response",
            row.duration_ms,
        )

    @admin.display(description="last 24 h")
    def calls_24h(self, obj: Integration) -> SafeString | str:
        return getattr(obj, "sparkline", "")

    @admin.display(description="tested", ordering="last_test_created_at")
    def last_test_when(self, obj: Integration) -> str:
        row: CallLog | None = getattr(obj, "last_test_row", None)
        return f"{timesince(row.created_at)} ago" if row else "–"

    # Forms -------------------------------------------------------------------

    def chosen_type(self, request: HttpRequest, obj: Integration | None) -> str:
        """The auth type whose options this request shows: the one just submitted, the
        one asked for on the add page, or the integration's own."""
        return (
            known_type(request.POST.get("auth_type"))
            or (None if obj else known_type(request.GET.get("auth_type")))
            or (obj.auth_type if obj and obj.auth_type in PROVIDERS else None)
            or DEFAULT_TYPE
        )

    def get_form(
        self,
        request: HttpRequest,
        obj: Integration | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[ModelForm]:  # type: ignore[type-arg]
        if obj is None or self.has_change_permission(request, obj):
            kwargs["form"] = form_for(self.chosen_type(request, obj))
        form = super().get_form(request, obj, change, **kwargs)
        # A new class per request (modelform_factory), so this stays with this request.
        form.may_move_signer = request.user.has_perm(  # type: ignore[attr-defined]
            "integrations.manage_signing_keys"
        )
        return form

    def get_fieldsets(self, request: HttpRequest, obj: Integration | None = None) -> Any:
        main = (None, {"fields": MAIN_FIELDS})
        requests_ = ("Requests", {"fields": REQUEST_FIELDS})
        calls = (
            [("Latest calls", {"fields": ["recent_calls"]}),
             ("Latency and failures", {"fields": ["charts_panel"]}),
             ("Accounts", {"fields": ["accounts_panel"]})]
            if obj else []
        )
        if obj is not None and not self.has_change_permission(request, obj):
            auth = ["auth_type", "auth_options", "secrets_set"]
            return [main, ("Authentication", {"fields": auth}), requests_, *calls]
        cls = PROVIDERS[self.chosen_type(request, obj)]
        auth = ["auth_type", "shown_type", *(PREFIX + name for name in cls.Options.base_fields)]
        if key_field(cls):
            auth.append("generate_key")
        if obj is not None:
            auth += ["secret_fingerprints", "public_key"]
        tls = ("Client certificate (mutual TLS)", {"fields": TLS_FIELDS})
        keys = [("Signing keys", {"fields": ["signing_keys_panel"]})] if obj else []
        return [
            main, (f"Authentication: {cls.label}", {"fields": auth}), tls, requests_, *keys, *calls
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Integration | None = None) -> Any:
        return [
            "auth_options", "secrets_set", "secret_fingerprints", "public_key", "recent_calls",
            "charts_panel", "accounts_panel", "signing_keys_panel",
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Without JavaScript the form cannot follow a changing select: the operator
        picks the auth type first, then gets a form with exactly its fields."""
        if request.method == "GET" and not known_type(request.GET.get("auth_type")):
            if not self.has_add_permission(request):
                raise PermissionDenied
            return self.choose_type_view(request)
        return super().add_view(request, form_url, extra_context)

    def choose_type_view(self, request: HttpRequest) -> HttpResponse:
        types = [
            (name, cls.label, cls.is_preset)
            for name, cls in sorted(PROVIDERS.items(), key=lambda item: item[1].label)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Add integration: choose how it authenticates",
            "opts": self.opts,
            "groups": [
                ("Generic flows", [t for t in types if not t[2]]),
                ("Presets for specific providers", [t for t in types if t[2]]),
            ],
            "default_type": DEFAULT_TYPE,
        }
        return TemplateResponse(request, "admin/integrations/integration/choose_type.html", context)

    @sensitive_posts
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The add and change forms' view (both go through it)."""
        return super().changeform_view(request, *args, **kwargs)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["can_run_test"] = self.has_run_test_call_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        generated: keypairs.KeyPair | None = getattr(form, "generated", None)
        if generated is not None:
            label = keypairs.KINDS[generated.kind][0]
            self.message_user(
                request,
                f"Generated an {label} key pair (thumbprint {generated.public.thumbprint}). "
                "The private key is stored encrypted and will not be shown; upload the "
                "public key shown under Authentication to the provider.",
                messages.SUCCESS,
            )
        return super().save_form(request, form, change)

    def response_post_save_add(
        self, request: HttpRequest, obj: Integration
    ) -> HttpResponseRedirect:
        # Stay on the new integration: its public key and test button are there.
        return HttpResponseRedirect(reverse("admin:integrations_integration_change", args=[obj.pk]))

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """An integration's call logs go with it: counted, not listed (there may be
        millions), and not held back by the call log admin's no-delete rule, which keeps
        operators from editing a live integration's record, not from removing it."""
        integrations = list(objs)
        counts = dict(
            CallLog.objects.filter(integration__in=integrations)
            .values_list("integration")
            .annotate(n=Count("id"))
            .values_list("integration", "n")
        )
        to_delete: list[Any] = [
            [
                format_html(
                    'Integration: <a href="{}">{}</a>',
                    reverse("admin:integrations_integration_change", args=[obj.pk]),
                    obj,
                ),
                [f"{counts.get(obj.pk, 0)} call logs"],
            ]
            for obj in integrations
        ]
        model_count = {
            str(self.opts.verbose_name_plural): len(integrations),
            str(CallLog._meta.verbose_name_plural): sum(counts.values()),
        }
        return to_delete, model_count, set(), []

    # Read-only panels (templates in panels/) -----------------------------------

    @admin.display(description="options")
    def auth_options(self, obj: Integration) -> SafeString:
        return panels.auth_options(obj)

    @admin.display(description="secrets")
    def secrets_set(self, obj: Integration) -> SafeString | str:
        return panels.secrets_set(obj)

    @admin.display(description="stored secrets")
    def secret_fingerprints(self, obj: Integration) -> SafeString | str:
        return panels.secret_fingerprints(obj)

    @admin.display(description="public key")
    def public_key(self, obj: Integration) -> SafeString:
        return panels.public_key(obj)

    @admin.display(description="latest calls")
    def recent_calls(self, obj: Integration) -> SafeString:
        return panels.recent_calls(obj)

    @admin.display(description="accounts")
    def accounts_panel(self, obj: Integration) -> SafeString:
        return accounts_panel(obj)  # count and first page: two queries at any size

    @admin.display(description="charts")
    def charts_panel(self, obj: Integration) -> SafeString:
        return charts.panel(obj)  # two queries: 24 h by hour, 30 days by day
