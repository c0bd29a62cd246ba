"""The completeness figures (应录尽录) from plain rows."""

from __future__ import annotations

from fengchao.registry.completeness import Gap, HouseholdRow, PersonRow, summarise


def test_gaps_and_coverage_per_building() -> None:
    households = [
        HouseholdRow(1, 10, 100, "5-1-101", vacant=False),
        HouseholdRow(2, 10, 100, "5-1-102", vacant=False),  # nobody registered
        HouseholdRow(3, 10, 100, "5-1-201", vacant=True),  # vacant, yet someone "living"
        HouseholdRow(4, 11, 100, "6-1-101", vacant=False),
    ]
    people = [
        PersonRow(1, 1, "林国平", "13800000001", "1949-12-31", True, True, True),
        PersonRow(2, 1, "林小平", None, "2015-01-01", False, False, True),
        PersonRow(3, 3, "王五", "13800000003", None, True, False, True),
        PersonRow(4, 4, "林国平", "13800000001", None, True, False, True),  # entered twice
    ]
    report = summarise(households, people)
    b5 = report.by_building[10]
    assert (b5.households, b5.occupied_households, b5.registered_households) == (3, 2, 1)
    assert b5.household_coverage == 50.0
    assert b5.gaps[Gap.empty_household] == 1
    assert b5.gaps[Gap.no_phone] == 1 and b5.gaps[Gap.no_id] == 1
    assert b5.gaps[Gap.moved_out_living] == 1
    assert b5.gaps[Gap.duplicate] == 1 and report.by_building[11].gaps[Gap.duplicate] == 1
    assert report.total.people == 4 and report.total.phone_coverage == 75.0
    assert report.by_compound[100].people == 4
    assert {i.address for i in report.items if i.gap == Gap.empty_household} == {"5-1-102"}


def test_empty_scope_has_full_coverage_not_division_by_zero() -> None:
    report = summarise([], [])
    assert report.total.household_coverage == 100.0 and report.items == []


def test_figures_counted_by_the_database_match_the_rows(session, grid, worker) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from sqlalchemy import select

    from fengchao.registry import service
    from fengchao.registry.models import Household, Person, ResidenceStatus
    from fengchao.registry.scope import household_in_scope

    rooms = list(session.scalars(select(Household).where(Household.building_id == grid.b5.id)))
    rooms6 = list(session.scalars(select(Household).where(Household.building_id == grid.b6.id)))
    rooms[2].vacant = True
    rooms[3].vacant = True
    born = dt.date(1980, 5, 5)
    session.add_all(
        [
            Person(community_id=grid.community.id, household_id=rooms[1].id, name="王五"),
            Person(community_id=grid.community.id, household_id=rooms[2].id, name="赵六"),
            Person(  # registered twice: same name and phone in another building
                community_id=grid.community.id,
                household_id=rooms6[1].id,
                name="林国平",
                phone="13800000001",
            ),
            Person(  # twice with the same birth date
                community_id=grid.community.id,
                household_id=rooms[4].id,
                name="周七",
                birth_date=born,
            ),
            Person(
                community_id=grid.community.id,
                household_id=rooms[5].id,
                name="周七",
                birth_date=born,
                phone="13900000007",
            ),
            Person(
                community_id=grid.community.id,
                household_id=rooms[3].id,
                name="钱八",
                residence_status=ResidenceStatus.moved_out,
            ),
        ]
    )
    session.flush()
    scope = household_in_scope(worker.actor.scope)
    counted = service.count_figures(session, grid.community.id, scope)
    from_rows = service.summarise_rows(session, grid.community.id, scope, None).by_building
    assert counted == from_rows
    b5 = counted[grid.b5.id]
    assert b5.gaps[Gap.duplicate] == 3 and b5.gaps[Gap.moved_out_living] == 1
    assert b5.registered_households == 4 and b5.occupied_households == 6
    # Drilling into one building still judges duplicates across the whole scope.
    only6 = service.summarise_rows(session, grid.community.id, scope, grid.b6.id)
    assert {i.name for i in only6.items if i.gap == Gap.duplicate} == {"林国平"}


def test_kept_figures_follow_every_change(login_as, session, grid, worker) -> None:  # type: ignore[no-untyped-def]
    from fengchao.registry.models import Person

    browser = login_as(worker)

    def phone_coverage() -> float:
        rows = browser.get("/api/registry/completeness").json()
        return float(rows[-1]["phone_coverage"])

    first = phone_coverage()
    assert phone_coverage() == first  # kept
    nobody = Person(community_id=grid.community.id, household_id=grid.h5_101.id, name="新来")
    session.add(nobody)
    session.flush()
    added = phone_coverage()
    assert added < first  # a new person without a phone
    nobody.phone = "13900000009"
    session.flush()
    assert phone_coverage() == first  # an update moves the version
    overview = browser.get("/registry/overview").text
    assert f"{first}%" in overview
