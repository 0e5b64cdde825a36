"""The admin's charts in Chromium: the integration page's latency and failure charts and
the list's 24 h sparklines are inline SVG with readable names, drawn with or without
JavaScript, and the page fetches nothing from another host. Also takes the docs'
screenshots (docs/admin.md) of the charts, the sparklines, the accounts list and the
signing keys page."""

from __future__ import annotations

import os
import random
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Browser, Locator, Page, expect

from integrations import signingkeys
from integrations.models import Account, CallLog, Integration
from tests.browser.conftest import SCREENSHOTS
from tests.keys import ec_pem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# Set to refresh docs/img/ (on purpose, not by every run: its images are committed).
DOCS_SCREENSHOTS = "INTEGRATIONS_DOCS_SCREENSHOTS"
TITLES = [
    "Billing API: latency, last 24 hours",
    "Billing API: failures, last 24 hours",
    "Billing API: latency, last 30 days",
    "Billing API: failures, last 30 days",
]


def docs_shot(target: Page | Locator, name: str) -> Path:
    """A screenshot under artifacts/screenshots/, copied to docs/img/ when
    INTEGRATIONS_DOCS_SCREENSHOTS is set."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    if isinstance(target, Page):
        target.screenshot(path=str(path), full_page=True)
    else:
        target.screenshot(path=str(path))
    if os.environ.get(DOCS_SCREENSHOTS):
        shutil.copyfile(path, DOCS_IMG / name)
    return path


def log_calls(integration: Integration, calls: list[tuple[datetime, int, bool]]) -> None:
    """Call-log rows at the given times (created_at is auto_now_add: set afterwards)."""
    made = CallLog.objects.bulk_create(
        CallLog(integration=integration, source="api", method="GET",
                url=f"{integration.base_url}v1/items", status_code=200 if ok else 503,
                ok=ok, duration_ms=duration)
        for _, duration, ok in calls
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {CallLog._meta.db_table} SET created_at = %s WHERE id = %s",  # noqa: S608
            [(connection.ops.adapt_datetimefield_value(when), row.pk)
             for row, (when, _, _) in zip(made, calls, strict=True)],
        )


def a_month(seed: int, per_hour: int, base_ms: int, failing: float,
            hours: int = 30 * 24) -> list[tuple[datetime, int, bool]]:
    """Calls with a daily rhythm (slower in the afternoon), a slow tail, and failing
    spells 5 hours and 3 days ago."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    calls = []
    for hour in range(hours):
        at = now - timedelta(hours=hour)
        load = 1.6 if 12 <= at.hour < 18 else 1.0
        for _ in range(per_hour):
            spell = hour in (5, 6) or 70 <= hour < 74
            duration = int(base_ms * load * rng.lognormvariate(0, 0.35))
            if rng.random() < 0.03:
                duration *= 6
            ok = rng.random() > (0.5 if spell else failing)
            calls.append((at - timedelta(seconds=rng.randint(0, 3599)), duration, ok))
    return calls


@pytest.fixture
def billing(make_integration: Any) -> Integration:
    integration: Integration = make_integration(
        "billing", name="Billing API", base_url="https://billing.example.com/"
    )
    log_calls(integration, a_month(1, per_hour=6, base_ms=120, failing=0.01))
    return integration


def change_url(integration: Integration) -> str:
    return f"/admin/integrations/integration/{integration.pk}/change/"


