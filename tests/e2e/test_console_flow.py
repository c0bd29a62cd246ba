"""A guard at the east gate of 华润中央公园: a resident shows their code to the camera and
the card appears; by keyboard alone the guard finds a flat, picks the resident, types a
fever and overrules with a reason; the server goes away, the guard records by hand, the
page is reloaded, and the queue is sent when the server is back (marked late)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.access import service as access
from fengchao.access.models import AccessEvent
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, GridScope
from fengchao.registry.models import Vehicle
from fengchao.testing import served_app, throwaway_database
from tests.conftest import PASSWORD, Grid, Persona, build_grid, make_persona
from tests.e2e.fake_camera import blank, camera_args, with_qr, write_y4m
from tests.e2e.test_import_flow import ARGS

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("FENGCHAO_SCREENSHOTS", "/tmp/fengchao-console-shots"))


@dataclass
class GateWorld:
    engine: Engine
    grid: Grid
    guard: Persona
    gate_id: int
    garage_id: int
    base: str
    folder: Path


@pytest.fixture(scope="module")
def gate_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateWorld]:
    folder = tmp_path_factory.mktemp("console")
    # Offline events older than 2 s when they arrive are late (the default is a minute).
    previous = os.environ.get("FENGCHAO_ACCESS__LATE_AFTER_SECONDS")
    os.environ["FENGCHAO_ACCESS__LATE_AFTER_SECONDS"] = "2"
    try:
        with throwaway_database("sqlite", folder) as engine:
            with Session(engine, expire_on_commit=False) as session:
                grid = build_grid(session)
                guard = make_persona(
                    session, "东门卡口", Role.guard, GridScope(ScopeLevel.compound, grid.park.id)
                )
                gate = access.create_gate(
                    session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="东门",
                    kind="pedestrian",
                )  # fmt: skip
                garage = access.create_gate(
                    session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="车库口",
                    kind="vehicle",
                )  # fmt: skip
                for plate in ("苏CFY773", "闽D12345"):
                    session.add(
                        Vehicle(
                            community_id=grid.community.id, household_id=grid.h5_101.id,
                            plate=plate, owner_person_id=grid.resident5.id,
                        )
                    )  # fmt: skip
                session.commit()
                gate_id, garage_id = gate.id, garage.id
            with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
                yield GateWorld(engine, grid, guard, gate_id, garage_id, base, folder)
    finally:
        if previous is None:
            os.environ.pop("FENGCHAO_ACCESS__LATE_AFTER_SECONDS", None)
        else:
            os.environ["FENGCHAO_ACCESS__LATE_AFTER_SECONDS"] = previous


def login(page: Page, world: GateWorld, gate_id: int | None = None) -> None:
    page.goto(f"{world.base}/login")
    page.fill("input[name=username]", world.guard.user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(f"{world.base}/gates/{gate_id or world.gate_id}/console")


def csp_watch(page: Page) -> list[str]:
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    return blocked


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((390, 844), (1280, 860)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")  # a sticky header would be drawn mid-page
        page.screenshot(path=str(SHOTS / f"console-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})


def events_of(world: GateWorld) -> list[AccessEvent]:
    with Session(world.engine) as session:
        return list(
            session.scalars(
                select(AccessEvent)
                .where(AccessEvent.gate_id == world.gate_id)
                .order_by(AccessEvent.id)
            )
        )


def test_a_code_shown_to_the_camera_gives_the_card_then_keyboard_only(
    chromium_path: str, gate_world: GateWorld, tmp_path: Path
) -> None:
    world = gate_world
    with Session(world.engine) as session:
        text = codes.personal_code(session, world.grid.resident6.id)
    # Nobody, then the resident holds up the phone with the code, then walks on.
    video = write_y4m(
        tmp_path / "code.y4m", [blank()] * 8 + [with_qr(text)] * 25 + [blank()] * 30, fps=10
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS + camera_args(video))
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        blocked = csp_watch(page)
        login(page, world)
        expect(page.locator("#card-decision")).to_have_attribute(
            "data-decision", "allow", timeout=20000
        )
        expect(page.locator("#card-name")).to_have_text("陈美玲")
        expect(page.locator("#card-place")).to_have_text("6-1-101")
        shot(page, "allow")
        assert [e.method for e in events_of(world)][-1] == "code"

        # The camera is unplugged mid-shift: the console says so, the hand tools still work.
        page.evaluate(
            "document.getElementById('camera').srcObject.getVideoTracks().forEach(t => t.stop())"
        )
        expect(page.locator("#camera-note")).to_contain_text("摄像头断开了")
        expect(page.locator("#camera-retry")).to_be_visible()

        # Keyboard only: Esc clears, a room and Enter lists the flat, Enter picks.
        page.keyboard.press("Escape")
        expect(page.locator("#card-decision")).to_have_attribute("data-decision", "")
        page.focus("#entry")
        page.keyboard.type("5-1-101")
        page.keyboard.press("Enter")
        expect(page.locator("#picks .pick")).to_have_count(1)
        page.keyboard.press("Enter")
        expect(page.locator("#card-name")).to_have_text("林国平")
        expect(page.locator("#card-decision")).to_have_attribute("data-decision", "allow")

        # The thermometer types "37,5": the card turns red and asks for a re-measurement.
        before = len(events_of(world))
        page.keyboard.press("Tab")
        page.keyboard.type("37,5")
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")  # a double Enter: one event
        expect(page.locator("#card-decision")).to_have_attribute("data-decision", "deny")
        expect(page.locator("#card-reason")).to_contain_text("体温异常")
        expect(page.locator("#card-extra")).to_contain_text("复测")
        shot(page, "deny")
        time.sleep(0.5)
        after = events_of(world)
        assert len(after) == before + 1 and after[-1].temperature == 37.5

        # Overrule with F8, the reason by its digit, Enter to confirm.
        page.keyboard.press("F8")
        expect(page.locator("#overrule")).to_be_visible()
        page.keyboard.press("2")
        page.keyboard.press("Enter")
        expect(page.locator("#card-decision")).to_have_attribute("data-decision", "allow")
        expect(page.locator("#card-reason")).to_contain_text("紧急就医")
        last = events_of(world)[-1]
        assert last.reasons == ["overruled", "override_medical"] and last.detail is not None
        expect(page.locator("#events")).to_contain_text("林国平")

        # A keyboard-wedge scanner types the code fast into whatever field has the focus.
        page.keyboard.press("Escape")
        page.focus("#temp")
        page.keyboard.type(text + "\n", delay=5)
        expect(page.locator("#card-name")).to_have_text("陈美玲")
        expect(page.locator("#temp")).to_have_value("")
        # A thermometer typing into the main field: the temperature of the person on the card.
        page.focus("#entry")
        page.keyboard.type("36,8\n")
        expect(page.locator("#events")).to_contain_text("36.8", timeout=6000)
        last = events_of(world)[-1]
        assert (last.person_id, last.temperature) == (world.grid.resident6.id, 36.8)

        # A worker switches the level: the banner changes on its own.
        with Session(world.engine) as session:
            access.set_level(
                session=session, actor=SYSTEM_ACTOR, community_id=world.grid.community.id,
                level="closed",
            )  # fmt: skip
            session.commit()
        expect(page.locator("#level-banner")).to_contain_text("封闭管理", timeout=10000)
        with Session(world.engine) as session:
            access.set_level(
                session=session, actor=SYSTEM_ACTOR, community_id=world.grid.community.id,
                level="normal",
            )  # fmt: skip
            session.commit()
        assert blocked == []
        browser.close()


def test_the_offline_queue_survives_a_reload_and_is_sent_when_the_server_returns(
    chromium_path: str, gate_world: GateWorld
) -> None:
    world = gate_world
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        blocked = csp_watch(page)
        login(page, world)
        expect(page.locator("#offline-bar")).to_be_hidden()
        before = len(events_of(world))

        def gone(route: Any) -> None:
            route.abort("connectionrefused")

        # The server is gone: the console says so at once.
        page.route("**/api/**", gone)
        page.route("**/console/events", gone)
        page.route("**/console/banner", gone)
        expect(page.locator("#offline-bar")).to_be_visible(timeout=6000)
        page.fill("#off-room", "5-1-101")
        page.fill("#off-name", "林国平")
        page.click("#offline-form button[type=submit]")
        expect(page.locator("#queue li")).to_have_count(1)
        expect(page.locator("#queue-count")).to_have_text("1")
        # Half-typed text is kept too.
        page.fill("#entry", "6-1-1")
        shot(page, "offline")
        time.sleep(2.5)  # older than the late threshold when it finally arrives

        page.reload()
        expect(page.locator("#queue li")).to_have_count(1)
        expect(page.locator("#entry")).to_have_value("6-1-1")
        assert len(events_of(world)) == before

        # The server is back: the queue is sent, marked late.
        page.unroute("**/api/**")
        page.unroute("**/console/events")
        page.unroute("**/console/banner")
        expect(page.locator("#queue li")).to_have_count(0, timeout=10000)
        expect(page.locator("#offline-bar")).to_be_hidden()
        # …and the card no longer says the console is offline.
        expect(page.locator("#card")).not_to_have_class(re.compile("state-offline"))
        expect(page.locator("#card-decision")).not_to_have_text("离线登记")
        sent = events_of(world)
        assert len(sent) == before + 1
        assert sent[-1].late and sent[-1].person_id == world.grid.resident5.id
        assert sent[-1].device_time is not None
        expect(page.locator("#events")).to_contain_text("补传", timeout=6000)

        # The network itself is gone and the guard reloads: the service worker opens the
        # last copy of the console, which says it is offline and still takes a passage.
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=10000)
        page.reload()  # a load through the worker keeps the copy
        page.context.set_offline(True)
        page.reload()
        expect(page.locator("#offline-bar")).to_be_visible(timeout=6000)
        page.fill("#off-room", "6-1-101")
        page.fill("#off-name", "陈美玲")
        page.click("#offline-form button[type=submit]")
        expect(page.locator("#queue li")).to_have_count(1)
        page.context.set_offline(False)
        expect(page.locator("#queue li")).to_have_count(0, timeout=10000)
        assert events_of(world)[-1].person_id == world.grid.resident6.id
        assert blocked == []
        browser.close()


def _shifted(frame: Any, dx: int) -> Any:
    import numpy as np

    return np.roll(frame, dx, axis=1)


def test_faces_at_the_camera_enrolled_unknown_and_masked(
    chromium_path: str, gate_world: GateWorld, tmp_path: Path
) -> None:
    """The enrolled resident's card appears with the right name, an unknown face is
    refused, a masked resident gets 请稍停 until a second, different frame agrees."""
    from fengchao.access import faces
    from tests.conftest import shared_data
    from tests.e2e.fake_camera import photo, square

    world = gate_world
    plain, masked = shared_data("faces"), shared_data("faces_masked")
    with Session(world.engine) as session:
        faces.enrol(
            session, SYSTEM_ACTOR, world.grid.resident5.id,
            [(plain / f"angelina_jolie_0{n}.jpg").read_bytes() for n in (1, 2)],
            consent=faces.ConsentGiven("林国平"),
        )  # fmt: skip
        faces.enrol(
            session, SYSTEM_ACTOR, world.grid.resident6.id,
            [square(masked / "brian_kemp_01.jpg"), square(masked / "brian_kemp_05.jpg")],
            consent=faces.ConsentGiven("陈美玲"),
        )  # fmt: skip
        session.commit()
    kemp = photo(masked / "brian_kemp_02.jpg", size=360)
    frames = (
        [blank()] * 10 + [photo(plain / "angelina_jolie_03.jpg")] * 25 + [blank()] * 15
        + [photo(plain / "alex_lacamoire_01.jpg")] * 25 + [blank()] * 15
        + [kemp] * 25 + [_shifted(kemp, 24)] * 25 + [blank()] * 30
    )  # fmt: skip
    video = write_y4m(tmp_path / "faces.y4m", frames, fps=10)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS + camera_args(video))
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        blocked = csp_watch(page)
        login(page, world)
        decision = page.locator("#card-decision")
        expect(page.locator("#card-name")).to_have_text("林国平", timeout=30000)
        expect(decision).to_have_attribute("data-decision", "allow")
        expect(page.locator("#card-photo")).to_be_visible()
        expect(decision).to_have_attribute("data-decision", "deny", timeout=30000)
        expect(page.locator("#card-reason")).to_have_text("未识别，请到物业登记")
        expect(decision).to_have_attribute("data-decision", "pending", timeout=30000)
        shot(page, "pending")
        expect(page.locator("#card-name")).to_have_text("陈美玲", timeout=30000)
        expect(decision).to_have_attribute("data-decision", "allow", timeout=30000)
        shown = page.evaluate("window.fcConsole.shown")
        kemp_seen = [s["decision"] for s in shown if s["name"] == "陈美玲"]
        assert kemp_seen[:2] == ["pending", "allow"], shown
        assert blocked == []
        browser.close()
    seen = [
        e for e in events_of(world) if e.person_id == world.grid.resident6.id and e.method == "face"
    ]
    assert [e.decision for e in seen][:2] == ["pending", "allow"]
    assert seen[0].masked and "masked_needs_second_frame" in seen[0].reasons


def test_the_vehicle_console_reads_an_uploaded_plate_photo_and_a_typed_plate(
    chromium_path: str, gate_world: GateWorld
) -> None:
    """No camera (permission refused): the clear note, the upload still works; a plate typed
    with the province picker, a confusable character shown as 请核对."""
    from tests.conftest import shared_data

    world = gate_world
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        blocked = csp_watch(page)
        login(page, world, world.garage_id)
        expect(page.locator("#camera-note")).to_contain_text("摄像头不可用")
        page.set_input_files("#upload", str(shared_data("plates") / "scenes" / "scene_001.jpg"))
        decision = page.locator("#card-decision")
        expect(decision).to_have_attribute("data-decision", "allow", timeout=20000)
        expect(page.locator("#card-plate .ch")).to_have_count(7)
        expect(page.locator("#card-place")).to_have_text("5-1-101")
        expect(page.locator("#card-name")).to_have_text("林国平")
        shot(page, "vehicle-allow")

        page.keyboard.press("Escape")
        page.click('#provinces button[data-province="闽"]')
        page.keyboard.type("D1Z345")
        expect(page.locator("#entry")).to_have_value("闽D1Z345")
        page.keyboard.press("Enter")
        expect(page.locator("#card")).to_have_class(re.compile("state-check"))
        expect(page.locator("#card-extra")).to_contain_text("请核对")

        page.keyboard.press("Escape")
        page.fill("#entry", "闽A99999")
        page.keyboard.press("Enter")
        expect(decision).to_have_attribute("data-decision", "deny")
        expect(page.locator("#card-name")).to_have_text("闽A99999")
        expect(page.locator("#card-reason")).to_have_text("车辆未登记")
        shot(page, "vehicle-unknown")
        assert blocked == []
        browser.close()
