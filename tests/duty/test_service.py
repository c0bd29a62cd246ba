"""Duty service on the database: register, availability, roster, holes, repair, check-in."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Forbidden, GridScope
from fengchao.duty import service
from fengchao.duty.models import Assignment, AssignmentStatus, Identity, Shift
from fengchao.duty.service import DutyRefused
from fengchao.notify.models import Notification
from tests.conftest import Grid, Persona, make_persona

MONDAY = dt.date(2027, 1, 4)
EVERY = [f"{d}-{p}" for d in range(7) for p in ("night", "day", "evening")]
NOW = dt.datetime(2027, 1, 1, 12, tzinfo=dt.UTC)


def cst(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """Shanghai local time as UTC."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC) - dt.timedelta(
        hours=8
    )


def _setup(session: Session, grid: Grid, worker: Persona, people: int = 6) -> dict[str, object]:
    gate = service.create_post(
        session=session, actor=worker.actor, community_id=grid.community.id, name="东门"
    )
    for name, a, b in (("值大夜", 0, 8), ("白班", 8, 16), ("晚班", 16, 0)):
        service.add_template(
            session=session,
            actor=worker.actor,
            post_id=gate.id,
            name=name,
            starts=dt.time(a),
            ends=dt.time(b),
            min_people=1,
            max_people=2,
        )
    site = service.create_post(
        session=session,
        actor=worker.actor,
        community_id=grid.community.id,
        name="采样点",
        kind="sampling",
    )
    service.add_template(
        session=session,
        actor=worker.actor,
        post_id=site.id,
        name="采样",
        starts=dt.time(7, 30),
        ends=dt.time(13, 30),
        min_people=1,
        max_people=1,
        skills=["medical"],
    )
    volunteers = [
        service.register_volunteer(
            session=session,
            actor=worker.actor,
            community_id=grid.community.id,
            name=f"志愿者{i}",
            identity=Identity.party_member if i % 2 else Identity.resident,
            max_hours_week=40,
            weekly=EVERY,
        )
        for i in range(people)
    ]
    return {"gate": gate, "site": site, "volunteers": volunteers}


def test_a_week_without_a_medical_certificate_names_the_hole(
    session: Session, grid: Grid, worker: Persona
) -> None:
    _setup(session, grid, worker)
    outcome = service.compute_roster(
        session=session,
        actor=worker.actor,
        community_id=grid.community.id,
        monday=MONDAY,
        time_limit=3,
        now=NOW,
    )
    assert outcome.shifts == 28
    sampling = [h for h in outcome.holes if "medical" in h.reason]
    assert len(sampling) == 7  # every day: nobody has the skill; nothing crashed
    view = service.roster(
        session=session, actor=worker.actor, community_id=grid.community.id, monday=MONDAY
    )
    assert len(view.holes) == 7
    assert all(h.shift.hole["code"] == "no_skill" for h in view.holes)
    assert service.hole_text(view.holes[0].shift.hole) == "没有人具备技能“medical”（或证书已过期）"
    gate_coverage = view.coverage[view.posts[0].id]
    assert gate_coverage == (21, 21)


def test_an_expired_certificate_does_not_count(
    session: Session, grid: Grid, worker: Persona
) -> None:
    setup = _setup(session, grid, worker)
    nurse, other = setup["volunteers"][:2]  # type: ignore[index]
    service.add_certificate(
        session=session,
        actor=worker.actor,
        volunteer_id=nurse.id,
        skill="medical",
        expires_on=dt.date(2026, 12, 31),
    )
    service.add_certificate(
        session=session, actor=worker.actor, volunteer_id=other.id, skill="medical"
    )
    assert "medical" not in service.valid_skills(nurse, dt.date(2027, 1, 4))
    service.compute_roster(
        session=session,
        actor=worker.actor,
        community_id=grid.community.id,
        monday=MONDAY,
        time_limit=3,
        now=NOW,
    )
    sampled = {
        a.volunteer_id for a in session.scalars(select(Assignment).join(Shift)) if a.shift.skills
    }
    assert other.id in sampled
    assert nurse.id not in sampled


