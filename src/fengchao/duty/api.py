"""JSON routes of duty: a community's week (assignments, holes, coverage) and computing it,
a volunteer's own shifts and availability, check-in and check-out at a post with the
resident code (idempotent by ``Idempotency-Key``), and a cancellation's repair. Thin
routes over ``service.py``, which checks role and scope exactly as for the pages (403 for
a role without the permission, 404 outside the caller's scope)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from fengchao.auth.service import NotFound
from fengchao.duty import schemas, service
from fengchao.duty.models import RepairProposal
from fengchao.web.deps import CurrentActor, DbSession, RowId, done_writing, require_csrf

router = APIRouter(prefix="/api/duty", tags=["duty"], dependencies=[Depends(require_csrf)])

CommunityId = Annotated[int | None, Query(ge=1, le=schemas.MAX_ID)]
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=128)]


@router.get("/roster", response_model=schemas.RosterRead)
def roster(
    session: DbSession,
    actor: CurrentActor,
    community: CommunityId = None,
    week: Annotated[dt.date | None, Query()] = None,
) -> schemas.RosterRead:
    """The week (any day of it; by default next week) of a community (by default the first
    the caller manages). Needs ``duty.manage``, as the roster page."""
    row = service.community_for(session=session, actor=actor, community_id=community)
    monday = service.week_of(row, week)
    view = service.roster(session=session, actor=actor, community_id=row.id, monday=monday)
    names = {p.id: p.name for p in view.posts}
    cells = sorted(
        (c for cells in view.cells.values() for c in cells),
        key=lambda c: (c.start, c.shift.post_id),
    )
    return schemas.RosterRead(
        community_id=row.id,
        week=monday,
        timezone=row.timezone or "Asia/Shanghai",
        assignments=[
            schemas.AssignmentRead(
                assignment_id=a.id,
                shift_id=c.shift.id,
                post_id=c.shift.post_id,
                post=names.get(c.shift.post_id, ""),
                shift=c.shift.name,
                start=c.start,
                end=c.end,
                volunteer_id=a.volunteer_id,
                volunteer=a.volunteer.name,
                lead=a.volunteer_id == c.shift.lead_id,
                checked_in=a.volunteer_id in c.checked_in,
            )
            for c in cells
            for a in c.assignments
        ],
        holes=[
            schemas.HoleRead(
                shift_id=h.shift.id,
                post_id=h.shift.post_id,
                post=names.get(h.shift.post_id, ""),
                shift=h.shift.name,
                start=h.start,
                end=h.end,
                missing=h.missing,
                reason=service.hole_text(h.shift.hole),
            )
            for h in view.holes
        ],
        coverage=[
            schemas.PostCoverageRead(
                post_id=post_id, post=names.get(post_id, ""), placed=placed, required=required
            )
            for post_id, (placed, required) in sorted(view.coverage.items())
        ],
        placed=sum(placed for placed, _ in view.coverage.values()),
        required=sum(required for _, required in view.coverage.values()),
    )


@router.post("/roster/compute", response_model=schemas.RosterSummary)
def compute(
    body: schemas.RosterCompute, session: DbSession, actor: CurrentActor
) -> schemas.RosterSummary:
    """Compute (or recompute) the week's roster through the solver and save it; shifts
    already started keep their people. Contradictory limits are refused (422, field
    ``roster``)."""
    row = service.community_for(session=session, actor=actor, community_id=body.community)
    monday = service.week_of(row, body.week)
    outcome = service.compute_roster(
        session=session,
        actor=actor,
        community_id=row.id,
        monday=monday,
        time_limit=body.time_limit,
    )
    done_writing(session)
    return schemas.RosterSummary(
        community_id=row.id,
        week=monday,
        shifts=outcome.shifts,
        assignments=outcome.assignments,
        holes=[
            schemas.ComputedHole(
                shift_id=int(h.shift),
                missing=h.missing,
                reason=service.hole_text(
                    {"code": h.code, "missing": h.missing, "reason": h.reason, **h.detail}
                ),
            )
            for h in outcome.holes
        ],
        gap=outcome.gap,
        seconds=round(outcome.seconds, 3),
        hours_spread=outcome.hours_spread,
        nights_spread=outcome.nights_spread,
    )


def _my_duty(session: DbSession, actor: CurrentActor) -> schemas.MyDutyRead:
    mine = service.my_duty(session=session, actor=actor)
    if mine is None:  # signed in, never signed up (the page shows the sign-up form)
        raise NotFound("volunteer")
    volunteer = mine.volunteer
    community = service.volunteer_community(session=session, volunteer=volunteer)
    return schemas.MyDutyRead(
        volunteer_id=volunteer.id,
        name=volunteer.name,
        identity=volunteer.identity,
        weekly=list(volunteer.weekly),
        max_hours_week=volunteer.max_hours_week,
        hours_served=mine.hours_served,
        timezone=community.timezone or "Asia/Shanghai",
        shifts=[
            schemas.MyShiftRead(
                shift_id=s.shift.id,
                post_id=s.shift.post_id,
                post=s.shift.post.name,
                shift=s.shift.name,
                start=s.start,
                end=s.end,
            )
            for s in mine.upcoming
        ],
    )


@router.get("/me", response_model=schemas.MyDutyRead)
def me(session: DbSession, actor: CurrentActor) -> schemas.MyDutyRead:
    """The signed-in volunteer's shifts not yet over, availability and hours served
    (``duty.self``; 404 for an account that has not signed up)."""
    return _my_duty(session, actor)


@router.put("/me/availability", response_model=schemas.MyDutyRead)
def availability(
    body: schemas.AvailabilityUpdate, session: DbSession, actor: CurrentActor
) -> schemas.MyDutyRead:
    """Replace the weekly pattern, set the weekly hours, add days away; all or nothing."""
    service.set_my_availability(
        session=session,
        actor=actor,
        weekly=body.weekly,
        max_hours_week=body.max_hours_week,
        away=body.away,
    )
    session.flush()
    return _my_duty(session, actor)


def _step(session: DbSession, step: service.CheckStep) -> schemas.CheckInRead:
    row, shift = step.row, step.row.assignment.shift
    community = service.volunteer_community(session=session, volunteer=step.volunteer)
    zone = service.zone_of(community)
    at = row.checked_in_at if step.action == "in" else row.checked_out_at
    assert at is not None
    return schemas.CheckInRead(
        check_in_id=row.id,
        action="in" if step.action == "in" else "out",
        at=service.local(at, zone),
        volunteer_id=step.volunteer.id,
        volunteer=step.volunteer.name,
        post_id=shift.post_id,
        post=shift.post.name,
        shift_id=shift.id,
        shift=shift.name,
        start=service.local(shift.starts_at, zone),
        end=service.local(shift.ends_at, zone),
        replayed=step.replayed,
    )


def _check(
    action: str,
    post_id: int,
    body: schemas.CheckCode,
    session: DbSession,
    actor: CurrentActor,
    key: str | None,
) -> schemas.CheckInRead:
    step = service.check_at_post(
        session=session, actor=actor, post_id=post_id, action=action, code=body.code, key=key
    )
    answer = _step(session, step)
    done_writing(session)
    return answer


@router.post("/posts/{post_id}/check-in", response_model=schemas.CheckInRead)
def check_in(
    post_id: RowId,
    body: schemas.CheckCode,
    session: DbSession,
    actor: CurrentActor,
    idempotency_key: IdempotencyKey = None,
) -> schemas.CheckInRead:
    """Check a volunteer in at the post with their resident code (``duty.manage``). Refused
    (422) naming the field: ``code`` for an empty or unknown code, someone who is not a
    volunteer here, no shift now, or a second check-in; ``post`` for a shift at another
    post. A retry with the same ``Idempotency-Key`` returns the first answer; the same key
    for someone else is refused (409)."""
    return _check("in", post_id, body, session, actor, idempotency_key)


@router.post("/posts/{post_id}/check-out", response_model=schemas.CheckInRead)
def check_out(
    post_id: RowId,
    body: schemas.CheckCode,
    session: DbSession,
    actor: CurrentActor,
    idempotency_key: IdempotencyKey = None,
) -> schemas.CheckInRead:
    """Check a volunteer out (422, field ``code``, when they are not checked in here);
    idempotent by ``Idempotency-Key`` as the check-in."""
    return _check("out", post_id, body, session, actor, idempotency_key)


def _repair(session: DbSession, actor: CurrentActor, repair_id: int) -> schemas.RepairRead:
    proposal, lines = service.repair_view(session=session, actor=actor, repair_id=repair_id)
    return _repair_read(proposal, lines)


def _repair_read(proposal: RepairProposal, lines: list[service.DiffLine]) -> schemas.RepairRead:
    return schemas.RepairRead(
        id=proposal.id,
        status=proposal.status,
        assignment_id=proposal.assignment_id,
        changes=[
            schemas.RepairLineRead(
                added=line.added,
                shift_id=line.shift.id,
                post=line.shift.post.name,
                shift=line.shift.name,
                start=line.start,
                volunteer_id=line.volunteer.id,
                volunteer=line.volunteer.name,
            )
            for line in lines
        ],
        holes=[
            schemas.ComputedHole(
                shift_id=int(h["shift"]), missing=int(h["missing"]), reason=service.hole_text(h)
            )
            for h in proposal.holes
        ],
    )


@router.post(
    "/assignments/{assignment_id}/cancel", response_model=schemas.RepairRead, status_code=201
)
def cancel(assignment_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.RepairRead:
    """A volunteer drops out: the assignment is cancelled and the repair that changes the
    fewest other assignments is proposed (the diff; applied on confirmation). A shift
    already started, or an assignment already cancelled, is refused (422, field
    ``assignment``)."""
    proposal = service.cancel_assignment(session=session, actor=actor, assignment_id=assignment_id)
    answer = _repair(session, actor, proposal.id)
    done_writing(session)
    return answer


@router.get("/repairs/{repair_id}", response_model=schemas.RepairRead)
def repair(repair_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.RepairRead:
    return _repair(session, actor, repair_id)


@router.post("/repairs/{repair_id}/confirm", response_model=schemas.RepairRead)
def confirm(repair_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.RepairRead:
    """Apply the repair and notify the people it moves (422, field ``repair``, when it was
    decided before or one of its shifts has started)."""
    service.confirm_repair(session=session, actor=actor, repair_id=repair_id)
    answer = _repair(session, actor, repair_id)
    done_writing(session)
    return answer


@router.post("/repairs/{repair_id}/discard", response_model=schemas.RepairRead)
def discard(repair_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.RepairRead:
    """Leave the roster as it is (the cancellation stands, the hole stays)."""
    service.discard_repair(session=session, actor=actor, repair_id=repair_id)
    answer = _repair(session, actor, repair_id)
    done_writing(session)
    return answer
