"""The integration admin's test calls and token preview: the change page's button, the
list action and the preview page.

A test call reaches another company's API with the stored credentials: it needs
``integrations.run_test_call`` and a CSRF-checked POST (security.md #28).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from ..exceptions import IntegrationError
from ..models import CallSource, Integration
from ..tasks import enqueue_tests
from ..testcalls import run_test, run_tests
from ..tokens import preview as token_preview

# More selected than this and the bulk action queues background tasks instead of
# holding the request open for every call.
BACKGROUND_THRESHOLD = 5


def describe(result: Mapping[str, Any]) -> str:
    """A test result (``TestResult.as_dict()``, also what a task returns) in one line
    for an operator: 'ok, 200 in 12 ms' or 'failed (503, 12 ms): <error>'."""
    status = result["status_code"] if result["status_code"] is not None else "no response"
    duration = result["duration_ms"] or 0
    if result["ok"]:
        return f"ok, {status} in {duration} ms"
    return f"failed ({status}, {duration} ms): {result['error'] or 'unexpected response'}"


def claim_times(claims: dict[str, Any]) -> list[tuple[str, str]]:
    """iat/nbf/exp as UTC times relative to now, for an operator checking a lifetime."""
    now = time.time()
    times = []
    for name in ("iat", "nbf", "exp"):
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            times.append((name, claim_time(value, now)))
    return times


def claim_time(value: float, now: float) -> str:
    """'2026-01-01 12:00:00 UTC (in 30 s)'; a number no calendar holds (1e20, NaN) says
    so instead of failing the page (security.md #37)."""
    try:
        when = datetime.datetime.fromtimestamp(value, datetime.UTC)
        offset = int(value - now)
    except (OverflowError, OSError, ValueError):
        return f"{value!r}: not a valid time"
    relative = f"in {offset} s" if offset >= 0 else f"{-offset} s ago"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC ({relative})"


class TestCallViews(admin.ModelAdmin):  # type: ignore[type-arg]
    """The test-call and preview views, their URLs and the "Run test call" action; the
    integration admin builds on it."""

    def has_run_test_call_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"{self.opts.app_label}.run_test_call"))

    @admin.action(permissions=["run_test_call"], description="Run test call")
    def run_test_calls(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        """A few selected run here, on threads; more go to the background tasks and are
        reported if they have finished (the immediate backend) or counted as queued."""
        integrations = list(queryset.order_by("name"))
        if len(integrations) <= BACKGROUND_THRESHOLD:
            results = run_tests(integrations, source=CallSource.ADMIN)
            for integration, result in zip(integrations, results, strict=True):
                self.report(request, integration, result.as_dict())
            return
        pending = 0
        queued = enqueue_tests(integrations, source=CallSource.ADMIN)
        for integration, task in zip(integrations, queued, strict=True):
            if task.is_finished and task.return_value is not None:
                self.report(request, integration, task.return_value)
            else:
                pending += 1
        if pending:
            self.message_user(
                request,
                f"Queued {pending} test calls in the background; their results will "
                "appear in the call log.",
                messages.INFO,
            )

    def report(
        self, request: HttpRequest, integration: Integration, result: Mapping[str, Any]
    ) -> None:
        level = messages.SUCCESS if result["ok"] else messages.ERROR
        self.message_user(request, f"{integration}: {describe(result)}", level)

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
        without the permission (security.md #28)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_run_test_call_permission(request):
            raise PermissionDenied
        integration = self.get_object_or_404(request, object_id)
        self.report(request, integration, run_test(integration, source=CallSource.ADMIN).as_dict())
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
        shown = preview or {}
        context = {
            **self.admin_site.each_context(request),
            "title": f"Token preview: {integration}",
            "opts": self.opts,
            "original": integration,
            "preview": preview,
            "header_json": json.dumps(preview["header"], indent=2) if preview else "",
            "claims_json": json.dumps(preview["claims"], indent=2) if preview else "",
            "times": claim_times(preview["claims"]) if preview else [],
            # DPoP (RFC 9449): the proofs' header and claims, public key members only
            # (security.md #34); a client_certificate type's token request (no secret).
            "dpop_json": json.dumps(shown["dpop"], indent=2) if "dpop" in shown else "",
            "token_request_json": (
                json.dumps(shown["token_request"], indent=2) if "token_request" in shown else ""
            ),
            "error": error,
        }
        return TemplateResponse(request, "admin/integrations/integration/preview.html", context)
