"""``{"file": ...}`` secrets are read only from the configuration's directory (or
INTEGRATIONS_SECRETS_DIR), only from regular files, and only up to a size bound."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from integrations.configfile import MAX_SECRET_FILE_BYTES, import_config, read_secret_file
from integrations.exceptions import SecretUnavailable
from integrations.models import Integration
from tests.keys import HMAC_SECRET

pytestmark = pytest.mark.django_db

INSIDE_ONLY = "must name a regular file inside the configuration file's directory"


def config(secret: Any) -> dict[str, Any]:
    return {
        "integrations": [
            {
                "slug": "billing",
                "name": "Billing",
                "base_url": "https://billing.example.com/",
                "auth": {"type": "jwt_bearer", "algorithm": "HS256", "key": secret},
            }
        ]
    }


def refusal(secret: Any, base_dir: Path) -> str:
    with pytest.raises(SecretUnavailable) as caught:
        import_config(config(secret), base_dir=base_dir)
    assert not Integration.objects.exists()
    return str(caught.value)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file next to, not inside, the configuration's directory."""
    secret = tmp_path / "outside.key"
    secret.write_text(HMAC_SECRET)
    return secret


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("name", ["../outside.key", "{absolute}", "sub/../../outside.key"])
def test_paths_leaving_the_directory_are_refused(name: str, outside: Path, conf_dir: Path) -> None:
    """security.md #38: absolute paths and ``..`` cannot reach a file outside."""
    message = refusal({"file": name.format(absolute=outside)}, conf_dir)
    assert INSIDE_ONLY in message
    assert HMAC_SECRET not in message


def test_a_symlink_out_of_the_directory_is_refused(outside: Path, conf_dir: Path) -> None:
    """security.md #38: a symlink inside that points outside is followed, then refused."""
    (conf_dir / "link.key").symlink_to(outside)
    assert INSIDE_ONLY in refusal({"file": "link.key"}, conf_dir)


def test_outside_paths_do_not_tell_whether_they_exist(outside: Path, conf_dir: Path) -> None:
    """security.md #38: an existing and a missing file outside get the same message."""
    present = refusal({"file": str(outside)}, conf_dir)
    missing = refusal({"file": str(outside.with_name("nothing-here.key"))}, conf_dir)
    assert present.replace(str(outside), "") == missing.replace(
        str(outside.with_name("nothing-here.key")), ""
    )
    assert str(outside) not in present


def test_a_fifo_is_refused_without_hanging(conf_dir: Path) -> None:
    """security.md #38: a FIFO would block the import forever; it is refused at once."""
    os.mkfifo(conf_dir / "pipe.key")
    done = threading.Event()
    result: list[str] = []

    def run() -> None:  # the reading alone, on a thread: it touches no database
        try:
            read_secret_file("pipe.key", conf_dir, entry="billing", field="auth.key")
        except SecretUnavailable as exc:
            result.append(str(exc))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "the import hung on a FIFO"
    assert INSIDE_ONLY in result[0]


def test_a_device_behind_a_symlink_is_refused(conf_dir: Path) -> None:
    """security.md #38: /dev/zero never ends; a link to it is refused, not read."""
    (conf_dir / "zero.key").symlink_to("/dev/zero")
    assert INSIDE_ONLY in refusal({"file": "zero.key"}, conf_dir)


def test_an_oversized_file_is_refused(conf_dir: Path) -> None:
    """security.md #38: a file larger than the bound is refused, naming the bound."""
    (conf_dir / "huge.key").write_bytes(b"x" * (MAX_SECRET_FILE_BYTES + 1))
    assert f"larger than {MAX_SECRET_FILE_BYTES} bytes" in refusal({"file": "huge.key"}, conf_dir)


def test_a_missing_file_inside_is_named(conf_dir: Path) -> None:
    """A missing file inside the directory is the operator's typo: say so."""
    assert "secret file missing.key does not exist" in refusal({"file": "missing.key"}, conf_dir)


def test_files_in_subdirectories_and_the_secrets_dir_are_read(
    tmp_path: Path, conf_dir: Path
) -> None:
    """Inside the configuration's directory, and inside INTEGRATIONS_SECRETS_DIR, files
    are read as before."""
    (conf_dir / "keys").mkdir()
    (conf_dir / "keys" / "billing.key").write_text(HMAC_SECRET + "\n")
    import_config(config({"file": "keys/billing.key"}), base_dir=conf_dir)
    assert Integration.objects.get().get_secrets() == {"key": HMAC_SECRET}

    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "other.key").write_text(HMAC_SECRET[::-1])
    with override_settings(INTEGRATIONS_SECRETS_DIR=str(vault)):
        import_config(config({"file": str(vault / "other.key")}), base_dir=conf_dir)
    assert Integration.objects.get().get_secrets() == {"key": HMAC_SECRET[::-1]}
