"""Admin for operators: configure integrations, generate keys, preview tokens, fire test
calls and read the call log.

Lists stay at a constant number of queries: the integration list annotates each row
with its last test call's id and fetches those rows in one query per page; the call log
joins its integration and estimates, rather than counts, a huge unfiltered table. Secrets are
write-only (SECURITY 29) and test calls need ``integrations.run_test_call`` (SECURITY 28).
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from . import keypairs
from .exceptions import IntegrationError, SecretDecryptionError
from .forms import (
    MAIN_FIELDS,
    PREFIX,
    REQUEST_FIELDS,
    IntegrationForm,
    fingerprint,
    form_for,
    key_field,
    known_type,
)
from .models import CallLog, CallSource, Integration
from .tokens import PROVIDERS, TokenProvider, public_key_info
from .tokens import preview as token_preview

# More selected than this and the bulk action queues background tasks instead of
# holding the request open for every call.
BACKGROUND_THRESHOLD = 5
RECENT_CALLS = 20
ESTIMATE_ABOVE = 100_000
FILTER_LINKS = 50
DEFAULT_TYPE = "jwt_bearer"
PRESETS_PACKAGE = "integrations.tokens.presets."


def last_test(field: str) -> Subquery:
    """``field`` of the integration's newest test call, as a correlated subquery."""
    latest = CallLog.objects.filter(integration=OuterRef("pk"), is_test=True).order_by(
        "-created_at", "-id"
    )
    return Subquery(latest.values(field)[:1])


