"""A community worker logs in, imports the office's sheet and reads the completeness report."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import shared_data
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.e2e

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_worker_imports_sheet_and_sees_completeness(
    served_demo: str, chromium_path: str, tmp_path: Path
) -> None:
    sheet = shared_data("registry", "居民信息登记表-示例.xlsx")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.goto(f"{served_demo}/login")
        page.fill("input[name=username]", "worker")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("社区一览")

        page.goto(f"{served_demo}/registry/import")
        page.set_input_files("input[type=file]", str(sheet))
        page.click("button.primary")
        expect(page.locator("h1")).to_have_text("检查结果")
        # Each row with problems by its number and name, with all its problems.
        problems = page.locator("ul.problems .import-row")
        expect(problems).to_have_count(3)
        expect(problems.first).to_contain_text("第 5 行")
        expect(problems.first).to_contain_text("许文彬")
        expect(problems.first).to_contain_text("文本")
        confirm = page.locator("form[action$='/confirm'] button.primary")
        expect(confirm).to_have_text("确认导入：新增 33 人")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

        page.check("input[name=skip_invalid]")
        confirm.click()
        expect(page.locator("h1")).to_have_text("导入完成")
        expect(page.locator(".stat.ok b")).to_have_text("33")
        expect(page.locator(".notice")).to_contain_text("有问题的 3 行没有导入")
        with page.expect_download() as download:
            page.click("text=下载没有导入的行")
        assert download.value.suggested_filename.endswith(".xlsx")

        page.click("text=查看应录尽录报告")
        expect(page.locator("h1")).to_contain_text("应录尽录")
        expect(page.locator("table.report")).to_contain_text("华润中央公园")
        expect(page.locator("tr.total")).to_contain_text("合计")

        page.goto(f"{served_demo}/registry/search?q=许国平")
        expect(page.locator("ul.results")).to_contain_text("5-1-101")
        browser.close()
