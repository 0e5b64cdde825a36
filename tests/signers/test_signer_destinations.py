"""A device signer is a credential with no secret to type: moving the integration to
another server needs the signer stated again (configuration file) or the
manage_signing_keys permission (admin), security.md #30, #32."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from integrations.destinations import credential_destination_errors
from integrations.models import Integration
from integrations.tokens.custody import SIGNER_FIELD, signer_cache
from tests.commands.helpers import manage
from tests.signers.devices import KMS_SPEC_FOR

pytestmark = pytest.mark.django_db

HOME = "http://127.0.0.1:9/api/"
ELSEWHERE = "https://attacker.example.net/api/"


def kms_entry(kms: dict[str, Any], *, base_url: str, with_auth: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"slug": "kms", "name": "KMS", "base_url": base_url}
    if with_auth:
        entry["auth"] = {
            "type": "jwt_bearer",
            "algorithm": "ES256",
            "claims": {"iss": "shop"},
            "signer": {
                "type": "aws_kms",
                "key_id": kms["keys"][KMS_SPEC_FOR["ES256"]],
                "region": kms["region"],
                "endpoint_url": kms["endpoint_url"],
            },
        }
    return entry


def run_import(tmp_path: Path, entry: dict[str, Any]) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    return manage("integrations_import", str(path))


@pytest.fixture
def kms_integration(kms: dict[str, Any], tmp_path: Path) -> Integration:
    signer_cache.clear()
    ran = run_import(tmp_path, kms_entry(kms, base_url=HOME))
    assert ran.code == 0, ran.err
    return Integration.objects.get(slug="kms")


def test_import_moving_a_device_signed_integration_needs_the_signer(
    kms: dict[str, Any], kms_integration: Integration, tmp_path: Path
) -> None:
    """security.md #30: an entry that changes base_url and keeps the stored signer is
    refused naming the field; one that states the signer again is imported."""
    ran = run_import(tmp_path, kms_entry(kms, base_url=ELSEWHERE, with_auth=False))
    assert ran.code != 0
    assert "kms: base_url: This would send the stored signer to another server" in ran.err
    assert Integration.objects.get(slug="kms").base_url == HOME

    ran = run_import(tmp_path, kms_entry(kms, base_url=ELSEWHERE))
    assert ran.code == 0, ran.err
    assert Integration.objects.get(slug="kms").base_url == ELSEWHERE


def test_the_rule_counts_a_signer_as_kept_unless_entered(kms_integration: Integration) -> None:
    """security.md #30, #32: the shared rule (admin and import) treats a stored signer
    like a stored secret."""
    new = {
        "base_url": ELSEWHERE,
        "auth_type": kms_integration.auth_type,
        "auth_config": kms_integration.auth_config,
    }
    assert set(credential_destination_errors(kms_integration, new, set())) == {"base_url"}
    assert credential_destination_errors(kms_integration, new, {SIGNER_FIELD}) == {}


def editor(*extra: str) -> Client:
    person = User.objects.create_user(f"editor{User.objects.count()}", is_staff=True)
    codenames = ["change_integration", "view_integration", *extra]
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label="integrations", codename__in=codenames)
    )
    client = Client()
    client.force_login(person)
    return client


def test_admin_moves_a_device_signer_only_with_the_key_permission(
    kms_integration: Integration,
) -> None:
    """security.md #30: in the admin, an editor without manage_signing_keys cannot point
    a KMS-signed integration elsewhere; one with it can."""
    url = f"/admin/integrations/integration/{kms_integration.pk}/change/"
    without_key_permission = editor()
    form = without_key_permission.get(url).context["adminform"].form
    data = {
        name: "" if value is None else value
        for name, value in form.initial.items()
        if name in form.fields
    }
    data.update({
        f"auth_{name}": json.dumps(value) if isinstance(value, dict) else value
        for name, value in kms_integration.auth_config.items()
    })
    data.update(auth_type="jwt_bearer", base_url=ELSEWHERE, name="KMS", slug="kms",
                enabled="on", headers="{}", test_request="{}", timeout="10",
                log_calls="all", auth_lifetime="300")
    data = {name: value for name, value in data.items() if value is not False}

    refused = without_key_permission.post(url, data)
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert list(errors) == ["base_url"], errors
    assert "send the stored signer to another server" in errors["base_url"][0]
    assert Integration.objects.get(pk=kms_integration.pk).base_url == HOME

    allowed = editor("manage_signing_keys").post(url, data)
    assert allowed.status_code == 302, allowed.context["adminform"].form.errors
    assert Integration.objects.get(pk=kms_integration.pk).base_url == ELSEWHERE
