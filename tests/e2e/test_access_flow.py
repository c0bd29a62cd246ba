"""On a phone: a community worker switches 华润中央公园 to closed management; the next
passages at the east gate follow it (one person of a household out, the second refused);
the building lead finds the refusal in the access record."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.registry.models import Person, Relation
from fengchao.testing import served_app
from tests.conftest import PASSWORD
from tests.e2e.test_import_flow import ARGS
from tests.notify.conftest import make_world

pytestmark = pytest.mark.e2e


def test_worker_closes_the_compound_and_the_gate_follows(
    chromium_path: str, tmp_path: Path
) -> None:
    with (
        contextmanager(make_world)(tmp_path) as world,
        served_app(world.engine.url.render_as_string(hide_password=False), tmp_path) as base,
        sync_playwright() as p,
    ):
        with Session(world.engine, expire_on_commit=False) as session:
            gate = access.create_gate(session=session, actor=SYSTEM_ACTOR,
                                      compound_id=world.grid.park.id, name="东门",
                                      kind="pedestrian")  # fmt: skip
            _device, key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                                gate_id=gate.id, name="东门人脸终端")  # fmt: skip
            spouse = Person(community_id=world.grid.community.id,
                            household_id=world.grid.h5_101.id, name="林太太",
                            relation=Relation.family)  # fmt: skip
            session.add(spouse)
            session.commit()
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
        staff.goto(f"{base}/access/alert")
        staff.select_option("select[name=level]", "closed")
        staff.on("dialog", lambda dialog: dialog.accept())
        staff.click("button.primary")
        expect(staff.locator(".notice.ok")).to_contain_text("封闭管理")
        expect(staff.locator(".level-now")).to_contain_text("封闭管理")

        def passage(person_id: int, n: int) -> dict[str, object]:
            answer = httpx.post(
                f"{base}/api/access/device/decisions",
                json={"direction": "out", "method": "person", "value": str(person_id)},
                headers={"X-Device-Key": key, "Idempotency-Key": f"e2e-{n}"},
            )
            assert answer.status_code == 200, answer.text
            return answer.json()  # type: ignore[no-any-return]

        assert passage(world.grid.resident5.id, 1)["decision"] == "allow"
        second = passage(spouse.id, 2)
        assert second["decision"] == "deny" and "quota_used" in second["reasons"]

        lead = login("lead5")
        lead.goto(f"{base}/access/records?decision=deny")
        expect(lead.locator("li.access-event")).to_have_count(1)
        expect(lead.locator("li.access-event")).to_contain_text("本户本期出入额度已用完")
        lead.screenshot(path=str(tmp_path / "lead-records.png"))
        assert not blocked, blocked
        browser.close()
