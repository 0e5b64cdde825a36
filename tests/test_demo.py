"""`make demo` (reference.md: Set-up): the demo runs end to end, twice on the same database, and
prints an OK test call and its logged row without any token (security.md #26)."""

from __future__ import annotations

from tests.child import clean_env, run


def test_demo_runs_and_shows_an_ok_call_and_its_logged_row(tmp_path):
    """reference.md set-up: `python -m project.demo` (what `make demo` runs) exits 0 after a
    JWT-verified test call, prints the result and the CallLog row, shows no JWT; run
    again on the same database it updates the demo integration and passes again."""
    empty = tmp_path / "empty.env"
    empty.touch()
    env = clean_env(
        DJANGO_DEBUG="true", ENV_FILE=str(empty), DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}"
    )
    for run_number in (1, 2):
        done = run(["-m", "project.demo"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "OK  GET http://127.0.0.1:" in out and "/api/health -> 200" in out
        assert f"The test call's row in the call log (CallLog #{2 * run_number - 1})" in out
        assert "status_code  200" in out and "token_kid    demo-2026" in out
        assert '"aud": "demo-api"' in out and '"iss": "demo-shop"' in out
        assert "eyJ" not in out + done.stderr and "Traceback" not in done.stderr
