"""An example of application code using the service layer (docs/service.md).

``POST /example/<slug>/`` makes the integration's test call through
``integrations.services.request`` (so it is authenticated, bounded, retried and logged
like any app call) and returns what came back as JSON.

It fires a call with the integration's credentials and shows the remote's answer, so it
is guarded like the admin's test-call action (security.md #28, #37): the user needs the
``integrations.run_test_call`` permission, and only a POST, which Django's CSRF
middleware checks, makes the call. A cross-site GET from a logged-in operator's browser
makes none.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from integrations import services
from integrations.exceptions import IntegrationDisabled, IntegrationError, IntegrationNotFound
from integrations.models import Integration
from integrations.redaction import redact_text

MAX_BODY_CHARS = 2000


@require_POST
@csrf_protect
@permission_required("integrations.run_test_call", raise_exception=True)
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
        error = redact_text(f"{type(exc).__name__}: {exc}")
        return JsonResponse({"integration": slug, "error": error}, status=502)
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
