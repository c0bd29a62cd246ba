"""The community at a glance: figures against hand-counted fixtures, the scope of each
account, the refusals, and the street office's side-by-side view."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.access.models import AccessEvent
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, GridScope, NotFound
from fengchao.dashboard import figures, service
from fengchao.dashboard import traffic as kept_traffic
from fengchao.duty.models import Assignment, AssignmentStatus, Post, Shift, Volunteer
from fengchao.registry import figures as figures_cache
from fengchao.registry.models import Community, Compound, Street
from fengchao.sampling import registration as reg
from tests.conftest import Grid, Persona, make_persona
from tests.sampling.conftest import Site

DAY = dt.date(2026, 11, 20)
ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Rolled-back tests reuse ids on SQLite: counts kept for one test must not reach another.
    kept_traffic.clear()
    figures_cache._CACHE.clear()
    yield
    kept_traffic.clear()


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), ZONE).astimezone(dt.UTC)


def _event(session: Session, grid: Grid, gate_id: int, at: dt.datetime, **values: object) -> None:
    row = {
        "community_id": grid.community.id, "compound_id": grid.park.id, "gate_id": gate_id,
        "direction": "in", "method": "face", "decision": "allow", "reasons": ["resident"],
        "alert_level": "normal", "occurred_at": at, "server_time": at,
        **values,
    }  # fmt: skip
    session.add(AccessEvent(**row))


@pytest.fixture
def gate_events(session: Session, grid: Grid) -> None:
    """Hand-counted: on DAY, building 5: three faces in at 08:xx, a refused code at 09:10;
    building 6: a plate out at 09:30, a fever refused at 10:00; a visitor's pass in at 10:15.
    The day before, building 5: two faces in at 08:xx. One event the day after."""
    gate = access.create_gate(
        session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="东门", kind="both"
    ).id
    b5 = {"person_id": grid.resident5.id, "household_id": grid.h5_101.id,
          "building_id": grid.b5.id}  # fmt: skip
    b6 = {"person_id": grid.resident6.id, "household_id": grid.h6_101.id,
          "building_id": grid.b6.id}  # fmt: skip
    for minute in (1, 20, 40):
        _event(session, grid, gate, _at(DAY, 8, minute), **b5)
    _event(session, grid, gate, _at(DAY, 9, 10), method="code", decision="deny",
           reasons=["code_revoked"], **b5)  # fmt: skip
    _event(session, grid, gate, _at(DAY, 9, 30), method="plate", direction="out", **b6)
    _event(session, grid, gate, _at(DAY, 10), decision="deny", reasons=["fever"],
           temperature=38.1, **b6)  # fmt: skip
    _event(session, grid, gate, _at(DAY, 10, 15), method="code", reasons=["visitor_pass"],
           detail={"pass_id": 7})  # fmt: skip
    yesterday = DAY - dt.timedelta(days=1)
    _event(session, grid, gate, _at(yesterday, 8, 5), **b5)
    _event(session, grid, gate, _at(yesterday, 23, 59), **b5)
    _event(session, grid, gate, _at(DAY + dt.timedelta(days=1), 0, 0), **b5)
    session.flush()


def test_worker_sees_the_community_traffic_counted_by_hand(
    session: Session, grid: Grid, worker: Persona, gate_events: None
) -> None:
    board = service.dashboard(session=session, actor=worker.actor, day=DAY)
    t = board.today.traffic
    assert t is not None
    assert (t.total_in, t.total_out, t.refused, t.fever) == (4, 1, 2, 1)
    assert t.in_by_hour[8] == 3 and t.in_by_hour[10] == 1 and t.out_by_hour[9] == 1
    assert t.by_kind == {"face": 3, "plate": 1, "code": 0, "visitor": 1, "other": 0}
    before = board.previous_traffic
    assert before is not None
    assert (before.total_in, before.in_by_hour[8], before.in_by_hour[23]) == (2, 1, 1)
    registration = board.today.registration
    assert registration is not None
    # 24 households (3 buildings × 2 units × 4 rooms), two registered people.
    assert (registration.households, registration.registered, registration.people) == (24, 2, 2)


def test_counts_kept_between_requests_take_in_new_events(
    session: Session, grid: Grid, worker: Persona, gate_events: None
) -> None:
    service.dashboard(session=session, actor=worker.actor, day=DAY)
    gate = session.query(AccessEvent.gate_id).first()
    assert gate is not None
    _event(session, grid, gate[0], _at(DAY, 11), building_id=grid.b5.id)
    session.flush()
    again = service.dashboard(session=session, actor=worker.actor, day=DAY)
    assert again.today.traffic is not None and again.today.traffic.in_by_hour[11] == 1


def test_building_lead_sees_their_building_only(
    session: Session, grid: Grid, lead5: Persona, gate_events: None
) -> None:
    board = service.dashboard(session=session, actor=lead5.actor, day=DAY)
    t = board.today.traffic
    assert t is not None
    assert (t.total_in, t.total_out, t.refused, t.fever) == (3, 0, 1, 0)
    assert board.today.registration is not None and board.today.registration.people == 1
    # Sections of other roles are left out.
    assert board.today.roster is None and board.today.tracing is None
    with pytest.raises(NotFound):
        service.dashboard(session=session, actor=lead5.actor, level=ScopeLevel.building,
                          node_id=grid.b6.id, day=DAY)  # fmt: skip


def test_worker_narrows_to_a_building(
    session: Session, grid: Grid, worker: Persona, gate_events: None
) -> None:
    board = service.dashboard(session=session, actor=worker.actor, level=ScopeLevel.building,
                              node_id=grid.b6.id, day=DAY)  # fmt: skip
    t = board.today.traffic
    assert t is not None and (t.total_out, t.refused, t.fever) == (1, 1, 1)
    assert board.today.node.label.endswith("6号楼")


def test_other_street_is_not_found(session: Session, grid: Grid, worker: Persona) -> None:
    street = Street(name="别的街道")
    session.add(street)
    session.flush()
    elsewhere = Community(street_id=street.id, name="别的社区")
    session.add(elsewhere)
    session.flush()
    with pytest.raises(NotFound):
        service.dashboard(session=session, actor=worker.actor, level=ScopeLevel.community,
                          node_id=elsewhere.id)  # fmt: skip


def test_street_office_sees_each_community(session: Session, grid: Grid, gate_events: None) -> None:
    second = Community(street_id=grid.street.id, name="宏韵社区")
    session.add(second)
    session.flush()
    session.add(Compound(community_id=second.id, name="宏韵小区"))
    office = make_persona(session, "street", Role.community_worker,
                          GridScope(ScopeLevel.street, grid.street.id))  # fmt: skip
    boards = service.street_view(session=session, actor=office.actor, day=DAY)
    assert [b.today.node.label for b in boards] == ["宏侨社区", "宏韵社区"]
    first, other = (b.today.traffic for b in boards)
    assert first is not None and other is not None
    assert (first.total_in, other.total_in) == (4, 0)


def test_help_requests_by_age() -> None:
    now = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)

    class Row:
        def __init__(self, status: str, hours: float, late: bool, escalations: int) -> None:
            self.status, self.escalations = status, escalations
            self.created_at = now - dt.timedelta(hours=hours)
            self.deadline = now - dt.timedelta(minutes=1) if late else now + dt.timedelta(hours=1)

    rows = [Row("open", 0.5, False, 0), Row("open", 2, True, 1), Row("accepted", 30, False, 2)]
    found = figures.help_figure(rows, now, made=3, closed=1)
    assert found.by_age == {"lt1h": 1, "1to4h": 1, "4to24h": 0, "ge24h": 1}
    assert (found.open, found.accepted, found.overdue, found.escalated) == (2, 1, 1, 2)


def test_pages_scope_and_refusals(
    session: Session, grid: Grid, worker: Persona, lead5: Persona, guard: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    page = login_as(worker).get("/dashboard")
    assert page.status_code == 200 and "data-chart" in page.text
    assert (
        login_as(worker).get(f"/dashboard/sections?node=building:{grid.b5.id}").status_code == 200
    )
    lead = login_as(lead5)
    assert lead.get("/dashboard").status_code == 200
    assert lead.get(f"/dashboard?node=building:{grid.b6.id}").status_code == 404
    assert lead.get("/dashboard?node=nonsense").status_code == 404
    assert login_as(guard).get("/dashboard").status_code == 403
    found = login_as(lead5).get("/api/dashboard?day=2026-11-20").json()
    assert found["today"]["node"]["label"].endswith("5号楼") and found["today"]["roster"] is None
    assert login_as(guard).get("/").headers["location"] == "/gates"
    assert login_as(worker).get("/").headers["location"] == "/dashboard"


def test_every_figure_links_to_a_list_the_reader_may_open(
    session: Session, grid: Grid, worker: Persona, lead5: Persona, gate_events: None, login_as
) -> None:  # type: ignore[no-untyped-def]
    for persona in (worker, lead5):
        browser = login_as(persona)
        page = browser.get("/dashboard/sections")
        links = set(re.findall(r'href="(/[^"]*)"', page.text))
        assert len(links) >= 5
        for link in sorted(links):
            answer = browser.get(link.replace("&amp;", "&"), follow_redirects=True)
            assert answer.status_code == 200, (persona.actor.role, link, answer.status_code)


def test_sampling_progress_and_coverage_by_building_counted_by_hand(
    session: Session, grid: Grid, worker: Persona, lead5: Persona, site: Site, sampler: Persona
) -> None:
    """Building 5 has resident5 and the site's twelve people, building 6 resident6; three of
    building 5 are swabbed."""
    for person_id in (grid.resident5.id, site.people[0].id, site.people[1].id):
        reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                          barcode="D0001", key=uuid.uuid4().hex, person_id=person_id)  # fmt: skip
    day = site.round.day
    whole = service.dashboard(session=session, actor=worker.actor, day=day).today.sampling
    assert whole is not None
    assert (whole.expected, whole.sampled, whole.round_id) == (14, 3, site.round.id)
    cells = {c.name: (c.expected, c.sampled) for c in whole.buildings}
    assert cells == {"5": (13, 3), "6": (1, 0)}
    assert [c.name for c in whole.behind] == ["6"]
    assert sum(n for _hour, n in whole.per_hour) == 3
    mine = service.dashboard(session=session, actor=lead5.actor, day=day).today.sampling
    assert mine is not None and (mine.expected, mine.sampled) == (13, 3)
    assert [c.name for c in mine.buildings] == ["5"]


def test_roster_of_a_day_names_its_holes(session: Session, grid: Grid, worker: Persona) -> None:
    """On DAY: the east gate's night shift needs two and has one (a cancelled one does not
    count), the sampling site's shift needs one and has one; a shift the day after."""
    cid = grid.community.id
    gate, desk = Post(community_id=cid, name="东门"), Post(community_id=cid, name="采样点")
    people = [Volunteer(community_id=cid, name=f"志愿者{i}") for i in range(3)]
    session.add_all([gate, desk, *people])
    session.flush()

    def shift(post: Post, start: dt.datetime, hours: int, minimum: int) -> Shift:
        made = Shift(community_id=cid, post_id=post.id, name="班", starts_at=start,
                     ends_at=start + dt.timedelta(hours=hours), min_people=minimum)  # fmt: skip
        session.add(made)
        session.flush()
        return made

    night = shift(gate, _at(DAY, 0), 8, 2)
    morning = shift(desk, _at(DAY, 7, 30), 6, 1)
    shift(gate, _at(DAY + dt.timedelta(days=1), 0), 8, 2)
    session.add_all([
        Assignment(shift_id=night.id, volunteer_id=people[0].id),
        Assignment(shift_id=night.id, volunteer_id=people[1].id,
                   status=AssignmentStatus.cancelled),
        Assignment(shift_id=morning.id, volunteer_id=people[2].id),
    ])  # fmt: skip
    session.flush()
    roster = service.dashboard(session=session, actor=worker.actor, day=DAY).today.roster
    assert roster is not None
    assert (roster.shifts, roster.placed, roster.required) == (2, 2, 3)
    assert [(h.post, h.missing, h.start.hour) for h in roster.holes] == [("东门", 1, 0)]


def test_street_office_page_lists_its_communities(
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    session.add(Community(street_id=grid.street.id, name="宏韵社区"))
    office = make_persona(session, "street", Role.community_worker,
                          GridScope(ScopeLevel.street, grid.street.id))  # fmt: skip
    browser = login_as(office)
    assert browser.get("/").headers["location"] == "/dashboard/street"
    page = browser.get("/dashboard/street")
    assert page.status_code == 200
    assert "宏侨社区" in page.text and "宏韵社区" in page.text and "data-chart" in page.text
    assert browser.get(f"/dashboard?node=community:{grid.community.id}").status_code == 200
    assert login_as(worker).get("/dashboard/street").status_code == 404
