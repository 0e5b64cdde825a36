"""An example of application code using the service layer (docs/service.md).

``GET /example/<slug>/`` makes the integration's test call through
``integrations.services.request`` (so it is authenticated, bounded, retried and logged
like any app call) and returns what came back as JSON. Staff only: it lets the viewer
fire calls with the integration's credentials.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from integrations import services
from integrations.audit import describe_error
from integrations.exceptions import IntegrationDisabled, IntegrationError, IntegrationNotFound
from integrations.models import Integration

MAX_BODY_CHARS = 2000


@staff_member_required
@require_GET
def example(request: HttpRequest, slug: str) -> JsonResponse:
    test = Integration.objects.filter(slug=slug).values_list("test_request", flat=True).first()
    path = str((test or {}).get("path", ""))
    try:
        response = services.request(slug, "GET", path)
    except IntegrationNotFound as exc:
        return JsonResponse({"integration": slug, "error": str(exc)}, status=404)
    except IntegrationDisabled as exc:
        return JsonResponse({"integration": slug, "error": str(exc)}, status=409)
    except (IntegrationError, requests.RequestException) as exc:
        # The message is already redacted by the service layer; 502: the remote failed.
        return JsonResponse({"integration": slug, "error": describe_error(exc)}, status=502)
    return JsonResponse(
        {
            "integration": slug,
            "status": response.status_code,
            "ok": response.ok,
            "body": _body(response),
        }
    )


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError):
        return response.text[:MAX_BODY_CHARS]
