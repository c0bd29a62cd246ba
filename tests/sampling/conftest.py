"""Fixtures of the sampling tests: a site and a round over the test grid, a sampler, and a
dozen residents in building 5 with ID numbers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.registry.models import Household, Person, Relation
from fengchao.registry.service import register_person_id
from fengchao.sampling import service
from fengchao.sampling.models import SamplingRound, SamplingSite
from tests.conftest import Grid, Persona, make_persona


def id_number(serial: int) -> str:
    """A valid ID number (GB 11643 check character) born 1980-01-01, serial 100–999."""
    body = f"11010519800101{serial:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


@dataclass
class Site:
    site: SamplingSite
    round: SamplingRound
    people: list[Person]
    numbers: list[str]


@pytest.fixture
def sampler(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "sampler", Role.sampler, GridScope(ScopeLevel.community, grid.community.id)
    )


@pytest.fixture
def site(session: Session, grid: Grid, worker: Persona) -> Site:
    made = service.create_site(
        session=session, actor=worker.actor, community_id=grid.community.id, name="中央公园采样点"
    )
    found = service.create_round(
        session=session,
        actor=worker.actor,
        site_id=made.id,
        name="全员核酸 周二",
        day=dt.date(2026, 11, 30),
    )
    # Distinct serials per test: the uniqueness of ID numbers is per community.
    people, numbers = [], []
    households = list(
        session.scalars(
            select(Household).where(Household.building_id == grid.b5.id).order_by(Household.id)
        )
    )
    for i in range(12):
        number = id_number(200 + i)
        person = Person(
            community_id=grid.community.id,
            household_id=households[i % len(households)].id,
            name=f"居民{i + 1}",
            phone=f"1390000{i:04d}",
            relation=Relation.family,
        )
        register_person_id(person, number)
        session.add(person)
        people.append(person)
        numbers.append(number)
    session.flush()
    return Site(made, found, people, numbers)
