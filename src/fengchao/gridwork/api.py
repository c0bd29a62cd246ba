"""JSON routes of grid work for a building lead's phone app: the to-do, a sweep's checklist,
recording a visit, and the requests to accept and close. The services check role and scope
exactly as for the pages (a lead sees and changes only their building)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fengchao.gridwork import help as help_service
from fengchao.gridwork import schemas, sweeps
from fengchao.gridwork.models import HelpRequest
from fengchao.gridwork.scoping import require_worker
from fengchao.web.deps import CurrentActor, DbSession, RowId, done_writing, require_csrf

router = APIRouter(prefix="/api/gridwork", tags=["gridwork"], dependencies=[Depends(require_csrf)])


def _request(row: HelpRequest) -> schemas.HelpRequestRead:
    return schemas.HelpRequestRead.model_validate(row, from_attributes=True)


def _sweep(data: sweeps.SweepProgress) -> schemas.SweepRead:
    whole = data.whole
    return schemas.SweepRead(
        id=data.sweep.id,
        title=data.sweep.title,
        deadline=data.sweep.deadline,
        closed=data.sweep.closed_at is not None,
        progress=schemas.ProgressRead(
            label=whole.label,
            building_id=whole.building_id,
            total=whole.total,
            visited=whole.visited,
            nobody_home=whole.nobody_home,
            refused=whole.refused,
            needs=whole.needs,
        ),
    )


@router.get("/todo", response_model=schemas.Todo)
def todo(session: DbSession, actor: CurrentActor) -> schemas.Todo:
    """Open requests in the caller's scope (most pressing first) and the open sweeps with
    their progress there. Building leads and community workers only (403 otherwise)."""
    require_worker(actor)
    requests = help_service.open_requests(session=session, actor=actor, limit=50)
    active = sweeps.active(session=session, actor=actor)[:5]
    return schemas.Todo(
        building_id=sweeps.lead_building(actor),
        requests=[_request(r) for r in requests],
        sweeps=[
            _sweep(sweeps.progress(session=session, actor=actor, sweep_id=s.id, sweep=s))
            for s in active
        ],
    )


@router.get("/sweeps/{sweep_id}/buildings/{building_id}", response_model=schemas.Checklist)
def checklist(
    session: DbSession, actor: CurrentActor, sweep_id: RowId, building_id: RowId
) -> schemas.Checklist:
    """Every household of one building on the sweep (404 outside the caller's scope)."""
    _sweep_row, label, rows = sweeps.checklist(
        session=session, actor=actor, sweep_id=sweep_id, building_id=building_id
    )
    return schemas.Checklist(
        sweep_id=sweep_id,
        building_id=building_id,
        label=label,
        rows=[
            schemas.ChecklistRowRead(
                target_id=r.target_id,
                household_id=r.household_id,
                address=r.address,
                outcome=r.outcome,
                visits=r.visits,
                people=r.people,
                needs=r.needs,
            )
            for r in rows
        ],
    )


@router.post(
    "/sweeps/{sweep_id}/visits/{target_id}", response_model=schemas.VisitRecorded, status_code=201
)
def record_visit(
    visit: schemas.VisitCreate,
    session: DbSession,
    actor: CurrentActor,
    sweep_id: RowId,
    target_id: RowId,
) -> schemas.VisitRecorded:
    """Record a visit to a household on the checklist (404 for one outside the caller's
    building). Needs found raise help requests; a retried ``key`` counts once."""
    recorded = sweeps.record_visit(
        session=session,
        actor=actor,
        sweep_id=sweep_id,
        target_id=target_id,
        form=sweeps.VisitForm(
            outcome=visit.outcome.value,
            people_home=visit.people_home,
            home=visit.home,
            fever=visit.fever,
            elderly_alone=visit.elderly_alone,
            needs_medicine=visit.needs_medicine,
            needs_food=visit.needs_food,
            note=visit.note,
            key=visit.key,
        ),
    )
    done_writing(session)
    return schemas.VisitRecorded(
        visit_id=recorded.visit.id,
        target_id=recorded.visit.target_id,
        outcome=recorded.visit.outcome,
        requests=recorded.requests,
        duplicate=recorded.duplicate,
    )


@router.get("/requests", response_model=list[schemas.HelpRequestRead])
def requests(
    session: DbSession,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> list[schemas.HelpRequestRead]:
    """Requests not yet closed in the caller's scope, the most pressing first."""
    return [
        _request(r) for r in help_service.open_requests(session=session, actor=actor, limit=limit)
    ]


@router.post("/requests/{request_id}/accept", response_model=schemas.HelpRequestRead)
def accept(session: DbSession, actor: CurrentActor, request_id: RowId) -> schemas.HelpRequestRead:
    """Take a request on (409 when already accepted or closed)."""
    return _request(help_service.accept(session=session, actor=actor, request_id=request_id))


@router.post("/requests/{request_id}/close", response_model=schemas.HelpRequestRead)
def close(
    body: schemas.HelpClose, session: DbSession, actor: CurrentActor, request_id: RowId
) -> schemas.HelpRequestRead:
    """Close a request with a note saying what was done (or cancel it)."""
    closed = help_service.close(
        session=session, actor=actor, request_id=request_id, note=body.note, cancel=body.cancel
    )
    return _request(closed)
