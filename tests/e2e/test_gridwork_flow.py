"""Grid work in a phone's browser: a building lead walks the sweep checklist and records three
visits; a resident asks for help without an account and watches the request being accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.test_import_flow import ARGS
from tests.e2e.test_registry_roles import PHONE, _login

pytestmark = pytest.mark.e2e


def _fits_the_phone(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width}px wide"


def test_lead_records_three_visits_and_a_resident_follows_a_request(
    served_demo: str, chromium_path: str, tmp_path: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        lead = _login(browser, served_demo, "lead5")
        # The registry's to-do page loads the lead's grid work into itself.
        expect(lead.locator("#gridwork")).to_contain_text("扫楼")
        lead.locator("#gridwork a", has_text="打开本楼清单").first.click()
        expect(lead.locator("h1")).to_contain_text("5")
        _fits_the_phone(lead)
        before = lead.locator(".gw-checklist li").count()
        for outcome in ("visited", "nobody_home", "visited"):
            lead.locator(".gw-checklist li.gw-pending a").first.click()
            lead.locator(f"input[name=outcome][value={outcome}]").check()
            if outcome == "visited":
                lead.fill("input[name=people_home]", "2")
            _fits_the_phone(lead)
            lead.click("button.primary")
            expect(lead.locator(".gw-checklist").first).to_be_visible()
        # Two visited leave the list of doors still to knock at; nobody home stays on it.
        expect(lead.locator(".gw-checklist li")).to_have_count(before - 2)
        expect(lead.locator(".gw-checklist li.gw-nobody_home")).to_have_count(1)
        lead.screenshot(path=str(tmp_path / "checklist.png"), full_page=True)

        resident = browser.new_context(viewport=PHONE).new_page()
        resident.goto(f"{served_demo}/help")
        resident.select_option("#ask select[name=compound]", label="华润中央公园")
        resident.fill("#ask input[name=address]", "5-1-101")
        resident.locator("#ask label.gw-choice", has_text="其他").click()
        resident.fill("#ask textarea[name=details]", "家里没有体温计了")
        resident.fill("#ask input[name=phone]", "19900001234")
        _fits_the_phone(resident)
        resident.locator("#ask button.primary").click()
        expect(resident.locator(".gw-state")).to_have_text("待接单")
        _fits_the_phone(resident)

        lead.goto(f"{served_demo}/gridwork/todo")
        lead.locator(".gw-item a", has_text="其他").first.click()
        expect(lead.locator("div.card").first).to_contain_text("家里没有体温计了")
        lead.locator("button", has_text="接单").click()
        expect(lead.locator("h1")).to_contain_text("处理中")

        resident.reload()
        expect(resident.locator(".gw-state")).to_have_text("处理中")
        resident.screenshot(path=str(tmp_path / "status.png"), full_page=True)
        browser.close()