def test_a_volunteer_with_no_availability_gets_no_shift(
    session: Session, grid: Grid, worker: Persona
) -> None:
    _setup(session, grid, worker)
    idle = service.register_volunteer(
        session=session, actor=worker.actor, community_id=grid.community.id, name="没空"
    )
    service.compute_roster(
        session=session,
        actor=worker.actor,
        community_id=grid.community.id,
        monday=MONDAY,
        time_limit=3,
        now=NOW,
    )
    assert not session.scalars(select(Assignment).where(Assignment.volunteer_id == idle.id)).all()


def test_contradictory_demand_is_refused_with_the_field(
    session: Session, grid: Grid, worker: Persona
) -> None:
    post = service.create_post(
        session=session, actor=worker.actor, community_id=grid.community.id, name="西门"
    )
    with pytest.raises(DutyRefused) as caught:
        service.add_template(
            session=session,
            actor=worker.actor,
            post_id=post.id,
            name="x",
            starts=dt.time(8),
            ends=dt.time(16),
            min_people=3,
            max_people=2,
        )
    assert caught.value.field == "max_people"


def _roster(session: Session, grid: Grid, worker: Persona) -> dict[str, object]:
    setup = _setup(session, grid, worker)
    service.add_certificate(
        session=session,
        actor=worker.actor,
        volunteer_id=setup["volunteers"][0].id,  # type: ignore[index]
        skill="medical",
    )
    service.compute_roster(
        session=session,
        actor=worker.actor,
        community_id=grid.community.id,
        monday=MONDAY,
        time_limit=3,
        now=NOW,
    )
    return setup


def test_cancellation_proposes_a_small_repair_and_confirmation_notifies(
    session: Session, grid: Grid, worker: Persona
) -> None:
    _roster(session, grid, worker)
    night = session.scalars(
        select(Shift).where(Shift.starts_at == cst(MONDAY + dt.timedelta(days=2), 0))
    ).one()
    gone = next(a for a in night.assignments if a.status == AssignmentStatus.assigned)
    # The replacement volunteer has an account: they are told.
    account = make_persona(
        session, "v", Role.volunteer, GridScope(ScopeLevel.community, grid.community.id)
    )
    for v in service.register(session=session, actor=worker.actor, community_id=grid.community.id):
        if v.volunteer.id != gone.volunteer_id and v.volunteer.user_id is None:
            v.volunteer.user_id = account.user.id
            break
    at_22 = cst(MONDAY + dt.timedelta(days=1), 22)
    proposal = service.cancel_assignment(
        session=session, actor=worker.actor, assignment_id=gone.id, now=at_22
    )
    assert gone.status == AssignmentStatus.cancelled
    added = proposal.diff["added"]
    assert 1 <= len(added) + len(proposal.diff["removed"]) <= 3
    assert any(shift_id == night.id for shift_id, _ in added)
    _proposal, lines = service.repair_view(
        session=session, actor=worker.actor, repair_id=proposal.id
    )
    assert all(line.start >= dt.datetime(2027, 1, 5, 22) for line in lines)
    service.confirm_repair(session=session, actor=worker.actor, repair_id=proposal.id, now=at_22)
    session.refresh(night)
    on = [a for a in night.assignments if a.status == AssignmentStatus.assigned]
    assert len(on) >= 1 and gone.volunteer_id not in {a.volunteer_id for a in on}
    with pytest.raises(DutyRefused):
        service.confirm_repair(
            session=session, actor=worker.actor, repair_id=proposal.id, now=at_22
        )


def test_a_cancellation_for_a_shift_already_past_is_refused(
    session: Session, grid: Grid, worker: Persona
) -> None:
    _roster(session, grid, worker)
    first = session.scalars(select(Shift).order_by(Shift.starts_at)).first()
    assert first is not None
    assignment = first.assignments[0]
    with pytest.raises(DutyRefused, match="已经开始"):
        service.cancel_assignment(
            session=session,
            actor=worker.actor,
            assignment_id=assignment.id,
            now=first.starts_at + dt.timedelta(hours=1),
        )


