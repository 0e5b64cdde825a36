"""The configuration-file recipes of docs/tokens.md: a preset imported with its secret
from a file works on the wire, and exports without the secret."""

from __future__ import annotations

import json

import pytest

from integrations import services
from integrations.configfile import export_config, import_config
from tests.tokens.emulators import SCOPES, AuthServer, expect, key_file

pytestmark = pytest.mark.django_db


def test_google_key_file_imported_from_a_file_round_trips(server, tmp_path):
    """reference.md configuration file: {"file": ...} reads the JSON key file at import; the
    grant works; export writes the secret as null and re-importing it keeps the key."""
    auth = AuthServer(
        server,
        algorithm="RS256",
        rules=[expect(header_kid="8f2c1d", iss="robot@demo.iam.gserviceaccount.com")],
    )
    (tmp_path / "sa.json").write_text(key_file(auth.url) + "\n")
    config = {
        "integrations": [
            {
                "slug": "bigquery",
                "name": "BigQuery",
                "base_url": f"{server.url}/api/",
                "auth": {
                    "type": "google_service_account",
                    "service_account": {"file": "sa.json"},
                    "scopes": SCOPES,
                },
            }
        ]
    }
    import_config(config, base_dir=tmp_path)
    assert services.request("bigquery", "GET", "resource").status_code == 200
    exported = export_config()
    assert exported["integrations"][0]["auth"]["service_account"] is None
    assert "PRIVATE KEY" not in json.dumps(exported)
    import_config(exported, base_dir=tmp_path)
    services._sessions.clear()
    assert services.request("bigquery", "GET", "resource").status_code == 200
