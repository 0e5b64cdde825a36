"""The app's own views: ``GET integrations/health`` for load balancers and monitors.

The health document lists every enabled integration's health (``integrations.health``)
and answers 200 when none is failing, 503 when any is, so an uptime monitor needs no
parsing. It says slug, health and when the last test ran: never a secret, an error
message or a remote body (security.md #39). Read with ``Authorization: Bearer
<INTEGRATIONS_HEALTH_TOKEN>`` or as a staff user; anyone else gets 403.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .health import FAILING, OK, health_report
from .settings import app_settings


def health_allowed(request: HttpRequest) -> bool:
    """A matching bearer token (compared in constant time) or an active staff user."""
    token = str(app_settings.HEALTH_TOKEN or "")
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and offered:
        if hmac.compare_digest(offered.strip().encode(), token.encode()):
            return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


@never_cache
@require_safe
def health(request: HttpRequest) -> HttpResponse:
    """Every enabled integration's health; 200 when none is failing, else 503. One
    query for the integrations however many there are (plus the session's, for staff)."""
    if not health_allowed(request):
        return JsonResponse({"error": "forbidden"}, status=403)
    report = [entry.as_dict() for entry in health_report()]
    failing = any(entry["health"] == FAILING for entry in report)
    return JsonResponse(
        {"status": FAILING if failing else OK, "integrations": report},
        status=503 if failing else 200,
    )
