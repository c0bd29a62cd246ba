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