class IntegrationChangeList(ChangeList):
    """Attaches each listed integration's last test call, fetched for the whole page
    in one query (by the ids the list query annotated), as ``last_test_row``."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = CallLog.objects.in_bulk(
            [obj.last_test_id for obj in self.result_list if obj.last_test_id]
        )
        for obj in self.result_list:
            obj.last_test_row = rows.get(obj.last_test_id)


def describe(row: CallLog) -> str:
    """One line for an operator: 'ok, 200 in 12 ms' or 'failed (503, 12 ms): <error>'."""
    status = row.status_code if row.status_code is not None else "no response"
    if row.ok:
        return f"ok, {status} in {row.duration_ms} ms"
    return f"failed ({status}, {row.duration_ms} ms): {row.error or 'unexpected response'}"


class LastTestFilter(admin.SimpleListFilter):
    title = "last test"
    parameter_name = "last_test"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ok", "Passed"), ("failed", "Failed"), ("never", "Never run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in {"ok", "failed"}:
            annotated: QuerySet[Any] = queryset.annotate(last_test_ok=last_test("ok"))
            return annotated.filter(last_test_ok=value == "ok")
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


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = IntegrationForm
    list_display = ["name", "slug", "auth_type_label", "enabled", "last_test", "last_test_when"]
    list_filter = ["enabled", AuthTypeFilter, LastTestFilter]
    search_fields = ["name", "slug", "base_url"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["run_test_calls"]
    change_form_template = "admin/integrations/integration/change_form.html"

    class Media:
        js = ["integrations/auth_type.js"]

    # Lists -------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        queryset: QuerySet[Integration] = super().get_queryset(request)
        return queryset.annotate(last_test_id=last_test("id"))

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

    @admin.display(description="tested", ordering="last_test_id")
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
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Integration | None = None) -> Any:
        main = (None, {"fields": MAIN_FIELDS})
        requests_ = ("Requests", {"fields": REQUEST_FIELDS})
        calls = [("Latest calls", {"fields": ["recent_calls"]})] if obj else []
        if obj is not None and not self.has_change_permission(request, obj):
            auth = ["auth_type", "auth_options", "secrets_set"]
            return [main, ("Authentication", {"fields": auth}), requests_, *calls]
        cls = PROVIDERS[self.chosen_type(request, obj)]
        auth = ["auth_type", "shown_type", *(PREFIX + name for name in cls.Options.base_fields)]
        if key_field(cls):
            auth.append("generate_key")
        if obj is not None:
            auth += ["secret_fingerprints", "public_key"]
        return [main, (f"Authentication: {cls.label}", {"fields": auth}), requests_, *calls]

    def get_readonly_fields(self, request: HttpRequest, obj: Integration | None = None) -> Any:
        return ["auth_options", "secrets_set", "secret_fingerprints", "public_key", "recent_calls"]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Without JavaScript the form cannot follow a changing select: the operator
        picks the auth type first, then gets a form with exactly its fields."""
        if request.method == "GET" and not known_type(request.GET.get("auth_type")):
            if not self.has_add_permission(request):
                raise PermissionDenied
            types = [
                (name, cls.label, cls.__module__.startswith(PRESETS_PACKAGE))
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
            return TemplateResponse(
                request, "admin/integrations/integration/choose_type.html", context
            )
        return super().add_view(request, form_url, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_run_test": self.has_run_test_call_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

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

    # Read-only displays --------------------------------------------------------

    @admin.display(description="options")
    def auth_options(self, obj: Integration) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.auth_config, indent=2, sort_keys=True))

    @admin.display(description="secrets")
    def secrets_set(self, obj: Integration) -> SafeString | str:
        """For viewers: whether each secret is set, nothing about its value."""
        cls = PROVIDERS.get(obj.auth_type)
        if cls is None:
            return "–"
        try:
            stored = set(obj.secret_names())
        except SecretDecryptionError:
            return "cannot be decrypted with the configured keys"
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            (
                (label(cls, name), "set" if name in stored else "not set")
                for name in cls.secret_fields
            ),
        )

    @admin.display(description="stored secrets")
    def secret_fingerprints(self, obj: Integration) -> SafeString | str:
        """For editors: 'set' plus a fingerprint that identifies, never reveals."""
        cls = PROVIDERS.get(obj.auth_type)
        if cls is None:
            return "–"
        try:
            stored = obj.get_secrets()
        except SecretDecryptionError:
            return "cannot be decrypted with the configured keys: enter them again"
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            (
                (
                    label(cls, name),
                    f"set · {fingerprint(cls, obj.auth_config, name, stored[name])}"
                    if name in stored
                    else "not set",
                )
                for name in cls.secret_fields
            ),
        )

    @admin.display(description="public key")
    def public_key(self, obj: Integration) -> SafeString | str:
        try:
            info = public_key_info(obj)
        except IntegrationError:
            info = None
        if info is None:
            return "– (no private key stored)"
        return format_html(
            '<p>Thumbprint (RFC 7638): <code class="thumbprint">{}</code></p>'
            '<p>PEM:</p><pre class="public-pem">{}</pre>'
            '<p>JWK:</p><pre class="public-jwk">{}</pre>',
            info["thumbprint"],
            info["pem"],
            json.dumps(info["jwk"], indent=2),
        )

    @admin.display(description="latest calls")
    def recent_calls(self, obj: Integration) -> SafeString | str:
        rows = list(obj.call_logs.order_by("-created_at", "-id")[:RECENT_CALLS])
        if not rows:
            return "No calls yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td>"
            "<td>{} ms</td><td>{}</td></tr>",
            (
                (
                    row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    row.source,
                    "yes" if row.ok else "no",
                    row.method,
                    row.url,
                    row.status_code if row.status_code is not None else "–",
                    row.attempts,
                    row.duration_ms,
                    row.error,
                )
                for row in rows
            ),
        )
        link = reverse("admin:integrations_calllog_changelist") + f"?integration={obj.slug}"
        return format_html(
            '<table class="recent-calls"><thead><tr><th>when</th><th>source</th><th>ok</th>'
            "<th>request</th><th>status</th><th>attempts</th><th>latency</th><th>error</th>"
            '</tr></thead><tbody>{}</tbody></table><p><a href="{}">All calls</a></p>',
            body,
            link,
        )

    # Test calls and previews ---------------------------------------------------

    def has_run_test_call_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"{self.opts.app_label}.run_test_call"))

    @admin.action(permissions=["run_test_call"], description="Run test call")
    def run_test_calls(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        integrations = list(queryset.order_by("name"))
        if len(integrations) > BACKGROUND_THRESHOLD:
            from .tasks import enqueue_tests

            results = enqueue_tests(integrations, source=CallSource.ADMIN)
            pending = 0
            for integration, result in zip(integrations, results, strict=True):
                if result.is_finished and result.return_value is not None:
                    summary = result.return_value
                    self.report_summary(request, integration, summary)
                else:
                    pending += 1
            if pending:
                self.message_user(
                    request,
                    f"Queued {pending} test calls in the background; their results will "
                    "appear in the call log.",
                    messages.INFO,
                )
            return
        for integration in integrations:
            self.report(request, integration, run_test(integration))

    def report(self, request: HttpRequest, integration: Integration, row: CallLog) -> None:
        level = messages.SUCCESS if row.ok else messages.ERROR
        self.message_user(request, f"{integration}: {describe(row)}", level)

    def report_summary(
        self, request: HttpRequest, integration: Integration, summary: dict[str, Any]
    ) -> None:
        row = CallLog(
            ok=summary["ok"],
            status_code=summary["status_code"],
            duration_ms=summary["duration_ms"] or 0,
            error=summary["error"] or "",
        )
        self.report(request, integration, row)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/test/", view(self.test_view), name="integrations_integration_test"
            ),
            path(
                "<path:object_id>/preview/",
                view(self.preview_view),
                name="integrations_integration_preview",
            ),
            *super().get_urls(),
        ]

    def get_object_or_404(self, request: HttpRequest, object_id: str) -> Integration:
        integration: Integration | None = self.get_object(request, unquote(object_id))
        if integration is None:
            raise Http404(f"No integration with id {object_id!r}")
        return integration

    def test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only, CSRF-checked by admin_view, and refused before any call is made
        without the permission (SECURITY 28)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_run_test_call_permission(request):
            raise PermissionDenied
        integration = self.get_object_or_404(request, object_id)
        self.report(request, integration, run_test(integration))
        return HttpResponseRedirect(
            reverse("admin:integrations_integration_change", args=[integration.pk])
        )

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        integration = self.get_object_or_404(request, object_id)
        if not self.has_view_permission(request, integration):
            raise PermissionDenied
        preview: dict[str, Any] | None = None
        error = ""
        try:
            preview = token_preview(integration)
        except (IntegrationError, NotImplementedError) as exc:
            error = str(exc) or "this auth type cannot preview its token"
        context = {
            **self.admin_site.each_context(request),
            "title": f"Token preview: {integration}",
            "opts": self.opts,
            "original": integration,
            "preview": preview,
            "header_json": json.dumps(preview["header"], indent=2) if preview else "",
            "claims_json": json.dumps(preview["claims"], indent=2) if preview else "",
            "times": claim_times(preview["claims"]) if preview else [],
            "error": error,
        }
        return TemplateResponse(request, "admin/integrations/integration/preview.html", context)


