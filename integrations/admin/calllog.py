"""The call log admin: read-only evidence, newest first, at a constant number of queries
(the integration is joined) and without counting a huge unfiltered table."""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from ..models import CallLog
from .accounts import AccountKeyFilter
from .filters import IntegrationFilter

# Past this many rows (by the planner's estimate) an unfiltered list is not counted.
ESTIMATE_ABOVE = 100_000
ERROR_SHOWN = 80


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


class CallLogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only (security.md #27): rows are evidence, nobody edits them here."""

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
    list_filter = [IntegrationFilter, AccountKeyFilter, "ok", "source", "is_test", "created_at"]
    search_fields = ["url", "error"]
    list_select_related = ["integration"]
    show_full_result_count = False
    ordering = ["-created_at", "-id"]
    list_per_page = 50
    paginator = EstimatedCountPaginator

    @admin.display(description="error")
    def short_error(self, obj: CallLog) -> str:
        if len(obj.error) <= ERROR_SHOWN:
            return obj.error
        return obj.error[: ERROR_SHOWN - 1] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CallLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CallLog | None = None) -> bool:
        return False
