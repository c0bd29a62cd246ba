"""A clerk at the property office enrols a resident from the desk camera: finds the flat by
room, sees why a frame is not good enough, captures two different good frames (the same
still picture twice does not count), records the consent, and the resident is then
recognised; with the camera refused, the page says what to do and upload still works."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.testing import served_app, throwaway_database
from tests.conftest import PASSWORD, Grid, Persona, build_grid, make_persona, shared_data
from tests.e2e.fake_camera import blank, camera_args, photo, write_y4m
from tests.e2e.test_import_flow import ARGS

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("FENGCHAO_SCREENSHOTS", "/tmp/fengchao-desk-shots"))


@dataclass
class DeskWorld:
    engine: Engine
    grid: Grid
    clerk: Persona
    base: str


@pytest.fixture(scope="module")
def desk_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskWorld]:
    folder = tmp_path_factory.mktemp("desk")
    with throwaway_database("sqlite", folder) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            clerk = make_persona(
                session,
                "物业前台",
                Role.property_staff,
                GridScope(ScopeLevel.compound, grid.park.id),
            )
            session.commit()
        with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
            yield DeskWorld(engine, grid, clerk, base)


def login(page: Page, world: DeskWorld) -> None:
    page.goto(f"{world.base}/login")
    page.fill("input[name=username]", world.clerk.user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((390, 844), (1280, 860)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")  # a sticky header would be drawn mid-page
        page.screenshot(path=str(SHOTS / f"desk-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})


def test_the_clerk_enrols_from_the_camera_and_the_resident_is_recognised(
    chromium_path: str, desk_world: DeskWorld, tmp_path: Path
) -> None:
    from fengchao.access import faces

    world = desk_world
    plain = shared_data("faces")
    # Nobody, then the resident (a still picture for 3 s), then the resident moved a little.
    frames = (
        [blank()] * 20
        + [photo(plain / "angelina_jolie_01.jpg")] * 30
        + [photo(plain / "angelina_jolie_02.jpg")] * 30
    )
    video = write_y4m(tmp_path / "desk.y4m", frames, fps=10)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS + camera_args(video))
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        blocked: list[str] = []
        page.on(
            "console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None
        )
        login(page, world)
        page.goto(f"{world.base}/faces?q=5-1-101")
        page.click("li.face-row a:has-text('林国平')")
        verdict = page.locator("#desk-verdict")
        expect(verdict).to_have_attribute("data-code", "no_face", timeout=30000)
        expect(verdict).to_contain_text("没有看到人脸")
        shot(page, "no-face")
        expect(verdict).to_have_attribute("data-code", "ok", timeout=30000)
        shot(page, "ok")
        page.click("#desk-capture")
        expect(page.locator("#desk-shots li")).to_have_count(1)
        # The same still picture again is not a second frame of a live person.
        page.click("#desk-capture", force=True)
        expect(page.locator("#desk-shots li")).to_have_count(1)
        expect(page.locator("#desk-error")).to_contain_text("画面没有变化")
        deadline = time.monotonic() + 40
        while page.locator("#desk-shots li").count() < 2 and time.monotonic() < deadline:
            expect(verdict).to_have_attribute("data-code", "ok", timeout=30000)
            page.click("#desk-capture", force=True)
            page.wait_for_timeout(300)
        expect(page.locator("#desk-shots li")).to_have_count(2)
        expect(page.locator("#desk-enrol")).to_be_enabled()
        shot(page, "captured")
        page.click("#desk-enrol")
        expect(page.locator(".notice[role=status]")).to_contain_text("已录入", timeout=30000)
        expect(page.locator("img.face-thumb")).to_be_visible()
        assert blocked == []
        browser.close()
    with Session(world.engine) as session:
        seen = faces.identify_for_gate(
            session,
            community_id=world.grid.community.id,
            frame=(plain / "angelina_jolie_03.jpg").read_bytes(),
        )
    assert seen.person_id == world.grid.resident5.id

    # No camera (permission refused): what to do, in words; upload still enrols.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        login(page, world)
        page.goto(f"{world.base}/faces/people/{world.grid.resident6.id}")
        expect(page.locator("#desk-note")).to_contain_text("摄像头不可用", timeout=10000)
        expect(page.locator("#desk-retry")).to_be_visible()
        shot(page, "no-camera")
        page.set_input_files("input[name=photos]", str(plain / "alex_lacamoire_01.jpg"))
        page.click("form.face-enrol button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_contain_text("已录入")
        browser.close()
