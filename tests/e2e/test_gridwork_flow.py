"""Grid work in a phone's browser: a building lead walks the sweep checklist and records three
visits; a resident asks for help without an account and watches the request being accepted."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.test_import_flow import ARGS
from tests.e2e.test_registry_roles import PHONE, _login

WIDE = {"width": 1280, "height": 900}

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


def _filled(page: Page) -> list[tuple[float, float]]:
    """Each sweep bar on the page as (the fraction its numbers say, the fraction painted in
    the bee colour along its middle row)."""
    bars = []
    for bar in page.locator("progress.gw-bar").all():
        done, total = int(bar.get_attribute("value") or 0), int(bar.get_attribute("max") or 0)
        # Screen readers (and everyone) get the numbers next to the bar, not only a picture.
        fraction = bar.locator("xpath=following-sibling::*[1]")
        expect(fraction).to_have_text(f"{done}/{total}")
        image = Image.open(io.BytesIO(bar.screenshot())).convert("RGB")
        row = [image.getpixel((x, image.height // 2)) for x in range(image.width)]
        bee = [r > 200 and 120 < g < 200 and b < 100 for r, g, b in row]  # type: ignore[misc]
        # Chromium's own bar, given only an accent colour, drew a dark track: full at a glance.
        assert all(max(px) > 180 for px in row), f"{page.url}: a dark track looks full"  # type: ignore[type-var]
        bars.append((done / total if total else 0.0, sum(bee) / image.width))
    return bars


def test_sweep_bars_show_the_real_fraction_at_both_widths(
    served_demo: str, chromium_path: str
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        for viewport in (PHONE, WIDE):
            worker = _login(browser, served_demo, "worker")
            worker.set_viewport_size(viewport)
            worker.goto(f"{served_demo}/gridwork")
            worker.locator(".gw-sweep a", has_text="各楼进度").first.click()
            worker.wait_for_url("**/gridwork/sweeps/*")
            # Building 1 of the demo is partly swept: a fill neither empty nor full.
            building1 = worker.locator(".gw-table a").first.get_attribute("href")
            lead = _login(browser, served_demo, "lead5")
            lead.set_viewport_size(viewport)
            lead.goto(f"{served_demo}/gridwork/todo")
            lead.locator(".gw-sweep a", has_text="打开本楼清单").first.click()
            expect(lead.locator("h1")).to_contain_text("5")
            for page, path in (
                (worker, None),
                (worker, "/gridwork"),
                (worker, building1),
                (lead, None),
                (lead, "/gridwork/todo"),
            ):
                if path:
                    page.goto(f"{served_demo}{path}")
                bars = _filled(page)
                assert bars, page.url
                for said, painted in bars:
                    assert abs(said - painted) < 0.02, (page.url, viewport, said, painted)
            worker.context.close()
            lead.context.close()
        browser.close()
