"""On a phone: a community worker sets up a building's DingTalk robot, tests it, and sends
the building leads a notice; the lead sees the bell count, reads it and marks it read."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from fengchao.notify.receiver import ChatReceiver
from fengchao.testing import served_app
from tests.conftest import PASSWORD
from tests.e2e.test_import_flow import ARGS
from tests.notify.conftest import make_world
from tests.notify.test_worker import wait_for, worker_process

pytestmark = pytest.mark.e2e


def test_worker_sets_up_a_robot_and_a_lead_reads_the_notice(
    chromium_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FENGCHAO_NOTIFY__ALLOW_PRIVATE_NETWORKS", "true")  # the receiver
    with (
        ChatReceiver().running() as receiver,
        contextmanager(make_world)(tmp_path) as world,
        served_app(world.engine.url.render_as_string(hide_password=False), tmp_path) as base,
        worker_process(world, tmp_path),
        sync_playwright() as p,
    ):
        robot = receiver.add("dingtalk", secret="SECe2e", keyword="防疫")
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        blocked: list[str] = []

        def login(persona: str):  # type: ignore[no-untyped-def]
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.on(
                "console",
                lambda m: blocked.append(m.text) if "Content Security" in m.text else None,
            )
            page.goto(f"{base}/login")
            page.fill("input[name=username]", world.personas[persona].user.username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            return page

        staff = login("worker")
        staff.goto(f"{base}/notify/channels")
        staff.select_option("select[name=node]", f"building:{world.grid.b5.id}")
        staff.fill("input[name=name]", "5号楼居民群")
        staff.select_option("select[name=kind]", "dingtalk")
        staff.fill("input[name=url]", robot)
        staff.fill("input[name=secret]", "SECe2e")
        staff.fill("input[name=keyword]", "防疫")
        staff.click("#add button.primary")
        expect(staff.locator("li.channel")).to_have_count(1)
        staff.click("li.channel >> text=发送测试消息")
        expect(staff.locator(".test-result.ok")).to_contain_text("机器人已应答")

        staff.goto(f"{base}/notify/compose")
        staff.select_option("select[name=node]", f"building:{world.grid.b5.id}")
        staff.check("input[name=roles][value=building_lead]")
        staff.check("input[name=groups]")
        staff.select_option("select[name=urgency]", "urgent")
        staff.fill("input[name=title]", "今晚 8 点 5 号楼消杀")
        staff.fill("textarea[name=body]", "请关好门窗。")
        staff.click("button.primary")
        expect(staff.locator("h1")).to_contain_text("今晚 8 点 5 号楼消杀")

        lead = login("lead5")
        expect(lead.locator("#bell .count")).to_have_text("1")
        lead.click("#bell")
        expect(lead.locator("li.msg.unread")).to_have_count(1)
        lead.click("li.msg >> text=标为已读")
        expect(lead.locator("li.msg.unread")).to_have_count(0)
        expect(lead.locator("#bell .count")).to_have_count(0)  # the bell counted again
        lead.screenshot(path=str(tmp_path / "lead-inbox.png"))

        wait_for(lambda: len(receiver.of(robot)) == 2, 30)  # the test and the notice
        assert [r.verdict for r in receiver.of(robot)] == ["ok", "ok"]
        assert "今晚 8 点 5 号楼消杀" in receiver.of(robot)[1].text
        assert blocked == []
        browser.close()
