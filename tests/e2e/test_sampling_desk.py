"""The room picker on the registration page: "5-1-101" in a community where two compounds
have a building 5 lists each person with compound and building, a typed room is never
taken for a line number, and only a number picks. F4 after F2 says the tube is sealed; a
re-swab shows its reason; "hello world" is no tube barcode."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.sampling.models import Swab
from fengchao.testing import served_app, throwaway_database
from tests.conftest import build_grid
from tests.e2e.test_import_flow import ARGS
from tests.e2e.test_sampling_flow import open_register, sampling_round, scan
from tests.sampling.test_room_picker import _neighbour_in_other_compound

pytestmark = pytest.mark.e2e


def test_a_room_in_two_compounds_is_picked_by_number_only(
    chromium_path: str, tmp_path: Path
) -> None:
    with throwaway_database("sqlite", tmp_path) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            zhang = _neighbour_in_other_compound(session, grid)
            sampler, found = sampling_round(session, grid)
            session.commit()
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, tmp_path) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
            page = browser.new_page(viewport={"width": 390, "height": 844})
            open_register(page, base, sampler, found.id)
            # Typed words are no barcode: refused as typed, not run together as HELLOWORLD.
            scan(page, "hello world")
            expect(page.locator("#swab-message")).to_have_text(
                "试管条码中间不能有空格，请重新扫描试管"
            )
            expect(page.locator("#swab-barcode")).to_have_text("—")
            for text in ("T0000009", "5-1-101"):
                scan(page, text)
            lines = page.locator("#swab-choices li")
            expect(lines).to_have_text(["华润中央公园 5-1-101  林国平", "宏侨新村 5-1-101  张三"])
            expect(page.locator("#swab-message")).to_contain_text("几个小区都有这个房号")
            # Another room typed over the list is a new room, not line 5 (or 1).
            scan(page, "宏侨新村 5-1-101")
            expect(lines).to_have_text(["宏侨新村 5-1-101  张三"])
            scan(page, "1")
            expect(page.locator("#swab-names li")).to_have_text(["宏侨新村 5-1-101  张三"])
            expect(page.locator("#swab-queue")).to_have_text("0")
            # F4 after F2: the tube holds people but is sealed; nothing is undone.
            page.keyboard.press("F2")
            page.keyboard.press("F4")
            expect(page.locator("#swab-message")).to_have_text("试管已封管，不能撤销")
            expect(page.locator("#swab-count")).to_have_text("1")
            # Swabbed again into the next tube, with a reason: the list shows that reason.
            scan(page, "T0000010")
            expect(page.locator("#swab-barcode")).to_have_text("T0000010")
            scan(page, "宏侨新村 5-1-101")
            expect(lines).to_have_text(["宏侨新村 5-1-101  张三  ✓"])
            scan(page, "1")
            expect(page.locator("#swab-reason")).to_be_focused()
            page.keyboard.press("Control+A")
            scan(page, "试管破损")
            expect(page.locator("#swab-names li")).to_have_text(
                ["宏侨新村 5-1-101  张三  (复采：试管破损)"]
            )
            browser.close()
        with Session(engine) as session:
            assert list(session.scalars(select(Swab.person_id))) == [zhang.id, zhang.id]
