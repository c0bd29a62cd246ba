"""The community at a glance on a phone: a worker lands on it, sees the sections stacked
with their charts drawn, narrows it to a building, and follows a figure to the list behind
it; a guard is refused it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.test_import_flow import ARGS
from tests.e2e.test_registry_roles import PHONE, _login

pytestmark = pytest.mark.e2e


def test_worker_reads_the_dashboard_on_a_phone(
    served_demo: str, chromium_path: str, tmp_path: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = _login(browser, served_demo, "worker")
        expect(page.locator("h1")).to_contain_text("社区一览")
        for section in ("#sec-alert", "#sec-registration", "#sec-traffic", "#sec-sampling",
                        "#sec-roster", "#sec-help"):  # fmt: skip
            expect(page.locator(section)).to_be_visible()
        # ECharts drew every chart (a canvas inside each data-chart box).
        charts = page.locator("[data-chart]")
        expect(charts.first.locator("canvas")).to_be_visible()
        assert page.locator("[data-chart] canvas").count() == charts.count()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{width}px"
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # Narrowed to one building: its name in the title, the page still drawn.
        page.select_option("select[name=node]", label="华润中央公园 5号楼")
        expect(page.locator("h1")).to_contain_text("5号楼")
        expect(page.locator("#sec-traffic [data-chart] canvas").first).to_be_visible()

        # The polled sections come back and are drawn again.
        with page.expect_response(lambda r: "/dashboard/sections" in r.url):
            page.evaluate("htmx.trigger('#dash', 'refresh')")  # no wait for the minute
        expect(page.locator("#sec-traffic [data-chart] canvas").first).to_be_visible()

        page.locator("#sec-registration a.stat").nth(1).click()
        expect(page).to_have_url(f"{served_demo}/registry/completeness")

        guard = _login(browser, served_demo, "guard")
        expect(guard).to_have_url(f"{served_demo}/gates")
        answer = guard.goto(f"{served_demo}/dashboard")
        assert answer is not None and answer.status == 403
        browser.close()
