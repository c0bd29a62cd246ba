"""JSON routes of the sampling site: tubes and swabs (the registration page and scanners
talk to these), the room picker, coverage figures."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fengchao.db import utcnow
from fengchao.sampling import coverage as cover
from fengchao.sampling import picker, schemas, tubes
from fengchao.sampling import registration as reg
from fengchao.web.deps import CurrentActor, DbSession, RowId, done_writing, require_csrf

router = APIRouter(prefix="/api/sampling", tags=["sampling"], dependencies=[Depends(require_csrf)])

# A page that was offline sends what it kept with the time it was typed; a time far from
# the server's is not trusted.
MAX_CLOCK_SKEW = dt.timedelta(hours=12)


def _tube(state: reg.TubeState) -> schemas.TubeRead:
    return schemas.TubeRead(**asdict(state))


@router.post("/rounds/{round_id}/tubes", response_model=schemas.TubeRead)
def open_tube(
    round_id: RowId, scan: schemas.TubeScan, session: DbSession, actor: CurrentActor
) -> schemas.TubeRead:
    """Scan a tube: opens a new one or takes up an open one; a closed tube or another
    round's tube is refused (409, field ``tube``)."""
    return _tube(
        reg.open_tube(
            session=session,
            actor=actor,
            round_id=round_id,
            barcode=scan.barcode,
            station=scan.station,
        )
    )


@router.post("/rounds/{round_id}/swabs", response_model=schemas.SwabRead)
def register(
    round_id: RowId, swab: schemas.SwabCreate, session: DbSession, actor: CurrentActor
) -> schemas.SwabRead:
    """Register one swab; idempotent by ``key``. Refusals are 409 naming the field:
    ``tube``, ``person``, or ``retest_reason`` (sampled before in this round: send again
    with a reason)."""
    taken_at = swab.taken_at
    if taken_at is not None and (
        taken_at.tzinfo is None or abs(taken_at - utcnow()) > MAX_CLOCK_SKEW
    ):
        taken_at = None
    done = reg.register_swab(
        session=session,
        actor=actor,
        round_id=round_id,
        barcode=swab.barcode,
        key=swab.key,
        code=swab.code,
        person_id=swab.person_id,
        station=swab.station,
        retest_reason=swab.retest_reason,
        taken_at=taken_at,
    )
    done_writing(session)
    return schemas.SwabRead(
        swab_id=done.swab_id,
        person_id=done.person_id,
        name=done.name,
        place=done.place,
        tube=_tube(done.tube),
        repeated=done.repeated,
        retest=done.retest,
    )


@router.post("/rounds/{round_id}/tubes/{barcode}/close", response_model=schemas.TubeRead)
def close_tube(
    round_id: RowId, barcode: str, session: DbSession, actor: CurrentActor
) -> schemas.TubeRead:
    return _tube(tubes.close_tube(session=session, actor=actor, round_id=round_id, barcode=barcode))


@router.post("/rounds/{round_id}/tubes/{barcode}/undo", response_model=schemas.TubeRead)
def undo(
    round_id: RowId, barcode: str, session: DbSession, actor: CurrentActor
) -> schemas.TubeRead:
    """Take the last swab out of an open tube."""
    return _tube(tubes.undo_last(session=session, actor=actor, round_id=round_id, barcode=barcode))


@router.get("/rounds/{round_id}/room", response_model=list[schemas.RoomPerson])
def room(
    round_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    building: Annotated[str, Query(max_length=32)],
    unit: Annotated[str, Query(max_length=32)],
    room: Annotated[str, Query(max_length=16)],
    compound: Annotated[str, Query(max_length=64)] = "",
) -> list[schemas.RoomPerson]:
    """The people of a flat, to pick one who has no code or card with them: each with
    their compound and building (a building-unit-room is a flat in every compound that has
    that building); ``compound`` (part of its name) narrows the list."""
    people = picker.people_in_room(
        session=session,
        actor=actor,
        round_id=round_id,
        building=building,
        unit=unit,
        room=room,
        compound=compound,
    )
    return [schemas.RoomPerson(**asdict(p)) for p in people]


@router.get("/rounds/{round_id}/coverage", response_model=schemas.CoverageRead)
def coverage(round_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.CoverageRead:
    report = cover.coverage(session=session, actor=actor, round_id=round_id)
    return schemas.CoverageRead(
        round_id=round_id,
        expected=report.expected,
        sampled=report.sampled,
        exempt=report.exempt,
        percent=round(report.percent, 1),
        buildings=[
            schemas.BuildingCoverageRead(
                building_id=b.building_id,
                name=b.name,
                expected=b.expected,
                sampled=b.sampled,
                exempt=b.exempt,
                households=b.households,
                households_done=b.households_done,
            )
            for b in report.buildings
        ],
    )
