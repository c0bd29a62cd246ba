"""The room picker: a typed building-unit-room names a flat in every compound that has
that building; each person is shown with compound and building, and a compound prefix
narrows the list."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fengchao.registry.models import Building, Household, Person, Relation, Unit
from fengchao.sampling import picker
from tests.conftest import Grid, Persona
from tests.sampling.conftest import Site


def _neighbour_in_other_compound(session: Session, grid: Grid) -> Person:
    """宏侨新村 has a building 5 too, with 张三 in 5-1-101."""
    building = Building(community_id=grid.community.id, compound_id=grid.other.id, name="5")
    session.add(building)
    session.flush()
    unit = Unit(community_id=grid.community.id, building_id=building.id, name="1")
    session.add(unit)
    session.flush()
    flat = Household(community_id=grid.community.id, compound_id=grid.other.id,
                     building_id=building.id, unit_id=unit.id, room="101")  # fmt: skip
    session.add(flat)
    session.flush()
    person = Person(community_id=grid.community.id, household_id=flat.id, name="张三",
                    phone="13900009999", relation=Relation.owner)  # fmt: skip
    session.add(person)
    session.flush()
    return person


def test_a_room_in_two_compounds_lists_each_person_with_compound_and_building(
    session: Session, site: Site, sampler: Persona, grid: Grid
) -> None:
    zhang = _neighbour_in_other_compound(session, grid)
    people = picker.people_in_room(session=session, actor=sampler.actor, round_id=site.round.id,
                                   building="5", unit="1", room="101")  # fmt: skip
    places = {p.person_id: p.place for p in people}
    assert places[grid.resident5.id] == "华润中央公园 5-1-101"
    assert places[zhang.id] == "宏侨新村 5-1-101"
    assert len({p.compound for p in people}) == 2
    narrowed = picker.people_in_room(session=session, actor=sampler.actor,
                                     round_id=site.round.id, building="5", unit="1",
                                     room="101", compound="宏侨新村")  # fmt: skip
    assert [p.person_id for p in narrowed] == [zhang.id]
    by_part = picker.people_in_room(session=session, actor=sampler.actor,
                                    round_id=site.round.id, building="5", unit="1",
                                    room="101", compound="中央公园")  # fmt: skip
    assert zhang.id not in [p.person_id for p in by_part]
    assert grid.resident5.id in [p.person_id for p in by_part]


def test_the_room_api_names_the_compound_and_takes_a_prefix(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, sampler: Persona, grid: Grid
) -> None:
    zhang = _neighbour_in_other_compound(session, grid)
    browser = login_as(sampler)
    url = f"/api/sampling/rounds/{site.round.id}/room"
    both = browser.get(url, params={"building": "5", "unit": "1", "room": "101"})
    assert both.status_code == 200, both.text
    labels = {p["person_id"]: (p["compound"], p["place"]) for p in both.json()}
    assert labels[zhang.id] == ("宏侨新村", "宏侨新村 5-1-101")
    one = browser.get(url, params={"compound": "宏侨新村", "building": "5", "unit": "1",
                                   "room": "101"})  # fmt: skip
    assert [p["person_id"] for p in one.json()] == [zhang.id]
