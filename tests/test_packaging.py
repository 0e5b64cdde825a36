"""The wheel: only the integrations package, with its migrations, templates and static
files, and loose dependency ranges (docs/reference.md, Operations). .ci/wheel installs
it into a fresh virtualenv and a new ``django-admin startproject`` site."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Build from a copy of the sources, so no build/ or egg-info lands in the tree."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "integrations",
        source / "integrations",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=source, check=True, capture_output=True, timeout=120,
    )
    (path,) = out.glob("*.whl")
    return zipfile.ZipFile(path)


def package_files(wheel: zipfile.ZipFile) -> list[str]:
    return [n for n in wheel.namelist() if ".dist-info/" not in n]


def test_wheel_holds_only_the_integrations_package(wheel):
    names = package_files(wheel)
    assert names and all(name.startswith("integrations/") for name in names)
    for outside in ("tests/", "project/", "bench/", "manage.py", "docs/"):
        assert not any(name.startswith(outside) for name in wheel.namelist())
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_wheel_includes_every_migration_template_and_static_file(wheel):
    names = set(package_files(wheel))
    package = ROOT / "integrations"
    expected = {
        path.relative_to(ROOT).as_posix()
        for pattern in ("migrations/*.py", "templates/**/*.html", "static/**/*.*")
        for path in package.glob(pattern)
    }
    assert "integrations/migrations/0001_initial.py" in expected
    assert any(name.startswith("integrations/templates/admin/") for name in expected)
    assert any(name.startswith("integrations/static/") for name in expected)
    assert expected <= names, sorted(expected - names)
    assert {"integrations/apps.py", "integrations/urls.py", "integrations/health.py"} <= names
    assert any(n.startswith("integrations/management/commands/") for n in names)


def test_metadata_has_ranges_and_extras(wheel):
    (meta_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    meta = Parser().parsestr(wheel.read(meta_name).decode())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["Name"] == "django-integrations"
    assert meta["Version"] == project["version"]
    assert set(meta.get_all("Provides-Extra")) == {"rq", "pkcs11", "kms", "otel"}
    requires = meta.get_all("Requires-Dist")
    runtime = [r for r in requires if "extra ==" not in r]
    assert all("==" not in r.partition(";")[0] for r in requires), "ranges, not pins"
    for name in ("django", "cryptography", "pyjwt", "requests", "urllib3", "django-tasks"):
        assert any(r.lower().startswith(name) for r in runtime), name
    assert "requests>=2.32.4" in runtime and "urllib3>=2.6.3" in runtime


def test_version_is_in_the_changelog():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