def label(cls: type[TokenProvider], name: str) -> str:
    """An option's label as the form shows it."""
    field = cls.Options.base_fields.get(name)
    return (
        str(field.label)
        if field is not None and field.label
        else name.replace("_", " ").capitalize()
    )


def claim_times(claims: dict[str, Any]) -> list[tuple[str, str]]:
    """iat/nbf/exp as UTC times relative to now, for an operator checking a lifetime."""
    now = time.time()
    times = []
    for name in ("iat", "nbf", "exp"):
        value = claims.get(name)
        if isinstance(value, int | float):
            when = datetime.datetime.fromtimestamp(value, datetime.UTC)
            offset = int(value - now)
            relative = f"in {offset} s" if offset >= 0 else f"{-offset} s ago"
            times.append((name, f"{when:%Y-%m-%d %H:%M:%S} UTC ({relative})"))
    return times


def run_test(integration: Integration) -> CallLog:
    from .services import run_test_for

    return run_test_for(integration, source=CallSource.ADMIN)


class IntegrationFilter(admin.SimpleListFilter):
    """Links to each integration while they are few; past ``FILTER_LINKS`` a slug box,
    since a thousand links help nobody and took longer to render than the page."""

    title = "integration"
    parameter_name = "integration"
    template = "admin/integrations/calllog/integration_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = list(
            Integration.objects.order_by("name").values_list("slug", "name")[: FILTER_LINKS + 1]
        )
        self.as_box = len(choices) > FILTER_LINKS
        self.other_params = [
            (name, value)
            for name, values in request.GET.lists()
            for value in values
            if name not in {self.parameter_name, "p"}
        ]
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(integration__slug=self.value()) if self.value() else queryset


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Exact counts, except for an unfiltered PostgreSQL table past ``ESTIMATE_ABOVE``
    rows: there ``COUNT(*)`` reads the whole table and costs more than the page, so the
    planner's estimate (kept by autovacuum/ANALYZE) numbers the pages instead."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            connection = connections[queryset.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                        [queryset.model._meta.db_table],
                    )
                    row = cursor.fetchone()
                if row and row[0] > ESTIMATE_ABOVE:
                    return int(row[0])
        return int(super().count)


@admin.register(CallLog)
class CallLogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only (SECURITY 27): rows are evidence, nobody edits them here."""

    list_display = [
        "created_at",
        "integration",
        "source",
        "is_test",
        "method",
        "url",
        "status_code",
        "ok",
        "duration_ms",
        "attempts",
        "short_error",
    ]
    list_filter = [IntegrationFilter, "ok", "source", "is_test", "created_at"]
    search_fields = ["url", "error"]
    list_select_related = ["integration"]
    show_full_result_count = False
    ordering = ["-created_at", "-id"]
    list_per_page = 50
    paginator = EstimatedCountPaginator

    @admin.display(description="error")
    def short_error(self, obj: CallLog) -> str:
        return obj.error if len(obj.error) <= 80 else obj.error[:79] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CallLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CallLog | None = None) -> bool:
        return False
