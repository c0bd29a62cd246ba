"""At the sampling site, keyboard only (as a keyboard-wedge scanner types): a sampler
scans a tube and ten people, the tube closes at ten; the next tube is closed early with F2;
while the server is away, registrations are kept in the page, survive a reload, and are
sent when it is back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.registry.models import Household, Person, Relation
from fengchao.registry.service import register_person_id
from fengchao.sampling import service
from fengchao.sampling.models import SamplingRound, Swab, Tube, TubeStatus
from fengchao.testing import served_app, throwaway_database
from tests.conftest import PASSWORD, Grid, Persona, build_grid, make_persona
from tests.e2e.test_import_flow import ARGS
from tests.sampling.conftest import id_number

pytestmark = pytest.mark.e2e


def sampling_round(session: Session, grid: Grid) -> tuple[Persona, SamplingRound]:
    """A sampler of the community, and today's round at its site (set up by a worker)."""
    community = GridScope(ScopeLevel.community, grid.community.id)
    worker = make_persona(session, "社区干部", Role.community_worker, community)
    sampler = make_persona(session, "采样员", Role.sampler, community)
    site = service.create_site(
        session=session, actor=worker.actor, community_id=grid.community.id, name="采样点"
    )
    found = service.create_round(
        session=session, actor=worker.actor, site_id=site.id, name="全员", day=dt.date.today()
    )
    return sampler, found


def open_register(page: Page, base: str, sampler: Persona, round_id: int) -> None:
    """The sampler logs in and opens the round's registration page."""
    page.goto(f"{base}/login")
    page.fill("input[name=username]", sampler.user.username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/sampling")
    page.goto(f"{base}/sampling/rounds/{round_id}/register")


def scan(page: Page, text: str) -> None:
    """What a keyboard-wedge scanner (or a sampler at the keyboard) sends: text, Enter."""
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def test_a_sampler_fills_a_tube_of_ten_from_the_keyboard(
    chromium_path: str, tmp_path: Path
) -> None:
    with throwaway_database("sqlite", tmp_path) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            sampler, found = sampling_round(session, grid)
            homes = list(
                session.scalars(select(Household).where(Household.building_id == grid.b5.id))
            )
            texts = []
            for i in range(14):
                person = Person(
                    community_id=grid.community.id,
                    household_id=homes[i % len(homes)].id,
                    name=f"居民{i + 1}",
                    relation=Relation.family,
                )
                number = id_number(300 + i)
                register_person_id(person, number)
                session.add(person)
                session.flush()
                # Half show their resident code, half have their ID number typed.
                texts.append(codes.personal_code(session, person.id) if i % 2 else number)
            session.commit()
            round_id = found.id
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, tmp_path) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            blocked: list[str] = []
            page.on(
                "console",
                lambda m: blocked.append(m.text) if "Content Security" in m.text else None,
            )
            open_register(page, base, sampler, round_id)
            field = page.locator("#swab-input")
            expect(field).to_be_focused()
            scan(page, "T0000001")
            expect(page.locator("#swab-barcode")).to_have_text("T0000001")
            for n, text in enumerate(texts[:10], start=1):
                scan(page, text)
                expect(page.locator("#swab-count")).to_have_text(str(n))
            expect(page.locator("#swab-queue")).to_have_text("0")
            expect(page.locator("#swab-names li")).to_have_count(10)
            # Full at ten: closed; the next scan must be a tube.
            expect(page.locator("#swab-prompt")).to_have_text("扫描试管条码")

            # The next tube, closed early with F2 after two people.
            scan(page, "T0000002")
            expect(page.locator("#swab-barcode")).to_have_text("T0000002")
            for text in texts[10:12]:
                scan(page, text)
            expect(page.locator("#swab-count")).to_have_text("2")
            expect(page.locator("#swab-queue")).to_have_text("0")
            page.keyboard.press("F2")
            expect(page.locator("#swab-prompt")).to_have_text("扫描试管条码")
            expect(page.locator("#swab-queue")).to_have_text("0")

            # The server away: two registrations kept in the page, through a reload.
            scan(page, "T0000003")
            expect(page.locator("#swab-barcode")).to_have_text("T0000003")
            page.route("**/api/sampling/**", lambda route: route.abort())
            for text in texts[12:14]:
                scan(page, text)
            expect(page.locator("#swab-queue")).to_have_text("2")
            expect(page.locator("#swab-link")).to_have_class("link-state offline")
            page.unroute("**/api/sampling/**")
            page.route("**/api/sampling/**", lambda route: route.abort())
            page.reload()
            expect(page.locator("#swab-queue")).to_have_text("2")
            expect(page.locator("#swab-count")).to_have_text("2")
            page.unroute("**/api/sampling/**")
            expect(page.locator("#swab-queue")).to_have_text("0", timeout=15_000)
            assert not blocked, blocked
            browser.close()
        with Session(engine) as session:
            tubes = {
                t.barcode: t for t in session.scalars(select(Tube).where(Tube.round_id == round_id))
            }
            assert tubes["T0000001"].swabs == 10 and tubes["T0000001"].status == TubeStatus.closed
            assert tubes["T0000002"].swabs == 2 and tubes["T0000002"].status == TubeStatus.closed
            assert tubes["T0000003"].swabs == 2
            assert (
                session.scalar(select(func.count(Swab.id)).where(Swab.round_id == round_id)) == 14
            )
