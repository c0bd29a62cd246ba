"""Each role's main task in a phone's browser, and no page wider than the phone."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import PASSWORD
from tests.e2e.test_import_flow import ARGS

pytestmark = pytest.mark.e2e
PHONE = {"width": 390, "height": 844}


def _login(browser: Browser, base: str, username: str, lang: str = "zh_CN") -> Page:
    context = browser.new_context(viewport=PHONE)
    context.add_cookies([{"name": "fc_lang", "value": lang, "url": base}])
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_lead_proposes_a_phone_change_from_the_todo_list_and_a_worker_confirms(
    served_demo: str, chromium_path: str, tmp_path: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        lead = _login(browser, served_demo, "lead5")
        expect(lead.locator("h1")).to_contain_text("本楼待办")
        first = lead.locator("#attention ~ ul.cards li").first
        call = first.locator("a.call")
        if call.count():
            assert call.get_attribute("href", timeout=2000).startswith("tel:")
        name = first.locator(".who b").inner_text()
        first.locator("text=更新情况").click()
        lead.fill("input[name=phone]", "139 1234 5678")
        lead.click("button.primary")
        expect(lead.locator(".notice[role=status]")).to_contain_text("已提交申请")
        lead.screenshot(path=str(tmp_path / "proposed.png"), full_page=True)

        worker = _login(browser, served_demo, "worker")
        worker.goto(f"{served_demo}/registry/proposals")
        card = worker.locator("article.proposal", has_text=name).first
        expect(card).to_contain_text("13912345678")
        card.locator("button.primary").click()
        worker.goto(f"{served_demo}/registry/proposals?state=applied")
        expect(worker.locator("article.proposal", has_text=name).first).to_contain_text("已生效")

        lead.reload()
        lead.goto(lead.url.split("?")[0])
        expect(lead.locator("dd a.tel")).to_have_text("13912345678")
        browser.close()


ROLE_PAGES = {
    "worker": ["/registry/overview", "/registry", "/registry/search?q=刘", "/registry/completeness",
               "/registry/proposals", "/registry/import", "/registry/buildings/5",
               "/registry/households/1", "/registry/people/1", "/registry/people/1/edit"],
    "lead5": ["/registry/todo", "/registry/search?health=normal", "/registry/proposals"],
    "guard": ["/registry/rooms?q=5-1-101"],
    "admin": ["/audit", "/registry/overview"],
}  # fmt: skip


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_no_page_is_wider_than_a_phone(served_demo: str, chromium_path: str, lang: str) -> None:
    too_wide = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        for username, paths in ROLE_PAGES.items():
            page = _login(browser, served_demo, username, lang)
            for path in ["/", *paths]:
                page.goto(f"{served_demo}{path}")
                page.wait_for_load_state("networkidle")
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > PHONE["width"]:
                    too_wide.append(f"{username} {path}: {width}px")
            page.context.close()
        browser.close()
    assert not too_wide, too_wide


def test_the_completeness_report_is_cards_on_a_phone_and_a_table_on_a_desk(
    served_demo: str, chromium_path: str
) -> None:
    # ul.cards sets its own display, which beat a bare .only-phone: the desk got both.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = _login(browser, served_demo, "worker")
        for viewport, phone in ((PHONE, True), ({"width": 1280, "height": 900}, False)):
            page.set_viewport_size(viewport)
            page.goto(f"{served_demo}/registry/completeness")
            cards = page.locator("ul.building-cards.only-phone")
            table = page.locator(".table-wrap.only-wide")
            shown, left_out = (cards, table) if phone else (table, cards)
            expect(shown).to_be_visible()
            expect(left_out).to_be_hidden()
        browser.close()