def test_check_in_with_the_resident_code_double_and_wrong_post(
    session: Session, grid: Grid, worker: Persona
) -> None:
    setup = _roster(session, grid, worker)
    gate, site = setup["gate"], setup["site"]
    shift = session.scalars(
        select(Shift).where(Shift.post_id == gate.id).order_by(Shift.starts_at)  # type: ignore[attr-defined]
    ).first()
    assert shift is not None
    volunteer = shift.assignments[0].volunteer
    volunteer.person_id = grid.resident5.id
    code = codes.personal_code(session, grid.resident5.id)
    at = shift.starts_at + dt.timedelta(minutes=5)
    with pytest.raises(DutyRefused) as wrong:
        service.check_in(session=session, actor=worker.actor, post_id=site.id, code=code, now=at)  # type: ignore[attr-defined]
    assert wrong.value.field == "post"
    row = service.check_in(session=session, actor=worker.actor, post_id=gate.id, code=code, now=at)  # type: ignore[attr-defined]
    assert row.method == "code"
    with pytest.raises(DutyRefused, match="已在"):
        service.check_in(session=session, actor=worker.actor, post_id=gate.id, code=code, now=at)  # type: ignore[attr-defined]
    service.check_out(
        session=session,
        actor=worker.actor,
        post_id=gate.id,
        code=code,  # type: ignore[attr-defined]
        now=at + dt.timedelta(hours=8),
    )
    served = service.hours_served(session=session, volunteer_ids=[volunteer.id])
    assert served[volunteer.id] == pytest.approx(8.0)


def test_missing_check_in_alerts_the_lead_once(
    session: Session, grid: Grid, worker: Persona
) -> None:
    _roster(session, grid, worker)
    first = session.scalars(select(Shift).order_by(Shift.starts_at)).first()
    assert first is not None
    later = first.starts_at + dt.timedelta(minutes=20)
    sent = service.late_check_in_alerts(session=session, now=later)
    assert sent >= 1
    assert session.scalars(select(Notification).where(Notification.kind == "duty_late")).all()
    before = len(session.scalars(select(Notification)).all())
    service.late_check_in_alerts(session=session, now=later)
    assert len(session.scalars(select(Notification)).all()) == before


def test_volunteer_signs_up_and_states_availability(session: Session, grid: Grid) -> None:
    persona = make_persona(
        session, "vol", Role.volunteer, GridScope(ScopeLevel.community, grid.community.id)
    )
    actor = auth_service.actor_for(persona.user, session)
    volunteer = service.sign_up(
        session=session,
        actor=actor,
        name="王芳",
        phone="13900000000",
        identity="party_member",
        weekly=["0-night", "2-day"],
    )
    assert volunteer.community_id == grid.community.id and volunteer.user_id == persona.user.id
    service.set_availability(
        session=session, actor=actor, volunteer_id=volunteer.id, weekly=["1-evening"]
    )
    assert volunteer.weekly == ["1-evening"]
    with pytest.raises(DutyRefused):
        service.set_availability(
            session=session, actor=actor, volunteer_id=volunteer.id, weekly=["9-day"]
        )
    with pytest.raises(Forbidden):
        service.register(session=session, actor=actor, community_id=grid.community.id)


def test_a_building_lead_cannot_manage_the_register(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    with pytest.raises(Forbidden):
        service.create_post(
            session=session, actor=lead5.actor, community_id=grid.community.id, name="x"
        )


def test_the_roster_is_posted_to_the_group_chats_without_phones(
    session: Session, grid: Grid, worker: Persona
) -> None:
    _roster(session, grid, worker)
    for row in service.register(
        session=session, actor=worker.actor, community_id=grid.community.id
    ):
        row.volunteer.phone = "13912345678"
    lines = service.post_roster(
        session=session, actor=worker.actor, community_id=grid.community.id, monday=MONDAY
    )
    assert lines == 28
    message = session.scalars(select(Notification).where(Notification.kind == "duty_roster")).one()
    assert "东门" in message.body and "13912345678" not in message.body
    assert "缺 1 人" in message.body or "缺" not in message.body
