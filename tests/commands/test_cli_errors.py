"""User mistakes through the real ``manage.py`` entry point: one clear line on stderr,
the documented exit code, never a traceback."""

from __future__ import annotations

import pytest

from tests.commands.helpers import manage
from tests.keys import CANARY, HMAC_SECRET

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite file with one integration, ``billing``."""
    path = tmp_path_factory.mktemp("cli") / "db.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{path}", "H5_KEY": HMAC_SECRET}
    assert manage("migrate", "-v", "0", env=env).code == 0
    config = path.parent / "config.json"
    config.write_text(
        '{"integrations": [{"slug": "billing", "name": "Billing", '
        '"base_url": "http://127.0.0.1:9/api/", "auth": {"type": "jwt_bearer", '
        '"algorithm": "HS256", "key": {"env": "H5_KEY"}, "claims": {}}}]}'
    )
    ran = manage("integrations_import", str(config), env=env)
    assert ran.code == 0, ran.err
    return env


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["integrations_test", "nope"], 2, "unknown integration: nope"),
        (["integrations_test"], 2, "name one or more slugs, or give --all"),
        (["integrations_test", "--all", "--parallel", "x"], 2, "invalid int value"),
        (["integrations_call", "billing", "POST", "x", "--data", "{bad"], 2,
         "--data is not valid JSON"),
        (["integrations_call", "billing", "POST", "x", "--data", "@/nonexistent.json"], 2,
         "cannot read /nonexistent.json"),
        (["integrations_call", "nope", "GET", "x"], 2, "no integration with slug 'nope'"),
        (["integrations_call", "billing", "GET", "x"], 1, "call failed: ConnectionError"),
        (["integrations_token", "nope"], 2, "no integration with slug 'nope'"),
        (["integrations_keygen", "billing", "--public"], 1, "shared secret"),
    ],
)
def test_one_clear_line_and_the_documented_exit_code(env, args, code, message):
    """Issue 6: each mistake ends with its exit code and a message, no traceback, no secret."""
    ran = manage(*args, env=env)
    assert ran.code == code, ran.err
    assert message in ran.err
    assert "Traceback" not in ran.err + ran.out and CANARY not in ran.err + ran.out


def test_missing_env_var_for_a_secret_is_one_line(env, tmp_path):
    """Issue 6: a configuration naming an unset environment variable for a secret fails
    the import with one line naming it; nothing is written."""
    config = tmp_path / "config.json"
    config.write_text(
        '{"integrations": [{"slug": "other", "name": "Other", '
        '"base_url": "https://example.com/", "auth": {"type": "jwt_bearer", '
        '"algorithm": "HS256", "key": {"env": "H5_UNSET_VARIABLE"}}}]}'
    )
    ran = manage("integrations_import", str(config), env=env)
    assert ran.code != 0 and "Traceback" not in ran.err
    assert "H5_UNSET_VARIABLE is not set" in ran.err.strip().splitlines()[-1]
    assert manage("integrations_test", "other", env=env).code == 2


def test_failed_test_call_exits_1_with_json_on_stdout(env):
    """reference.md: exit 1 when a test call fails, and --json still writes its document."""
    ran = manage("integrations_test", "--all", "--json", env=env)
    assert ran.code == 1 and ran.out.lstrip().startswith("[") and '"ok": false' in ran.out
    assert "Traceback" not in ran.err


def test_enqueue_with_the_task_engine_down_is_one_line(env):
    """--enqueue when Redis refuses: exit 1 and one line saying so, no traceback."""
    rq_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "tests.tasks.rq_settings",
        "TEST_RQ_URL": "redis://127.0.0.1:1/6",
        "TEST_RQ_QUEUE": "h5-unreachable",
    }
    ran = manage("integrations_test", "--all", "--enqueue", env=rq_env)
    assert ran.code == 1 and "Traceback" not in ran.err
    assert ran.err.strip().splitlines()[-1].startswith("CommandError: could not enqueue: ")
