from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.admin.conftest import as_user, users  # noqa: F401  (test_app_admin's fixtures)
from tests.oidc.server import OIDCProvider, Running


@pytest.fixture(scope="session")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    """node-oidc-provider over HTTPS on 127.0.0.1 (see tests/oidc/server.py)."""
    running = Running(tmp_path_factory.mktemp("oidc"))
    try:
        yield running.provider
    finally:
        running.stop()
        if running.stderr:
            print("".join(running.stderr)[-4000:])
