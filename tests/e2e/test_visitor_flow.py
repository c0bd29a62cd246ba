"""A visitor at the east gate of 华润中央公园, on a phone (390 px): opens the poster's
address, fills the one form, gets the pass; the guard's console takes the pass (typed
like a scanner would) with a temperature and admits the visitor once, then refuses the
second entry. Screenshots of the form, the pass and the staff pages at 390 and 1280 px."""

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

from fengchao.access import service as access
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, GridScope
from fengchao.testing import served_app, throwaway_database
from fengchao.visitors import service
from tests.conftest import PASSWORD, Grid, Persona, build_grid, make_persona
from tests.e2e.test_import_flow import ARGS

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("FENGCHAO_SCREENSHOTS", "/tmp/fengchao-visitor-shots"))


@dataclass
class VisitorWorld:
    engine: Engine
    grid: Grid
    guard: Persona
    worker: Persona
    gate_id: int
    token: str
    base: str


@pytest.fixture(scope="module")
def visitor_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisitorWorld]:
    folder = tmp_path_factory.mktemp("visitors")
    with throwaway_database("sqlite", folder) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            guard = make_persona(
                session, "东门卡口", Role.guard, GridScope(ScopeLevel.compound, grid.park.id)
            )
            worker = make_persona(
                session, "社区干部", Role.community_worker,
                GridScope(ScopeLevel.community, grid.community.id),
            )  # fmt: skip
            gate = access.create_gate(
                session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="东门",
                kind="pedestrian",
            )  # fmt: skip
            _gate, poster = service.poster_for_gate(
                session=session, actor=SYSTEM_ACTOR, gate_id=gate.id
            )
            session.commit()
            gate_id, token = gate.id, poster.token
        with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
            yield VisitorWorld(engine, grid, guard, worker, gate_id, token, base)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((390, 844), (1280, 860)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"visitor-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})


def login(page: Page, world: VisitorWorld, persona: Persona) -> None:
    page.goto(f"{world.base}/login")
    page.fill("input[name=username]", persona.user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_visitor_fills_the_form_gets_the_pass_and_the_gate_admits_once(
    chromium_path: str, visitor_world: VisitorWorld
) -> None:
    world = visitor_world
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        blocked: list[str] = []
        phone.on(
            "console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None
        )
        phone.goto(f"{world.base}/v/{world.token}")
        expect(phone.locator("h1")).to_have_text("访客登记")
        started = time.monotonic()
        phone.fill("input[name=name]", "王小明")
        phone.fill("input[name=phone]", "139 1234 5678")
        phone.fill("input[name=id_number]", "110105194912310021")  # a wrong check digit
        phone.fill("input[name=host_room]", "5-1-101")
        phone.fill("input[name=purpose]", "探望父母")
        phone.fill("input[name=stay_hours]", "3")
        time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
        phone.click("button[type=submit]")
        expect(phone.locator("#err-id_number")).to_contain_text("校验位")
        shot(phone, "form-error")
        phone.fill("input[name=id_number]", "11010519491231002X")
        phone.click("button[type=submit]")
        expect(phone.locator(".pass-state")).to_contain_text("有效")
        expect(phone.locator(".pass-qr svg")).to_be_visible()
        token = phone.locator(".pass-qr").get_attribute("data-pass-token")
        assert token and token.startswith("FV1-")
        shot(phone, "pass")
        assert not blocked, blocked

        guard = browser.new_page(viewport={"width": 1280, "height": 860})
        login(guard, world, world.guard)
        guard.goto(f"{world.base}/gates/{world.gate_id}/console")
        # The guard types the temperature (Enter keeps it for the next passage), then scans.
        guard.fill("#temp", "36.5")
        guard.press("#temp", "Enter")
        guard.fill("#entry", token)
        guard.press("#entry", "Enter")
        expect(guard.locator("#card-decision")).to_have_attribute(
            "data-decision", "allow", timeout=15000
        )
        expect(guard.locator("#card-name")).to_have_text("王小明")
        guard.keyboard.press("Escape")
        guard.fill("#temp", "36.6")
        guard.press("#temp", "Enter")
        guard.fill("#entry", token)
        guard.press("#entry", "Enter")
        expect(guard.locator("#card-decision")).to_have_attribute("data-decision", "deny")
        expect(guard.locator("#card-reason")).to_contain_text("次数已用完")
        guard.screenshot(path=str(SHOTS / "visitor-console-used-1280.png"), full_page=True)

        staff = browser.new_page(viewport={"width": 390, "height": 844})
        login(staff, world, world.worker)
        staff.goto(f"{world.base}/visitors?show=inside")
        expect(staff.locator("table.visitors")).to_contain_text("王小明")
        shot(staff, "inside")
        staff.goto(f"{world.base}/visitors/posters")
        shot(staff, "posters")
        staff.goto(f"{world.base}/visitors/issue")
        shot(staff, "issue")
        browser.close()


def test_visitor_with_a_fever_is_refused_told_and_let_in_on_the_re_measurement(
    chromium_path: str, visitor_world: VisitorWorld
) -> None:
    """The guard scans the pass first (the console asks for the temperature and keeps the
    pass), types a fever (refused, the community told), re-measures a few minutes later
    (the visitor enters, one entry taken): no second scan either time."""
    from sqlalchemy import select

    from fengchao.notify.models import Notification
    from fengchao.visitors.models import VisitorPass

    world = visitor_world
    with Session(world.engine, expire_on_commit=False) as session:
        row, _link = service.issue(
            session=session, actor=SYSTEM_ACTOR, gate_id=world.gate_id, name="发烧的访客",
            phone="13912345679", host_room="5-1-101", hours=2, entries=1,
        )  # fmt: skip
        session.commit()
        token, pass_id = service.token_for(row), row.id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        guard = browser.new_page(viewport={"width": 1280, "height": 860})
        login(guard, world, world.guard)
        guard.goto(f"{world.base}/gates/{world.gate_id}/console")
        guard.fill("#entry", token)
        guard.press("#entry", "Enter")
        expect(guard.locator("#card-extra")).to_contain_text("须测体温", timeout=15000)
        guard.fill("#temp", "38.2")
        guard.press("#temp", "Enter")
        expect(guard.locator("#card-decision")).to_have_attribute(
            "data-decision", "deny", timeout=15000
        )
        expect(guard.locator("#card-name")).to_have_text("发烧的访客")
        expect(guard.locator("#card-reason")).to_contain_text("体温")
        guard.screenshot(path=str(SHOTS / "visitor-console-fever-1280.png"), full_page=True)
        guard.fill("#temp", "36.6")
        guard.press("#temp", "Enter")
        expect(guard.locator("#card-decision")).to_have_attribute(
            "data-decision", "allow", timeout=15000
        )
        browser.close()
    with Session(world.engine) as session:
        used = session.scalar(select(VisitorPass.entries_used).where(VisitorPass.id == pass_id))
        fevers = session.scalars(select(Notification.kind).where(Notification.kind == "fever"))
        assert used == 1
        assert list(fevers) == ["fever"]
