"""The account admin and the accounts panel of an integration's page (docs/reference.md,
Accounts). Built for 100,000 accounts: lists are paginated, the last test comes as
annotations (constant queries per page), filters never list every account, and the
integration page shows a count and the first page, never an inline of them all."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Account, AccountQuerySet, CallSource, Integration
from ..tasks import enqueue_tests
from ..testcalls import run_tests
from .filters import IntegrationFilter, LastTestFilter, TextBoxFilter

PANEL_ROWS = 20
# More selected accounts than this are tested by background tasks.
BACKGROUND_THRESHOLD = 20


class AccountKeyFilter(TextBoxFilter):
    """A key box, never a list of 100,000 links (for the call log's ``account``)."""

    title = "account"
    parameter_name = "account"
    box_label = "Account key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        self.keep_other_params(request)
        return []

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(account__key=self.value()) if self.value() else queryset


class AccountChangeList(ChangeList):
    """The page first, its last tests after. PostgreSQL computes a select list's
    subqueries for every row an OFFSET skips: page 1,000 of a list annotated in one
    query computed 50,000 accounts' last tests to show 50. Now the page's ids come
    without them (unless a filter or the ordering needs them), then the 50 rows with
    them: one query more, whatever the page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        page: Any = self.result_list
        ids = list(page.values_list("pk", flat=True))
        rows = Account.objects.filter(pk__in=ids).with_last_test().select_related("integration")
        by_id = {row.pk: row for row in rows}
        self.result_list = [by_id[pk] for pk in ids if pk in by_id]


class AccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["key", "name", "integration", "enabled", "last_test"]
    list_filter = [IntegrationFilter, "enabled", LastTestFilter]
    search_fields = ["key", "name"]
    raw_id_fields = ["integration"]
    list_select_related = ["integration"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False
    # By the (integration, key) unique index: "integration" would sort 100,000 rows by
    # the integration's name to show 50.
    ordering = ["integration_id", "key"]
    list_per_page = 50
    actions = ["run_test_calls"]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AccountChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        queryset = cast(AccountQuerySet, super().get_queryset(request))
        return queryset.with_last_test()

    def has_run_test_call_permission(self, request: HttpRequest) -> bool:
        # The same permission as an integration's test call (security.md #28).
        return bool(request.user.has_perm("integrations.run_test_call"))

    @admin.display(description="last test", ordering="last_test_created_at")
    def last_test(self, obj: Any) -> SafeString | str:
        if getattr(obj, "last_test_id", None) is None:
            return "never"
        status = obj.last_test_status_code if obj.last_test_status_code is not None else "–"
        return format_html("{} {}", "ok" if obj.last_test_ok else "failed", status)

    @admin.action(permissions=["run_test_call"], description="Run test call")
    def run_test_calls(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        accounts = list(queryset.select_related("integration").order_by("integration", "key"))
        targets = [(account.integration, account) for account in accounts]
        if len(targets) > BACKGROUND_THRESHOLD:
            enqueue_tests(targets, source=CallSource.ADMIN)
            self.message_user(
                request, f"Queued {len(targets)} test calls in the background.", messages.INFO
            )
            return
        for result in run_tests(targets, source=CallSource.ADMIN):
            level = messages.SUCCESS if result.ok else messages.ERROR
            what = f"HTTP {result.status_code}" if result.status_code else result.error
            self.message_user(request, f"{result.slug}[{result.account}]: {what}", level)


def accounts_panel(integration: Integration) -> SafeString:
    """Count and first page of an integration's accounts: two queries at any size."""
    accounts = Account.objects.filter(integration=integration)
    total = accounts.count()
    rows = list(accounts.with_last_test().order_by("key")[:PANEL_ROWS]) if total else []
    for row in rows:
        row.url = reverse("admin:integrations_account_change", args=[row.pk])  # type: ignore[attr-defined]
    changelist = reverse("admin:integrations_account_changelist")
    context = {
        "total": total,
        "rows": rows,
        "all_url": f"{changelist}?integration={integration.slug}",
        "add_url": reverse("admin:integrations_account_add") + f"?integration={integration.pk}",
    }
    return SafeString(render_to_string("admin/integrations/account/panel.html", context))
