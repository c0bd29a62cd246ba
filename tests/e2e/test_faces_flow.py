"""The enrolment desk on a phone: a community worker finds a resident, enrols a photo with
the resident's consent, sees the thumbnail, then records the withdrawal of consent."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import shared_data
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_import_flow import ARGS

pytestmark = pytest.mark.e2e


def test_worker_enrols_a_face_with_consent_and_withdraws_it(
    served_demo: str, chromium_path: str, tmp_path: Path
) -> None:
    photo = shared_data("faces", "angelina_jolie_01.jpg")
    group = shared_data("faces_group", "group_02.jpg")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        page.goto(f"{served_demo}/login")
        page.fill("input[name=username]", "worker")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.goto(f"{served_demo}/faces")
        page.locator("li.face-row", has_text="未录入").first.locator("a").click()
        page.set_input_files("input[name=photos]", str(group))
        page.click("form.face-enrol button[type=submit]")
        expect(page.locator(".alert[role=alert]")).to_contain_text("不止一张人脸")
        page.set_input_files("input[name=photos]", str(photo))
        page.click("form.face-enrol button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_contain_text("已录入")
        expect(page.locator("img.face-thumb")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(tmp_path / "enrolled.png"), full_page=True)
        page.click("text=撤回同意并删除")
        expect(page.locator(".notice[role=status]")).to_contain_text("已撤回同意")
        expect(page.locator("img.face-thumb")).to_have_count(0)
        browser.close()
