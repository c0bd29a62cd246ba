"""On a phone: a community worker opens a case from the resident's page, sees the contact
graph drawn, and confirms the spouse; back on the case, the spouse's card is in view with
its new badge (not hidden under the sticky header)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy.orm import Session

from fengchao.registry.models import Person, Relation
from fengchao.testing import served_app
from tests.conftest import PASSWORD
from tests.e2e.test_import_flow import ARGS
from tests.notify.conftest import make_world

pytestmark = pytest.mark.e2e


def test_worker_opens_a_case_and_confirms_the_spouse(chromium_path: str, tmp_path: Path) -> None:
    with (
        contextmanager(make_world)(tmp_path) as world,
        served_app(world.engine.url.render_as_string(hide_password=False), tmp_path) as base,
        sync_playwright() as p,
    ):
        with Session(world.engine, expire_on_commit=False) as session:
            spouse = Person(community_id=world.grid.community.id,
                            household_id=world.grid.h5_101.id, name="林太太",
                            relation=Relation.family)  # fmt: skip
            session.add(spouse)
            session.commit()
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        blocked: list[str] = []
        page = browser.new_page(viewport={"width": 390, "height": 480})  # a phone, keyboard up
        page.on(
            "console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None
        )
        page.goto(f"{base}/login")
        page.fill("input[name=username]", world.personas["worker"].user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")

        page.goto(f"{base}/registry/people/{world.grid.resident5.id}")
        page.get_by_role("link", name="登记阳性并开始流调").click()
        page.get_by_role("button", name="登记并开始流调").click()
        page.wait_for_load_state("networkidle")
        expect(page.locator("h1")).to_contain_text(world.grid.resident5.name)
        expect(page.locator("#trace-graph canvas")).to_have_count(1)

        # Nobody confirmed yet: the one-click protection is off, and looks it.
        protect = page.locator("form.protect button.primary")
        expect(protect).to_be_disabled()
        assert float(protect.evaluate("b => getComputedStyle(b).opacity")) < 0.6

        card = page.locator(f"#c-person-{spouse.id}")
        card.get_by_role("button", name="确认").click()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        badge = card.locator("header .badge.ok")
        expect(badge).to_have_text("已确认")
        header_bottom = page.evaluate(
            "document.querySelector('header.topbar')?.getBoundingClientRect().bottom ?? 0"
        )
        box = card.locator("header").bounding_box()
        assert box is not None and box["y"] >= header_bottom, (box, header_bottom)
        expect(protect).to_be_enabled()
        assert not blocked, blocked
        browser.close()