def test_change_page_charts_are_titled_svg_from_this_server_only(admin_page, live_server,
                                                                  billing):
    """Four charts, each an image named by its <title> and described by its <desc>; the
    figures table opens; every request the page makes goes to the live server."""
    page, _ = admin_page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(change_url(billing))
    charts = page.locator(".integrations-charts")
    expect(charts.locator("svg")).to_have_count(4)
    for title in TITLES:
        chart = page.get_by_role("img", name=title, exact=True)
        expect(chart).to_be_visible()
        expect(chart).to_have_accessible_description(re.compile(r"\d[\d,]* calls"))
    summary = charts.locator("summary", has_text="Figures, last 24 hours")
    summary.click()
    table = charts.locator("details[open] table")
    expect(table.locator("tbody tr")).to_have_count(24)
    expect(table).to_contain_text("ms")
    summary.click()
    docs_shot(page.locator("fieldset", has=charts), "admin-charts.png")
    page.wait_for_load_state("networkidle")
    assert requests and all(url.startswith(live_server.url) for url in requests), [
        url for url in requests if not url.startswith(live_server.url)
    ]


def test_charts_without_javascript(browser: Browser, live_server, admin_user, billing):
    """The same charts and figures with JavaScript off: nothing about them needs it."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        page.goto(change_url(billing))
        for title in TITLES:
            expect(page.get_by_role("img", name=title, exact=True)).to_be_visible()
        page.locator("summary", has_text="Figures, last 30 days").click()
        expect(page.locator("details[open] table tbody tr")).to_have_count(30)
    finally:
        context.close()


def test_changelist_sparklines(admin_page, make_integration):
    """A 24 h sparkline per row, named by its totals; a row without calls says so."""
    page, _ = admin_page
    for n, (slug, name, per_hour, base_ms, failing) in enumerate([
        ("billing", "Billing API", 8, 120, 0.01),
        ("github", "GitHub App", 4, 260, 0.0),
        ("payroll", "Payroll", 2, 600, 0.25),
        ("search", "Search", 12, 40, 0.0),
    ]):
        integration = make_integration(slug, name=name, base_url=f"https://{slug}.example.com/")
        log_calls(integration, a_month(n, per_hour, base_ms, failing, hours=24))
    make_integration("shipping", name="Shipping", base_url="https://shipping.example.com/")
    page.set_viewport_size({"width": 1600, "height": 900})  # room for every column
    page.goto("/admin/integrations/integration/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)
    lines = page.locator("#result_list td.field-calls_24h svg[role=img]")
    expect(lines).to_have_count(5)
    def line(name: str) -> Locator:
        return rows.filter(has_text=name).locator("td.field-calls_24h").get_by_role("img")

    expect(line("Payroll")).to_have_accessible_name(
        re.compile(r"^Last 24 hours: \d+ calls, [1-9]\d* failed, p95 up to [\d.]+ (ms|s)$")
    )
    expect(line("Shipping")).to_have_accessible_name("Last 24 hours: no calls")
    docs_shot(page.locator("#changelist"), "admin-sparklines.png")


def test_accounts_list_screenshot(admin_page, make_integration):
    """The accounts list (docs/admin.md), with each account's integration."""
    page, _ = admin_page
    github = make_integration("github", name="GitHub App")
    for key, name in [("acme", "Acme Corp"), ("globex", "Globex"), ("initech", "Initech")]:
        Account.objects.create(integration=github, key=key, name=name)
    Account.objects.create(integration=github, key="umbrella", name="Umbrella", enabled=False)
    page.goto("/admin/integrations/account/")
    expect(page.locator("#result_list tbody tr")).to_have_count(4)
    docs_shot(page, "admin-accounts.png")


def test_signing_keys_page_screenshot(admin_page, make_integration):
    """The keys page mid-rollover (docs/admin.md): the active key and a next one."""
    page, _ = admin_page
    integration = make_integration(
        "partner", name="Partner API",
        auth_config={"algorithm": "ES256", "claims": {"iss": "shop"}},
        secrets={"key": ec_pem()},
    )
    signingkeys.add_next(integration, kind="ec-p256")
    page.set_viewport_size({"width": 1500, "height": 900})  # the key table's width
    page.goto(f"/admin/integrations/integration/{integration.pk}/keys/")
    expect(page.locator("table.signing-keys tr.key-next")).to_have_count(1)
    expect(page.get_by_role("button", name="Promote next key")).to_be_visible()
    docs_shot(page, "admin-keys.png")
