from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.tokens.custody import signer_cache
from tests.signers.devices import SOFTHSM_MODULE, moto_kms, softhsm_token


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A SoftHSM2 token with RSA 2048, P-256/384/521 and (if supported) Ed25519 keys."""
    if not os.path.exists(SOFTHSM_MODULE):
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE} missing; apt-get install "
                    "softhsm2)")
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (requirements-dev)")
    with softhsm_token(Path(tmp_path_factory.mktemp("softhsm"))) as token:
        yield token


@pytest.fixture(scope="session")
def kms() -> Iterator[dict[str, Any]]:
    """moto's KMS server on loopback with RSA_2048 and ECC_NIST_P256/384/521 keys."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (requirements-dev)")
    with moto_kms() as server:
        yield server


@pytest.fixture
def pin_env(monkeypatch: pytest.MonkeyPatch, softhsm: dict[str, Any]) -> None:
    monkeypatch.setenv("HSM_PIN", softhsm["pin"])


@pytest.fixture(autouse=True)
def _fresh_signers() -> Any:
    signer_cache.clear()
    yield
    signer_cache.clear()
