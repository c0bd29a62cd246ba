"""Slot planning: properties over random communities (hypothesis) and a few worked cases."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fengchao.sampling.slots import (
    NO_CAPACITY,
    UNIT_TOO_LARGE,
    BuildingLoad,
    PlanError,
    SiteDay,
    UnitLoad,
    expected_of,
    greedy_baseline,
    plan_slots,
)

DAY = SiteDay(dt.time(7, 30), dt.time(13, 30), stations=4, per_station_hour=100, turnout=0.9)


@st.composite
def communities(draw: st.DrawFn) -> list[BuildingLoad]:
    n = draw(st.integers(min_value=0, max_value=40))
    buildings = []
    unit_id = 1
    for b in range(n):
        units = []
        for _ in range(draw(st.integers(min_value=1, max_value=6))):
            units.append(UnitLoad(unit_id, draw(st.integers(min_value=0, max_value=150))))
            unit_id += 1
        buildings.append(BuildingLoad(b + 1, tuple(units)))
    return buildings


@st.composite
def days(draw: st.DrawFn) -> SiteDay:
    start = draw(st.integers(min_value=6 * 60, max_value=10 * 60))
    length = draw(st.integers(min_value=15, max_value=8 * 60))
    end = min(start + length, 23 * 60 + 59)
    return SiteDay(
        dt.time(start // 60, start % 60),
        dt.time(end // 60, end % 60),
        stations=draw(st.integers(min_value=1, max_value=8)),
        per_station_hour=draw(st.integers(min_value=20, max_value=200)),
        turnout=draw(st.sampled_from([0.5, 0.8, 0.9, 1.0])),
        slot_minutes=draw(st.sampled_from([15, 20, 30, 60])),
    )


@settings(max_examples=150, deadline=None)
@given(communities(), days())
def test_capacity_is_never_exceeded(buildings: list[BuildingLoad], day: SiteDay) -> None:
    plan = plan_slots(buildings, day)
    for slot in plan.slots:
        assert slot.expected <= slot.capacity


@settings(max_examples=150, deadline=None)
@given(communities(), days())
def test_every_unit_is_placed_once_or_listed_unplaced(
    buildings: list[BuildingLoad], day: SiteDay
) -> None:
    plan = plan_slots(buildings, day)
    seen: dict[int, int] = {}
    whole: set[int] = set()
    pieces = [p for s in plan.slots for p in s.pieces] + [u.piece for u in plan.unplaced]
    for piece in pieces:
        if piece.units is None:
            assert piece.building_id not in whole
            whole.add(piece.building_id)
        else:
            for unit in piece.units:
                seen[unit] = seen.get(unit, 0) + 1
    for building in buildings:
        if building.building_id in whole:
            assert not any(u.unit_id in seen for u in building.units)
        else:
            assert all(seen.get(u.unit_id) == 1 for u in building.units)
    expected = sum(expected_of(u.people, day.turnout) for b in buildings for u in b.units)
    assert plan.placed_expected + plan.unplaced_expected == expected


@settings(max_examples=150, deadline=None)
@given(communities(), days())
def test_load_is_never_more_uneven_than_the_greedy_baseline(
    buildings: list[BuildingLoad], day: SiteDay
) -> None:
    plan = plan_slots(buildings, day)
    baseline = greedy_baseline(buildings, day)
    assert plan.unplaced_expected <= baseline.unplaced_expected
    assert plan.score() <= baseline.score()


@settings(max_examples=100, deadline=None)
@given(communities(), days())
def test_a_building_that_fits_a_slot_is_kept_whole(
    buildings: list[BuildingLoad], day: SiteDay
) -> None:
    plan = plan_slots(buildings, day)
    biggest = max(s.capacity for s in plan.slots)
    for slot in plan.slots:
        for piece in slot.pieces:
            if piece.units is not None:
                building = next(b for b in buildings if b.building_id == piece.building_id)
                whole = sum(expected_of(u.people, day.turnout) for u in building.units)
                assert whole > biggest


def test_the_reference_site_flattens_its_queue() -> None:
    buildings = [
        BuildingLoad(i, (UnitLoad(i * 10 + 1, 40 + i), UnitLoad(i * 10 + 2, 35)))
        for i in range(1, 25)
    ]
    plan = plan_slots(buildings, DAY)
    assert len(plan.slots) == 12
    assert all(s.capacity == 200 for s in plan.slots)
    assert not plan.unplaced
    loads = [s.expected for s in plan.slots]
    assert max(loads) - min(loads) <= 80
    assert all(p.units is None for s in plan.slots for p in s.pieces)


def test_a_building_too_big_for_one_slot_is_split_by_unit() -> None:
    big = BuildingLoad(1, tuple(UnitLoad(u, 100) for u in range(1, 5)))  # 360 expected
    plan = plan_slots([big], DAY)
    parts = [p for s in plan.slots for p in s.pieces]
    assert len(parts) == 2
    assert sorted(u for p in parts for u in p.units or ()) == [1, 2, 3, 4]
    assert {p.expected for p in parts} == {180}


def test_a_unit_larger_than_a_slot_is_left_unplaced_with_its_reason() -> None:
    plan = plan_slots([BuildingLoad(1, (UnitLoad(1, 300), UnitLoad(2, 10)))], DAY)
    assert [(u.piece.units, u.reason) for u in plan.unplaced] == [((1,), UNIT_TOO_LARGE)]


def test_more_people_than_the_day_holds_are_left_unplaced() -> None:
    buildings = [BuildingLoad(i, (UnitLoad(i, 150),)) for i in range(1, 30)]
    plan = plan_slots(buildings, DAY)
    assert plan.unplaced and all(u.reason == NO_CAPACITY for u in plan.unplaced)
    assert all(s.expected <= s.capacity for s in plan.slots)


def test_a_building_with_nobody_registered_is_still_given_a_slot() -> None:
    plan = plan_slots([BuildingLoad(7, (UnitLoad(70, 0),))], DAY)
    assert [p.building_id for s in plan.slots for p in s.pieces] == [7]


def test_impossible_parameters_name_the_field() -> None:
    with pytest.raises(PlanError) as error:
        plan_slots([], SiteDay(dt.time(13, 30), dt.time(7, 30), stations=4))
    assert error.value.field == "end"
    with pytest.raises(PlanError) as error:
        plan_slots([], SiteDay(dt.time(7, 30), dt.time(13, 30), stations=0))
    assert error.value.field == "stations"


def test_the_json_shape_is_the_published_one() -> None:
    plan = plan_slots([BuildingLoad(1, (UnitLoad(1, 10),))], DAY)
    data = plan.as_json()
    assert set(data) == {"slots", "unplaced"}
    first = data["slots"][0]  # type: ignore[index]
    assert first["start"] == "07:30" and first["end"] == "08:00" and first["capacity"] == 200
