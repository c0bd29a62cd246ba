"""On a phone (390 px): a volunteer signs up for duty, ticks the periods they can serve and
marks a day away; the page fits the screen and shows what was saved."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.duty.models import Volunteer
from fengchao.testing import served_app, throwaway_database
from tests.conftest import PASSWORD, build_grid, make_persona
from tests.e2e.test_import_flow import ARGS

pytestmark = pytest.mark.e2e


def test_volunteer_signs_up_on_a_phone(chromium_path: str, tmp_path: Path) -> None:
    with throwaway_database("sqlite", tmp_path) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            persona = make_persona(
                session,
                "志愿者",
                Role.volunteer,
                GridScope(ScopeLevel.community, grid.community.id),
            )
            session.commit()
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, tmp_path) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
            page = browser.new_page(viewport={"width": 390, "height": 844})
            blocked: list[str] = []
            page.on(
                "console",
                lambda m: blocked.append(m.text) if "Content Security" in m.text else None,
            )
            page.goto(f"{base}/login")
            page.fill("input[name=username]", persona.user.username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{base}/duty/me")
            expect(page.locator("h1")).to_have_text("我的值班")
            page.fill("input[name=name]", "王芳")
            page.fill("input[name=phone]", "13900000000")
            page.select_option("select[name=identity]", "party_member")
            for key in ("0-night", "2-evening", "5-day"):
                page.check(f"input[name=weekly][value='{key}']")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "signup-390.png"), full_page=True)
            page.click(".duty-signup button[type=submit]")
            page.wait_for_load_state("networkidle")
            expect(page.locator("p.notice")).to_be_visible()
            expect(page.locator("input[name=weekly][value='2-evening']")).to_be_checked()
            expect(page.locator(".stat .party")).to_be_visible()  # 党员亮身份
            page.fill("input[name=day]", "2027-01-05")
            page.click("text=这天不能来")
            page.wait_for_load_state("networkidle")
            expect(page.locator("text=2027-01-05")).to_be_visible()
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
            page.screenshot(path=str(tmp_path / "signed-up-390.png"), full_page=True)
            browser.close()
            assert not blocked
        with Session(engine) as session:
            volunteer = session.scalars(select(Volunteer)).one()
            assert volunteer.weekly == ["0-night", "2-evening", "5-day"]


def test_the_check_in_camera_puts_the_code_in_the_field(chromium_path: str, tmp_path: Path) -> None:
    from fengchao.access import codes
    from fengchao.duty import service
    from tests.e2e.fake_camera import blank, camera_args, with_qr, write_y4m

    with throwaway_database("sqlite", tmp_path) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            worker = make_persona(
                session, "社区干部", Role.community_worker,
                GridScope(ScopeLevel.community, grid.community.id),
            )  # fmt: skip
            service.create_post(session=session, actor=worker.actor,
                                community_id=grid.community.id, name="东门")  # fmt: skip
            text = codes.personal_code(session, grid.resident5.id)
            session.commit()
        video = write_y4m(tmp_path / "code.y4m", [blank()] * 5 + [with_qr(text)] * 40, fps=10)
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, tmp_path) as base, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path, args=ARGS + camera_args(video)
            )
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(f"{base}/login")
            page.fill("input[name=username]", worker.user.username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{base}/duty/checkin")
            page.click("#scan-start")
            expect(page.locator("input[name=code]")).to_have_value(text, timeout=20000)
            expect(page.locator("#scan-status")).to_contain_text("已读到通行码")
            page.screenshot(path=str(tmp_path / "checkin-390.png"), full_page=True)
