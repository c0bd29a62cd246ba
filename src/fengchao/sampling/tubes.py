"""What is done to a tube after its swabs: closed early, its last swab undone, its
members listed (tracing reads them). Registration itself is in registration.py."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.service import Actor, audit
from fengchao.db import begin_write, utcnow
from fengchao.registry.models import Household, Person, Unit
from fengchao.sampling.models import Swab, Tube, TubeStatus
from fengchao.sampling.registration import (
    SwabRefused,
    TubeState,
    _round_for_registration,
    _state,
    _tube_for,
    normalise_barcode,
)
from fengchao.web.i18n import _


def _known_tube(session: Session, actor: Actor, round_id: int, barcode: str) -> Tube:
    """The round's tube of ``barcode``, read for writing; refused when there is none."""
    barcode = normalise_barcode(barcode)
    begin_write(session)
    found = _round_for_registration(session, actor, round_id)
    tube = _tube_for(session, found, barcode, create=False)
    if tube is None:
        raise SwabRefused(_("没有这支试管"), field="tube", code="unknown_tube")
    return tube


def close_tube(*, session: Session, actor: Actor, round_id: int, barcode: str) -> TubeState:
    """Close a tube early (fewer than its capacity); closing a closed tube changes nothing."""
    tube = _known_tube(session, actor, round_id, barcode)
    if tube.status != TubeStatus.closed:
        tube.status = TubeStatus.closed
        tube.closed_at = utcnow()
    return _state(tube)


def undo_last(*, session: Session, actor: Actor, round_id: int, barcode: str) -> TubeState:
    """Take the last swab out of an open tube (scanned by mistake)."""
    tube = _known_tube(session, actor, round_id, barcode)
    if tube.status == TubeStatus.closed:
        raise SwabRefused(_("试管已封管，不能撤销"), field="tube", code="tube_closed")
    last = session.scalar(
        select(Swab).where(Swab.tube_id == tube.id).order_by(Swab.id.desc()).limit(1)
    )
    if last is None:
        raise SwabRefused(_("试管里还没有人"), field="tube", code="empty_tube")
    session.delete(last)
    tube.swabs -= 1
    if tube.swabs == 0:
        tube.household_id = None
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="swab_undo",
        object_type="sampling_tube",
        object_id=tube.id,
        community_id=tube.community_id,
    )
    return _state(tube)


@dataclass(frozen=True)
class TubeMember:
    name: str
    place: str


def tube_members(session: Session, tube_id: int) -> list[TubeMember]:
    rows = session.execute(
        select(Person.name, Unit.name, Household.room)
        .join(Swab, Swab.person_id == Person.id)
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(Swab.tube_id == tube_id)
        .order_by(Swab.id)
    ).all()
    return [TubeMember(name, f"{unit}-{room}") for name, unit, room in rows]
