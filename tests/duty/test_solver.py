"""The roster solver: every hard rule in every roster, holes named, fairness, repair."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fengchao.cli import app
from fengchao.duty import bounds, scenarios, solver
from fengchao.duty.solver import Problem, ProblemError, Rules, Shift, Volunteer

MONDAY = datetime(2026, 12, 7)
# Start hours and lengths of the shifts a problem is drawn from: the gate's three shifts
# (night 00–08 covers 02:00), the sampling site, a patrol, a 22:00–06:00 night.
KINDS = [(0, 8), (8, 8), (16, 8), (7.5, 6), (19, 3), (22, 8)]


def at(day: int, hour: float) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour)


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    days = draw(st.integers(1, 9))
    shifts = []
    for d in range(days):
        for k in draw(st.sets(st.integers(0, len(KINDS) - 1), min_size=1, max_size=3)):
            start, hours = KINDS[k]
            low = draw(st.integers(0, 2))
            shifts.append(
                Shift(
                    id=f"s{d}-{k}",
                    post=draw(st.sampled_from(["east", "west", "sampling"])),
                    start=at(d, start),
                    end=at(d, start + hours),
                    min=low,
                    max=low + draw(st.integers(0, 1)),
                    skills=frozenset(draw(st.sets(st.sampled_from(["medical"]), max_size=1))),
                )
            )
    ids = [s.id for s in shifts]
    people = []
    for i in range(draw(st.integers(0, 7))):
        available = draw(st.one_of(st.none(), st.sets(st.sampled_from(ids))))
        people.append(
            Volunteer(
                id=f"v{i}",
                skills=frozenset(draw(st.sets(st.sampled_from(["medical", "tracing"])))),
                available=None if available is None else frozenset(available),
                max_hours_week=draw(st.sampled_from([8, 16, 24, 40])),
                preferences={
                    s: draw(st.integers(-2, 2)) for s in draw(st.sets(st.sampled_from(ids)))
                },
            )
        )
    rules = Rules(
        min_rest_hours=draw(st.sampled_from([0, 8, 10, 12])),
        max_shifts_per_day=draw(st.integers(1, 2)),
        max_consecutive_nights=draw(st.integers(0, 3)),
    )
    return Problem(shifts=tuple(shifts), volunteers=tuple(people), rules=rules)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_hard_rule_holds_and_every_hole_is_named(problem: Problem) -> None:
    result = solver.solve(problem, time_limit=5)
    assert solver.check(problem, result.assignments) == []
    staffed: dict[str, int] = {}
    for shift_id, _ in result.assignments:
        staffed[shift_id] = staffed.get(shift_id, 0) + 1
    below = {s.id: s.min - staffed.get(s.id, 0) for s in problem.shifts}
    assert {h.shift: h.missing for h in result.holes} == {k: v for k, v in below.items() if v > 0}
    assert all(h.reason for h in result.holes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_never_worse_than_the_greedy_baseline(problem: Problem) -> None:
    result = solver.solve(problem, time_limit=5)
    baseline = solver.greedy(problem)
    assert solver.check(problem, baseline) == []
    ours, theirs = solver.cost(problem, result.assignments), solver.cost(problem, baseline)
    assert ours[0] <= theirs[0]  # never more missing people
    if ours[0] == theirs[0]:
        assert ours[1] <= theirs[1]  # and then never less fair (the weighted spreads)


def test_the_reference_week_is_fairer_than_greedy() -> None:
    problem = scenarios.reference_week()
    result = solver.solve(problem, time_limit=4)
    baseline = solver.greedy(problem)
    assert solver.check(problem, result.assignments) == []
    assert not result.holes
    assert result.hours_spread <= solver.fairness(problem, baseline)["hours_spread"]
    assert result.nights_spread <= solver.fairness(problem, baseline)["nights_spread"]


def _gate(day: int, start: float, hours: float, name: str, **kw: object) -> Shift:
    return Shift(id=name, post="east", start=at(day, start), end=at(day, start + hours), **kw)  # type: ignore[arg-type]


def test_definitions_night_morning_day() -> None:
    assert _gate(0, 0, 8, "a").is_night
    assert _gate(0, 22, 8, "b").is_night
    assert not _gate(0, 18, 8, "c").is_night  # ends at 02:00: does not cover it
    assert _gate(0, 2, 6, "d").is_night
    assert _gate(0, 7.5, 6, "e").is_morning and not _gate(0, 0, 8, "f").is_morning
    assert _gate(5, 8, 8, "g").is_weekend


def test_a_skill_nobody_has_is_a_named_hole_not_a_crash() -> None:
    problem = Problem(
        shifts=(_gate(0, 7.5, 6, "sampling", min=2, max=2, skills=frozenset({"medical"})),),
        volunteers=(Volunteer("v1"), Volunteer("v2")),
    )
    result = solver.solve(problem, time_limit=2)
    assert result.assignments == []
    assert [(h.shift, h.missing, h.code) for h in result.holes] == [("sampling", 2, "no_skill")]
    assert "medical" in result.holes[0].reason


def test_nobody_with_the_skill_available_and_everyone_busy_are_told_apart() -> None:
    shifts = (
        _gate(1, 7.5, 6, "tue-sampling", min=1, max=1, skills=frozenset({"medical"})),
        _gate(1, 8, 8, "tue-day", min=3, max=3),
        _gate(1, 16, 8, "tue-evening", min=1, max=1),
    )
    people = (
        Volunteer("nurse", skills=frozenset({"medical"}), available=frozenset({"tue-day"})),
        Volunteer("a", available=frozenset({"tue-day", "tue-evening"})),
        Volunteer("b", available=frozenset({"tue-day", "tue-evening"})),
    )
    result = solver.solve(Problem(shifts=shifts, volunteers=people), time_limit=2)
    holes = {h.shift: h for h in result.holes}
    assert holes["tue-sampling"].reason == "nobody with skill medical is available"
    (other,) = (h for name, h in holes.items() if name != "tue-sampling")
    assert other.missing == 1 and other.code == "same_day"
    assert other.reason.endswith("already works that day")


def test_a_volunteer_with_no_availability_is_never_rostered() -> None:
    problem = Problem(
        shifts=(_gate(0, 8, 8, "day", min=1, max=1),),
        volunteers=(Volunteer("idle", available=frozenset()),),
    )
    result = solver.solve(problem, time_limit=2)
    assert result.assignments == []
    assert result.holes[0].code == "unavailable"
    assert "idle has no availability" in " ".join(result.warnings)


@pytest.mark.parametrize(
    ("shift", "rules", "field"),
    [
        (_gate(0, 8, 8, "x", min=3, max=2), Rules(), "shifts[x]"),
        (_gate(0, 8, 8, "x", min=-1, max=2), Rules(), "shifts[x].min"),
        (Shift("x", "east", at(0, 8), at(0, 6)), Rules(), "shifts[x]"),
        (_gate(0, 8, 8, "x"), Rules(max_shifts_per_day=0), "rules.max_shifts_per_day"),
        (_gate(0, 8, 8, "x"), Rules(min_rest_hours=-1), "rules.min_rest_hours"),
        (_gate(0, 8, 8, "x"), Rules(max_consecutive_nights=-2), "rules.max_consecutive_nights"),
    ],
)
def test_contradictory_limits_are_named(shift: Shift, rules: Rules, field: str) -> None:
    with pytest.raises(ProblemError) as caught:
        solver.solve(Problem(shifts=(shift,), volunteers=(Volunteer("v"),), rules=rules))
    assert field in [where for where, _ in caught.value.problems]


def test_repair_after_a_cancellation_changes_little_and_never_the_past() -> None:
    problem = scenarios.reference_week()
    roster = solver.solve(problem, time_limit=3)
    night = next(s for s in problem.shifts if s.id == "gate1-2026-12-09-night")
    person = next(v for s, v in roster.assignments if s == night.id)
    now = night.start - timedelta(hours=2)  # 22:00 the evening before
    current = replace_current(problem, roster.assignments)
    fixed = solver.repair(current, [(night.id, person)], now=now, time_limit=3)
    assert (night.id, person) not in fixed.assignments
    assert solver.check(current, fixed.assignments) == []
    assert not any(h.shift == night.id for h in fixed.holes)
    assert 1 <= fixed.changes <= 3
    past = {s.id for s in problem.shifts if s.start < now}
    assert {p for p in fixed.assignments if p[0] in past} == {
        p for p in roster.assignments if p[0] in past
    }


def replace_current(problem: Problem, pairs: list[tuple[str, str]]) -> Problem:
    from dataclasses import replace

    return replace(problem, current=frozenset(pairs))


def test_a_cancellation_for_a_shift_already_past_is_refused() -> None:
    problem = Problem(
        shifts=(_gate(0, 0, 8, "night", min=1, max=1),),
        volunteers=(Volunteer("v"),),
        current=frozenset({("night", "v")}),
    )
    with pytest.raises(ProblemError, match="already started"):
        solver.repair(problem, [("night", "v")], now=at(0, 3))


def test_cli_solves_the_documented_json(tmp_path: pytest.TempPathFactory) -> None:
    data = {
        "shifts": [
            {
                "id": "east-2026-12-07-night",
                "post": "east-gate",
                "start": "2026-12-07T00:00",
                "end": "2026-12-07T08:00",
                "min": 1,
                "max": 2,
                "skills": [],
            }
        ],
        "volunteers": [
            {
                "id": "v01",
                "skills": ["medical"],
                "available": ["east-2026-12-07-night"],
                "max_hours_week": 40,
            }
        ],
        "rules": {"min_rest_hours": 10, "max_shifts_per_day": 1, "max_consecutive_nights": 3},
    }
    path = tmp_path / "problem.json"  # type: ignore[operator]
    path.write_text(json.dumps(data))
    out = CliRunner().invoke(app, ["duty", "solve", str(path), "--time-limit", "2", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["assignments"] == [{"shift": "east-2026-12-07-night", "volunteer": "v01"}]
    assert result["holes"] == []
    assert {"gap", "seconds", "hours_spread", "nights_spread"} <= result.keys()


def test_cli_names_a_contradiction(tmp_path: pytest.TempPathFactory) -> None:
    data = {
        "shifts": [
            {
                "id": "s",
                "post": "p",
                "start": "2026-12-07T08:00",
                "end": "2026-12-07T16:00",
                "min": 3,
                "max": 1,
            }
        ],
        "volunteers": [],
    }
    path = tmp_path / "problem.json"  # type: ignore[operator]
    path.write_text(json.dumps(data))
    out = CliRunner().invoke(app, ["duty", "solve", str(path), "--json"])
    assert out.exit_code == 2
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["problems"][0]["field"] == "shifts[s]"
    assert "min 3 is more than max 1" in result["problems"][0]["message"]


# --------------------------------------------------------------------------- bounds


def _loads(problem: Problem, pairs: set[tuple[str, str]]) -> dict[str, dict[str, int]]:
    shifts = {s.id: s for s in problem.shifts}
    loads = {
        name: dict.fromkeys((v.id for v in problem.volunteers), 0)
        for name in ("minutes", "nights", "weekend")
    }
    for shift_id, person in pairs:
        shift = shifts[shift_id]
        loads["minutes"][person] += shift.minutes
        loads["nights"][person] += shift.is_night
        loads["weekend"][person] += shift.is_weekend
    return loads


QUANTITIES = {
    "minutes": lambda s: s.minutes,
    "nights": lambda s: int(s.is_night),
    "weekend": lambda s: int(s.is_weekend),
}


def _assert_bounds_hold(problem: Problem, pairs: set[tuple[str, str]]) -> None:
    """The pigeonhole bounds hold for this roster (any roster keeping the hard rules)."""
    assert solver.check(problem, pairs) == []
    if not problem.volunteers:
        return
    missing = solver.cost(problem, pairs)[0]
    staffed: dict[str, int] = {}
    for shift_id, _ in pairs:
        staffed[shift_id] = staffed.get(shift_id, 0) + 1
    no_extra = all(staffed.get(s.id, 0) <= s.min for s in problem.shifts)
    loads = _loads(problem, pairs)
    for name, quantity in QUANTITIES.items():
        high, low = solver.spread_bounds(problem, quantity, missing)
        assert max(loads[name].values()) >= high, name
        if no_extra:
            assert min(loads[name].values()) <= low, name
    if missing:
        return
    floor = bounds.floors(problem, seconds=30)
    if floor is not None and floor.objective is not None:
        assert solver.cost(problem, pairs)[1] >= floor.objective
    if no_extra:
        minutes = loads["minutes"].values()
        assert max(minutes) - min(minutes) >= bounds.minutes_spread_bound(problem)
        if floor is not None:
            spreads = solver.fairness(problem, pairs)
            assert spreads["nights_spread"] >= floor.nights
            assert spreads["weekend_spread"] >= floor.weekends
            assert max(minutes) - min(minutes) >= floor.minutes


def _days(count: int, **kw: object) -> tuple[Shift, ...]:
    return tuple(
        Shift(id=f"d{d}", post="east", start=at(d, 8), end=at(d, 16), **kw)  # type: ignore[arg-type]
        for d in range(count)
    )


def test_spread_bounds_by_hand() -> None:
    # Seven day shifts (Mon–Sun, 8 h, one person each) for three volunteers: someone works
    # at least 3 of them (24 h), someone at most 2 (16 h); two weekend shifts for three
    # people: someone has one, someone none; no nights at all.
    three = tuple(Volunteer(id=f"v{i}") for i in range(3))
    problem = Problem(shifts=_days(7), volunteers=three)
    assert solver.spread_bounds(problem, QUANTITIES["minutes"]) == (3 * 480, 2 * 480)
    assert solver.spread_bounds(problem, QUANTITIES["weekend"]) == (1, 0)
    assert solver.spread_bounds(problem, QUANTITIES["nights"]) == (0, 0)
    # One of them free on no day: the other two carry the seven (4 for one of them) and the
    # least loaded works nothing. With two people missing (holes), five are carried: 3.
    limited = (*three[:2], Volunteer(id="v2", available=frozenset()))
    problem = Problem(shifts=_days(7), volunteers=limited)
    assert solver.spread_bounds(problem, QUANTITIES["minutes"]) == (4 * 480, 0)
    assert solver.spread_bounds(problem, QUANTITIES["minutes"], 2) == (3 * 480, 0)


def test_the_minutes_spread_bound_sees_how_shift_lengths_add_up() -> None:
    # Two volunteers, Monday and Tuesday 8 h, Wednesday 6 h, one person each: 22 h, 11 h
    # on average, but the closest split is 8 + 6 against 8, a spread of 6 h. The
    # pigeonhole sees only the average; the count relaxation proves the 6 h, and the
    # solver then proves its roster optimal.
    shifts = (*_days(2), Shift(id="w", post="east", start=at(2, 8), end=at(2, 14)))
    problem = Problem(shifts=shifts, volunteers=(Volunteer(id="a"), Volunteer(id="b")))
    high, low = solver.spread_bounds(problem, QUANTITIES["minutes"])
    assert high - low < 360
    assert bounds.minutes_spread_bound(problem) == 360
    result = solver.solve(problem, time_limit=10)
    assert result.status == "optimal" and result.hours_spread == 6
    # With someone's weekly hours too few for an 8 h shift, the only split left is 16
    # against 6.
    capped = replace(problem, volunteers=(Volunteer(id="a", max_hours_week=6), Volunteer(id="b")))
    assert bounds.minutes_spread_bound(capped) == 600


def test_the_reference_week_cannot_spread_hours_less_than_eight() -> None:
    # 21 h each on average, but 8 h gate, 6 h sampling and 3 h patrol shifts do not add up
    # to 21 h for anyone with a gate shift: no roster spreads hours less than 8 h.
    week = scenarios.reference_week()
    assert bounds.minutes_spread_bound(week) == 480
    # It does not apply to a repair (the current roster and the frozen past) or with holes.
    assert bounds.minutes_spread_bound(week, missing=1) == 0
    assert bounds.floors(replace(week, current=frozenset({("x", "y")}))) is None
    # A week computed ahead (as the roster page does) has "now" as its frozen_before but no
    # shift before it: the bounds apply. With a shift already begun they do not.
    first = min(s.start for s in week.shifts)
    assert bounds.minutes_spread_bound(replace(week, frozen_before=first)) == 480
    assert bounds.minutes_spread_bound(replace(week, frozen_before=first + timedelta(hours=1))) == 0


def test_the_reference_weeks_objective_floor() -> None:
    # One night and one weekend shift of spread, 8 h of hours, and at least 540 for posts
    # and preferences with everyone's hours in 16–24 h, nights 0–1, weekend shifts 0–1:
    # 3,000 + 1,500 + 4,800 + 540. Spreads above the floors cost more (the next, 9 h of
    # hours, 600 more, with the posts and preferences of 9 h bands).
    week = scenarios.reference_week()
    floor = bounds.floors(week, seconds=30)
    assert floor is not None
    assert (floor.nights, floor.weekends, floor.minutes) == (1, 1, 480)
    assert floor.hour_lows == (960,)
    assert floor.objective == 9_840
    greedy = solver.greedy(week)
    assert solver.cost(week, greedy)[1] > floor.objective


def test_the_reference_week_is_proven_optimal() -> None:
    # The floor's plan puts each volunteer at the posts where a roster of the floor's cost
    # could be; the search finds one there, and the floor proves it optimal.
    week = scenarios.reference_week()
    floor = bounds.floors(week, seconds=30)
    assert floor is not None and floor.band is not None
    plan = bounds.plan(week, floor, seconds=30)
    assert set(plan) == {v.id for v in week.volunteers}
    for volunteer in week.volunteers:  # every plan is within the band of the floor
        minutes = sum(kind[1] * n for kind, n in plan[volunteer.id].items())
        assert floor.band.minutes[0] <= minutes <= floor.band.minutes[1]
    result = solver.solve(week, time_limit=60, gap_limit=0.0)
    assert result.status == "optimal" and result.gap == 0
    assert result.objective == floor.objective == solver.cost(week, result.assignments)[1]
    assert solver.check(week, result.assignments) == [] and result.holes == []
    assert (result.hours_spread, result.nights_spread, result.weekend_spread) == (8, 1, 1)


def test_a_tight_bound_is_proven_optimal_with_gap_zero() -> None:
    # Six day shifts Mon–Sat for three volunteers: two each (hours spread 0), Saturday's
    # shift makes a weekend spread of 1 whatever the roster; each works at one post.
    problem = Problem(shifts=_days(6), volunteers=tuple(Volunteer(id=f"v{i}") for i in range(3)))
    result = solver.solve(problem, time_limit=10)
    assert result.status == "optimal" and result.gap == 0
    assert (result.hours_spread, result.nights_spread, result.weekend_spread) == (0, 0, 1)
    assert result.objective == solver.W_WEEKEND + 3 * solver.W_POST


def test_uneven_availability_bound_claims_no_more_than_the_optimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Four nights in a row, one person each. Only a and b can work nights, b only the first,
    # and nobody more than three in a row: a works nights 2–4 and the spread of nights is
    # 3, above the pigeonhole's 2 (four nights shared by two). A medical day shift nobody
    # can take is a hole; c and d only work the day shifts.
    nights = tuple(Shift(id=f"n{d}", post="gate", start=at(d, 0), end=at(d, 8)) for d in range(4))
    days = tuple(Shift(id=f"d{d}", post="gate", start=at(d, 12), end=at(d, 20)) for d in range(4))
    sampling = Shift(
        id="s0", post="sampling", start=at(0, 8), end=at(0, 11), skills=frozenset({"medical"})
    )
    shifts = (*nights, *days, sampling)
    day_ids = frozenset(s.id for s in days)
    people = (
        Volunteer(id="a", available=frozenset(s.id for s in nights)),
        Volunteer(id="b", available=frozenset({"n0"}) | day_ids),
        Volunteer(id="c", available=day_ids),
        Volunteer(id="d", available=day_ids),
    )
    problem = Problem(shifts=shifts, volunteers=people)
    assert solver.spread_bounds(problem, QUANTITIES["nights"], 1) == (2, 0)
    bounded = solver.solve(problem, time_limit=10)
    monkeypatch.setattr(solver, "BOUNDS", False)
    plain = solver.solve(problem, time_limit=10)
    assert bounded.status == plain.status == "optimal" and bounded.gap == 0
    assert [h.shift for h in bounded.holes] == ["s0"]
    assert bounded.nights_spread == plain.nights_spread == 3
    assert bounded.objective == plain.objective
    _assert_bounds_hold(problem, set(bounded.assignments))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_the_bounds_hold_for_every_roster_and_never_change_the_optimum(problem: Problem) -> None:
    # Valid for any roster that keeps the rules (the greedy one, the solver's), and the
    # optimum proven with the bounds is the optimum proven without them.
    _assert_bounds_hold(problem, set(solver.greedy(problem)))
    bounded = solver.solve(problem, time_limit=10)
    _assert_bounds_hold(problem, set(bounded.assignments))
    solver.BOUNDS = False
    try:
        plain = solver.solve(problem, time_limit=10)
    finally:
        solver.BOUNDS = True
    _assert_bounds_hold(problem, set(plain.assignments))
    if bounded.status == plain.status == "optimal":
        assert solver.cost(problem, bounded.assignments) == solver.cost(problem, plain.assignments)
