"""The room picker of the registration page: the people of a flat typed as
building-unit-room, for someone with no code and no ID card with them.

A community has several compounds, and "5-1-101" is a flat in each one that has a
building 5: every person is listed with their compound and building, and an optional
compound prefix ("东苑 5-1-101") narrows the list. The page never picks for the sampler;
they choose by number from what they see.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.service import Actor
from fengchao.registry.models import Building, Compound, Household, Person, ResidenceStatus, Unit
from fengchao.sampling.models import Swab
from fengchao.sampling.registration import _round_for_registration


@dataclass(frozen=True)
class RoomChoice:
    person_id: int
    name: str
    sampled: bool
    compound: str
    place: str  # compound, then building-unit-room: "东苑 5-1-101"


def people_in_room(
    *,
    session: Session,
    actor: Actor,
    round_id: int,
    building: str,
    unit: str,
    room: str,
    compound: str = "",
) -> list[RoomChoice]:
    """The people of the flat building-unit-room in every compound of the round's community
    (only those whose compound's name contains ``compound`` when given), compound by
    compound."""
    found = _round_for_registration(session, actor, round_id)
    query = (
        select(Person.id, Person.name, Compound.name, Building.name, Unit.name, Household.room)
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .join(Building, Building.id == Household.building_id)
        .join(Compound, Compound.id == Building.compound_id)
        .where(
            Household.community_id == found.community_id,
            Building.name == building.strip(),
            Unit.name == unit.strip(),
            Household.room == room.strip(),
            Person.residence_status != ResidenceStatus.moved_out,
        )
        .order_by(Compound.name, Compound.id, Person.id)
    )
    if compound.strip():
        query = query.where(Compound.name.contains(compound.strip(), autoescape=True))
    rows = session.execute(query).all()
    sampled = set(
        session.scalars(
            select(Swab.person_id).where(
                Swab.round_id == found.id, Swab.person_id.in_([r[0] for r in rows])
            )
        )
    )
    return [
        RoomChoice(pid, name, pid in sampled, comp, f"{comp} {b}-{u}-{r}")
        for pid, name, comp, b, u, r in rows
    ]
