"""Swabs read back for contact tracing: a person's swabs over (person, time), the people
registered just before and after them at the same station, and their tube mates. Tracing
reads the sampling record and never writes it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from fengchao.sampling.models import SamplingRound, Swab, Tube


@dataclass(frozen=True)
class SwabRow:
    swab_id: int
    person_id: int
    site_id: int
    round_id: int
    station: str
    tube_id: int
    tube_barcode: str
    at: dt.datetime


_SwabSelect = Select[int, int, int, int, str, int, str, dt.datetime]


def _query() -> _SwabSelect:
    return (
        select(
            Swab.id,
            Swab.person_id,
            SamplingRound.site_id,
            Swab.round_id,
            Swab.station,
            Swab.tube_id,
            Tube.barcode,
            Swab.taken_at,
        )
        .join(Tube, Tube.id == Swab.tube_id)
        .join(SamplingRound, SamplingRound.id == Swab.round_id)
    )


def _rows(session: Session, query: _SwabSelect) -> list[SwabRow]:
    return [SwabRow(*row) for row in session.execute(query)]


def swabs_of(
    session: Session, *, person_id: int, start: dt.datetime, end: dt.datetime
) -> list[SwabRow]:
    query = _query().where(
        Swab.person_id == person_id, Swab.taken_at >= start, Swab.taken_at <= end
    )
    return _rows(session, query.order_by(Swab.taken_at))


def queue_around(session: Session, *, swab: SwabRow, neighbours: int) -> list[SwabRow]:
    """Up to ``neighbours`` swabs registered before and after ``swab`` at its station in
    its round (the people who stood next to them in the queue)."""
    if neighbours <= 0:
        return []
    same_line = and_(Swab.round_id == swab.round_id, Swab.station == swab.station)
    before = or_(Swab.taken_at < swab.at, and_(Swab.taken_at == swab.at, Swab.id < swab.swab_id))
    after = or_(Swab.taken_at > swab.at, and_(Swab.taken_at == swab.at, Swab.id > swab.swab_id))
    earlier = _rows(
        session,
        _query()
        .where(same_line, before)
        .order_by(Swab.taken_at.desc(), Swab.id.desc())
        .limit(neighbours),
    )
    later = _rows(
        session,
        _query().where(same_line, after).order_by(Swab.taken_at, Swab.id).limit(neighbours),
    )
    return [*reversed(earlier), *later]


def tube_mates(session: Session, *, tube_id: int) -> list[SwabRow]:
    return _rows(session, _query().where(Swab.tube_id == tube_id).order_by(Swab.taken_at))
