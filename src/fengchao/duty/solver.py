"""The roster solver (排班): plain dataclasses in, assignments and holes out (OR-Tools CP-SAT).

No database and no web here: ``service.py`` loads the register into a :class:`Problem`,
calls :func:`solve` (or :func:`repair` after a cancellation) and saves the result.

Definitions every rule below relies on (the CLI's JSON interface documents the same):

* a **day** is the calendar day a shift starts on;
* a **night shift** is one that covers 02:00 (some 02:00 lies in ``[start, end)``);
* a **morning shift** is a shift that is not a night shift and starts in 04:00–11:59;
* a **week** is any 7 consecutive days (every window is checked, so the limit holds for
  calendar weeks and for weeks counted from the first day alike).

Hard rules (never broken in a returned roster): skills, availability, at most ``max``
people on a shift, no overlap, at most ``max_shifts_per_day`` shifts a day, at least
``min_rest_hours`` between the end of one shift and the start of the next, no morning
shift on the day after a night shift starts nor within 24 h of its end, at most
``max_hours_week`` in any week, at most ``max_consecutive_nights`` nights on consecutive
days. Minimum coverage is soft *with holes*: the solver first minimises the number of
missing people, so it always returns the best roster it can, and each shift left below its
minimum is reported as a :class:`Hole` with the reason. Then, with the holes fixed, it
minimises (in this order of weight) changes to the current roster (repair only), the
spread (max − min) of night shifts, of total hours and of weekend shifts, the posts per
person (the same post for the same person) and unmet preferences.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

NIGHT_HOUR = dtime(2, 0)
MORNING_FROM, MORNING_TO = dtime(4, 0), dtime(12, 0)

# Weights of the second phase (the holes are settled before it, in the first phase).
W_CHANGE = 1_000_000  # one assignment changed in a repair
W_EXTRA = 50_000  # one person above a shift's minimum
W_NIGHTS = 3_000  # one night of spread
W_WEEKEND = 1_500  # one weekend shift of spread
W_HOURS = 10  # one minute of spread of total hours (8 h = 4,800)
W_POST = 50  # one more post for a person (a tie-breaker: 1 h of spread weighs 12)
W_PREF = 20  # one step of preference (−2 … +2 per shift, or a preferred post)


class ProblemError(ValueError):
    """The problem contradicts itself; ``problems`` names every field and what is wrong."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


@dataclass(frozen=True)
class Shift:
    """One shift of one post (班次), e.g. the east gate's night 00:00–08:00 on Monday."""

    id: str
    post: str
    start: datetime
    end: datetime
    min: int = 1
    max: int = 1
    skills: frozenset[str] = frozenset()

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def day(self) -> date:
        return self.start.date()

    @property
    def is_night(self) -> bool:
        first = datetime.combine(self.start.date(), NIGHT_HOUR)
        if first < self.start:
            first += timedelta(days=1)
        return first < self.end

    @property
    def is_morning(self) -> bool:
        return not self.is_night and MORNING_FROM <= self.start.time() < MORNING_TO

    @property
    def is_weekend(self) -> bool:
        return self.start.weekday() >= 5


@dataclass(frozen=True)
class Volunteer:
    """A volunteer as the solver sees them: skills (only valid certificates), availability.

    ``available`` is the set of shift ids the volunteer can work; ``None`` means every
    shift. ``preferences`` maps a shift id to −2 (rather not) … +2 (gladly);
    ``preferred_posts`` are posts they like to serve at.
    """

    id: str
    skills: frozenset[str] = frozenset()
    available: frozenset[str] | None = None
    max_hours_week: float = 40.0
    preferences: dict[str, int] = field(default_factory=dict)
    preferred_posts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rules:
    """Limits that hold for everyone (per-person weekly hours live on the volunteer)."""

    min_rest_hours: float = 10.0
    max_shifts_per_day: int = 1
    max_consecutive_nights: int = 3


@dataclass(frozen=True)
class Problem:
    """Shifts, volunteers and rules; for a repair also the current roster and the frozen past.

    ``current`` is the roster in force (pairs of shift id, volunteer id). Shifts that start
    before ``frozen_before`` keep their current people whatever the cost.
    """

    shifts: tuple[Shift, ...]
    volunteers: tuple[Volunteer, ...]
    rules: Rules = Rules()
    current: frozenset[tuple[str, str]] = frozenset()
    frozen_before: datetime | None = None


@dataclass(frozen=True)
class Hole:
    """A shift left below its minimum: how many are missing and why (``code`` + text)."""

    shift: str
    missing: int
    code: str
    reason: str
    # For rewording the reason in another language: "skill", "available" (people with the
    # skill who are free then) and, for busy people, a count per blocking reason.
    detail: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass
class Result:
    """The roster found, its holes, and how good it is.

    ``gap`` is the relative optimality gap of the fairness phase (0 when proven optimal);
    ``added``/``removed`` compare with ``Problem.current`` (the repair diff).
    """

    assignments: list[tuple[str, str]]
    holes: list[Hole]
    status: str
    gap: float
    seconds: float
    objective: float
    hours_spread: float
    nights_spread: int
    weekend_spread: int
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # CP-SAT's own effort (both phases): branches and deterministic time, which unlike
    # ``seconds`` do not grow when the machine is loaded.
    branches: int = 0
    deterministic_seconds: float = 0.0

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.removed)


# --------------------------------------------------------------------------- validation


def validate(problem: Problem) -> list[str]:
    """Raise :class:`ProblemError` naming every contradiction; return softer warnings."""
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []
    rules = problem.rules
    if rules.min_rest_hours < 0:
        errors.append(("rules.min_rest_hours", "must not be negative"))
    if rules.max_shifts_per_day < 1:
        errors.append(("rules.max_shifts_per_day", "must be at least 1"))
    if rules.max_consecutive_nights < 0:
        errors.append(("rules.max_consecutive_nights", "must not be negative"))
    ids: set[str] = set()
    for shift in problem.shifts:
        where = f"shifts[{shift.id}]"
        if shift.id in ids:
            errors.append((where, "duplicate shift id"))
        ids.add(shift.id)
        if shift.end <= shift.start:
            errors.append((where, f"ends ({shift.end:%Y-%m-%dT%H:%M}) before it starts"))
        if shift.min < 0:
            errors.append((where + ".min", "must not be negative"))
        if shift.max < shift.min:
            errors.append((where, f"min {shift.min} is more than max {shift.max}"))
    if rules.max_shifts_per_day > 1 and problem.shifts:
        shortest = min(s.minutes for s in problem.shifts) / 60
        if (
            rules.max_shifts_per_day * shortest
            + (rules.max_shifts_per_day - 1) * (rules.min_rest_hours)
            > 24 + shortest
        ):
            warnings.append(
                f"max_shifts_per_day {rules.max_shifts_per_day} cannot be reached with "
                f"min_rest_hours {rules.min_rest_hours:g}: nobody will work that often"
            )
    people: set[str] = set()
    for volunteer in problem.volunteers:
        where = f"volunteers[{volunteer.id}]"
        if volunteer.id in people:
            errors.append((where, "duplicate volunteer id"))
        people.add(volunteer.id)
        if volunteer.max_hours_week < 0:
            errors.append((where + ".max_hours_week", "must not be negative"))
        unknown = sorted((volunteer.available or frozenset()) - ids)
        if unknown:  # harmless (availability for shifts of another problem): said, not refused
            warnings.append(f"{where}.available names unknown shifts: {', '.join(unknown[:5])}")
        if volunteer.available is not None and not volunteer.available:
            warnings.append(f"volunteer {volunteer.id} has no availability")
    for shift_id, person in sorted(problem.current):
        if shift_id not in ids or person not in people:
            errors.append(("current", f"unknown pair {shift_id} / {person}"))
    for shift in problem.shifts:
        if shift.min and shift.minutes / 60 > max(
            (v.max_hours_week for v in problem.volunteers), default=0
        ):
            warnings.append(f"shift {shift.id} is longer than anyone's max_hours_week")
    if errors:
        raise ProblemError(errors)
    return warnings


# --------------------------------------------------------------------------- the rules


def _conflict(a: Shift, b: Shift, rules: Rules) -> bool:
    """True when one person may not work both ``a`` and ``b`` (overlap, rest, night→morning)."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.start < first.end + timedelta(hours=rules.min_rest_hours):
        return True
    return _night_then_morning(first, second)


def _night_then_morning(first: Shift, second: Shift) -> bool:
    if not (first.is_night and second.is_morning) or second.start < first.end:
        return False
    return second.day <= first.day + timedelta(days=1) or (
        second.start - first.end < timedelta(hours=24)
    )


def eligible(volunteer: Volunteer, shift: Shift) -> bool:
    """Skills and availability: may this person be put on this shift at all?"""
    if not shift.skills <= volunteer.skills:
        return False
    return volunteer.available is None or shift.id in volunteer.available


def check(problem: Problem, assignments: Iterable[tuple[str, str]]) -> list[str]:
    """Every hard rule the roster breaks, in words (empty when it keeps all of them).

    Written independently of the model so that the tests can trust it; assignments in
    frozen shifts are exempt (they were decided before).
    """
    shifts = {s.id: s for s in problem.shifts}
    people = {v.id: v for v in problem.volunteers}
    rules = problem.rules
    broken: list[str] = []
    per_shift: dict[str, int] = defaultdict(int)
    mine: dict[str, list[Shift]] = defaultdict(list)
    pairs = list(assignments)
    if len(set(pairs)) != len(pairs):
        broken.append("an assignment is listed twice")
    for shift_id, person in set(pairs):
        shift, volunteer = shifts[shift_id], people[person]
        per_shift[shift_id] += 1
        mine[person].append(shift)
        if _frozen(problem, shift):
            continue
        if not eligible(volunteer, shift):
            broken.append(f"{person} is not eligible for {shift_id}")
    for shift_id, count in per_shift.items():
        if count > shifts[shift_id].max and not _frozen(problem, shifts[shift_id]):
            broken.append(f"{shift_id} has {count} people, more than its max")
    for person, worked in mine.items():
        worked.sort(key=lambda s: s.start)
        volunteer = people[person]
        for i, a in enumerate(worked):
            for b in worked[i + 1 :]:
                if _frozen(problem, a) and _frozen(problem, b):
                    continue
                if _conflict(a, b, rules):
                    broken.append(f"{person}: {a.id} and {b.id} too close (rest/overlap/night)")
        per_day: dict[date, int] = defaultdict(int)
        for s in worked:
            per_day[s.day] += 1
        for day, count in per_day.items():
            if count > rules.max_shifts_per_day:
                broken.append(f"{person}: {count} shifts on {day}")
        for day in per_day:
            window = [s for s in worked if day <= s.day < day + timedelta(days=7)]
            hours = sum(s.minutes for s in window) / 60
            if hours > volunteer.max_hours_week + 1e-9:
                broken.append(f"{person}: {hours:g} h in the week from {day}")
        nights = sorted({s.day for s in worked if s.is_night})
        run = 0
        for i, day in enumerate(nights):
            run = run + 1 if i and nights[i - 1] == day - timedelta(days=1) else 1
            if run > rules.max_consecutive_nights:
                broken.append(f"{person}: {run} nights in a row up to {day}")
    return broken


def _frozen(problem: Problem, shift: Shift) -> bool:
    return problem.frozen_before is not None and shift.start < problem.frozen_before


def fairness(problem: Problem, assignments: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Spreads (max − min over every volunteer) of hours, nights and weekend shifts."""
    shifts = {s.id: s for s in problem.shifts}
    hours = dict.fromkeys((v.id for v in problem.volunteers), 0.0)
    nights = dict.fromkeys(hours, 0)
    weekends = dict.fromkeys(hours, 0)
    for shift_id, person in assignments:
        shift = shifts[shift_id]
        hours[person] += shift.minutes / 60
        nights[person] += shift.is_night
        weekends[person] += shift.is_weekend
    if not hours:
        return {"hours_spread": 0.0, "nights_spread": 0, "weekend_spread": 0}
    return {
        "hours_spread": round(max(hours.values()) - min(hours.values()), 2),
        "nights_spread": max(nights.values()) - min(nights.values()),
        "weekend_spread": max(weekends.values()) - min(weekends.values()),
    }


def cost(problem: Problem, assignments: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """(missing people, second-phase objective) of any roster, as the solver counts them."""
    pairs = set(assignments)
    shifts = {s.id: s for s in problem.shifts}
    counts: dict[str, int] = defaultdict(int)
    for shift_id, _ in pairs:
        counts[shift_id] += 1
    missing = sum(max(0, s.min - counts[s.id]) for s in problem.shifts if not _frozen(problem, s))
    spread = fairness(problem, pairs)
    people = {v.id: v for v in problem.volunteers}
    posts: dict[str, set[str]] = defaultdict(set)
    prefs = 0
    for shift_id, person in pairs:
        shift = shifts[shift_id]
        posts[person].add(shift.post)
        prefs += _preference(people[person], shift)
    extra = sum(max(0, counts[s.id] - s.min) for s in problem.shifts if not _frozen(problem, s))
    changes = 0
    if problem.current:
        movable = {p for p in pairs | problem.current if not _frozen(problem, shifts[p[0]])}
        changes = len(movable & (pairs ^ problem.current))
    value = (
        W_CHANGE * changes
        + W_EXTRA * extra
        + W_NIGHTS * int(spread["nights_spread"])
        + W_WEEKEND * int(spread["weekend_spread"])
        + W_HOURS * _minutes_spread(problem, pairs)
        + W_POST * sum(len(p) for p in posts.values())
        - W_PREF * prefs
    )
    return missing, value


def _minutes_spread(problem: Problem, pairs: set[tuple[str, str]]) -> int:
    shifts = {s.id: s for s in problem.shifts}
    minutes = dict.fromkeys((v.id for v in problem.volunteers), 0)
    for shift_id, person in pairs:
        minutes[person] += shifts[shift_id].minutes
    return max(minutes.values()) - min(minutes.values()) if minutes else 0


def _minutes(shift: Shift) -> int:
    return shift.minutes


def _night(shift: Shift) -> int:
    return int(shift.is_night)


def _weekend(shift: Shift) -> int:
    return int(shift.is_weekend)


def _preference(volunteer: Volunteer, shift: Shift) -> int:
    return volunteer.preferences.get(shift.id, 0) + (shift.post in volunteer.preferred_posts)


# --------------------------------------------------------------------------- bounds

# Add the redundant bounds below to the model (off only in the tests that check that they
# never change the optimum).
BOUNDS = True


def spread_bounds(
    problem: Problem, quantity: Callable[[Shift], int], missing: int = 0
) -> tuple[int, int]:
    """Pigeonhole bounds on one fairness term: ``(high, low)``.

    Each volunteer's load is the sum of ``quantity`` over their shifts (minutes, 1 for a
    night, 1 for a weekend shift). In every roster that keeps the hard rules with at most
    ``missing`` people missing:

    * the largest load is at least ``high``. The demand (each movable shift's minimum
      times its quantity, less the ``missing`` largest quantities a hole can take away,
      plus the frozen shifts' current people) is carried by the volunteers who can take
      any such shift, so one of them carries at least their average; loads are multiples
      of ``unit`` (the gcd of the quantities), so the average is rounded up to one;
    * if no movable shift has anyone above its minimum, the smallest load is at most
      ``low``: the total is then at most the minimum demand (plus the frozen shifts),
      shared by every volunteer, so someone carries at most the average rounded down to a
      unit (0 when someone can take none of these shifts).

    Both hold for every roster, so adding them to the model never cuts off a roster; they
    only let CP-SAT prove a bound its linear relaxation does not see.
    """
    carriers: set[str] = set()
    demand: list[tuple[int, int]] = []  # (quantity, minimum) of each movable shift
    frozen_load = 0
    unit = 0
    for shift in problem.shifts:
        value = quantity(shift)
        if value <= 0:
            continue
        unit = math.gcd(unit, value)
        if _frozen(problem, shift):
            for shift_id, person in problem.current:
                if shift_id == shift.id:
                    frozen_load += value
                    carriers.add(person)
            continue
        demand.append((value, shift.min))
        carriers.update(v.id for v in problem.volunteers if eligible(v, shift))
    if not unit or not problem.volunteers:
        return 0, 0
    most = sum(value * low for value, low in demand) + frozen_load
    lost, left = 0, missing
    for value, low in sorted(demand, reverse=True):
        if left <= 0:
            break
        take = min(left, low)
        lost += take * value
        left -= take
    least = max(0, most - lost)
    people = {v.id for v in problem.volunteers}
    carriers &= people
    high = unit * -(-least // (unit * len(carriers))) if carriers else 0
    low = 0 if carriers != people else unit * (most // (unit * len(people)))
    return high, low


# --------------------------------------------------------------------------- the model


def solve(
    problem: Problem,
    *,
    time_limit: float = 10.0,
    gap_limit: float = 0.0,
    workers: int = 2,
    hint: Iterable[tuple[str, str]] | None = None,
) -> Result:
    """The best roster found within ``time_limit`` seconds.

    Raises :class:`ProblemError` for contradictory input. ``gap_limit`` stops the fairness
    phase early once the relative gap is below it (0.01 = 1 %). A large problem whose
    volunteers fall into separate pools (a street office: each community's volunteers serve
    its own posts) is solved pool by pool, each with a share of the time; its fairness is
    then fair within each pool and the gap reported is the largest pool's.
    """
    # Loading OR-Tools (≈1.5 s, once per process) is not the solver's time.
    from ortools.sat.python import cp_model  # noqa: F401

    started = time.perf_counter()
    warnings = validate(problem)
    pools = _pools(problem)
    pairs = sum(len(p.shifts) * len(p.volunteers) for p in pools)
    if len(pools) < 2 or pairs < DECOMPOSE_FROM:
        return _solve_one(problem, time_limit, gap_limit, workers, hint, warnings, started)
    hint_pairs = set(hint) if hint is not None else None
    parts = []
    for pool in pools:
        left = time_limit - (time.perf_counter() - started)
        share = left * len(pool.shifts) * len(pool.volunteers) / max(1, pairs)
        pairs -= len(pool.shifts) * len(pool.volunteers)
        parts.append(_solve_one(pool, max(0.2, share), gap_limit, workers, hint_pairs, [], started))
    chosen = sorted(p for part in parts for p in part.assignments)
    spread = fairness(problem, chosen)
    worst = min(parts, key=lambda r: ("optimal", "feasible").index(r.status))
    return Result(
        assignments=chosen,
        holes=explain_holes(problem, chosen),
        status=worst.status,
        gap=max(r.gap for r in parts),
        seconds=round(time.perf_counter() - started, 3),
        objective=sum(r.objective for r in parts),
        hours_spread=float(spread["hours_spread"]),
        nights_spread=int(spread["nights_spread"]),
        weekend_spread=int(spread["weekend_spread"]),
        added=sorted(set(chosen) - problem.current) if problem.current else [],
        removed=sorted(problem.current - set(chosen)) if problem.current else [],
        warnings=warnings,
        branches=sum(r.branches for r in parts),
        deterministic_seconds=round(sum(r.deterministic_seconds for r in parts), 3),
    )


DECOMPOSE_FROM = 20_000  # shift × volunteer pairs; smaller problems are solved whole


def _add_plan(
    model: Any,
    plan: dict[str, dict[Any, int]],
    x: dict[tuple[int, int], Any],
    shifts: list[Shift],
    people: list[Volunteer],
) -> Any:
    """A literal that, when true, keeps each volunteer to the posts of their plan (None
    without a plan). Only the posts: the plan's counts by kind do not see the days (rest
    between shifts, one a day), so a roster with exactly those counts may not exist; the
    posts leave the days to the search."""
    if not plan:
        return None
    planned = model.new_bool_var("planned")
    for (si, vi), var in x.items():
        if shifts[si].post not in {kind[0] for kind in plan.get(people[vi].id, {})}:
            model.add(var == 0).only_enforce_if(planned)
    return planned


def _hint_found(
    model: Any, solver: Any, x: dict[tuple[int, int], Any], shifts: list[Shift], frozen: set[str]
) -> None:
    """The roster the last search found as the next search's starting point."""
    model.clear_hints()
    for (si, _vi), var in x.items():
        if shifts[si].id not in frozen:
            model.add_hint(var, bool(solver.value(var)))


def _left(time_limit: float, began: float) -> float:
    return max(0.1, time_limit - (time.perf_counter() - began))


def _gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(1.0, abs(objective))


def _roster(
    solver: Any, x: dict[tuple[int, int], Any], shifts: list[Shift], people: list[Volunteer]
) -> list[tuple[str, str]]:
    return sorted(
        (shifts[si].id, people[vi].id) for (si, vi), var in x.items() if solver.value(var)
    )


def _pools(problem: Problem) -> list[Problem]:
    """The problem split into independent pools (connected by eligibility or the current
    roster); volunteers who can work nowhere join no pool."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for shift in problem.shifts:
        find("s" + shift.id)
    for volunteer in problem.volunteers:
        for shift in problem.shifts:
            if eligible(volunteer, shift):
                parent[find("v" + volunteer.id)] = find("s" + shift.id)
    for shift_id, person in problem.current:
        parent[find("v" + person)] = find("s" + shift_id)
    groups: dict[str, tuple[list[Shift], list[Volunteer]]] = defaultdict(lambda: ([], []))
    for shift in problem.shifts:
        groups[find("s" + shift.id)][0].append(shift)
    for volunteer in problem.volunteers:
        if "v" + volunteer.id in parent:
            groups[find("v" + volunteer.id)][1].append(volunteer)
    pools = []
    for shifts, people in groups.values():
        ids = {s.id for s in shifts}
        pools.append(
            replace(
                problem,
                shifts=tuple(shifts),
                volunteers=tuple(people),
                current=frozenset(p for p in problem.current if p[0] in ids),
            )
        )
    return pools


def _solve_one(
    problem: Problem,
    time_limit: float,
    gap_limit: float,
    workers: int,
    hint: Iterable[tuple[str, str]] | None,
    warnings: list[str],
    started: float,
) -> Result:
    from ortools.sat.python import cp_model

    from fengchao.duty import bounds  # (it builds on this module's definitions)

    began = time.perf_counter()
    rules = problem.rules
    shifts = list(problem.shifts)
    people = list(problem.volunteers)
    frozen = {s.id for s in shifts if _frozen(problem, s)}
    model = cp_model.CpModel()

    x: dict[tuple[int, int], cp_model.IntVar] = {}
    for si, shift in enumerate(shifts):
        for vi, volunteer in enumerate(people):
            if shift.id in frozen:
                if (shift.id, volunteer.id) in problem.current:
                    x[si, vi] = model.new_bool_var(f"x{si}_{vi}")
                    model.add(x[si, vi] == 1)
            elif eligible(volunteer, shift):
                x[si, vi] = model.new_bool_var(f"x{si}_{vi}")
    by_person: dict[int, list[int]] = defaultdict(list)
    by_shift: dict[int, list[int]] = defaultdict(list)
    for si, vi in x:
        by_person[vi].append(si)
        by_shift[si].append(vi)

    # Coverage: at most max; below min only with a hole.
    missing: list[cp_model.IntVar] = []
    extra: list[cp_model.IntVar] = []
    hole_of: dict[int, tuple[cp_model.IntVar, cp_model.IntVar]] = {}
    for si, shift in enumerate(shifts):
        staffed = sum(x[si, vi] for vi in by_shift[si])
        if shift.id in frozen:
            continue
        model.add(staffed <= shift.max)
        hole = model.new_int_var(0, shift.min, f"hole{si}")
        model.add(staffed + hole >= shift.min)
        missing.append(hole)
        over = model.new_int_var(0, max(0, shift.max - shift.min), f"over{si}")
        model.add(staffed - shift.min <= over)
        extra.append(over)
        hole_of[si] = (hole, over)

    # Per person: conflicts as cliques. Pairwise conflict (overlap or rest) is an interval
    # overlap of [start, end + rest), so every maximal clique contains some shift's start.
    rest = timedelta(hours=rules.min_rest_hours)
    minutes_of: dict[int, cp_model.LinearExprT] = {}
    nights_of: dict[int, cp_model.LinearExprT] = {}
    weekends_of: dict[int, cp_model.LinearExprT] = {}
    posts_of: dict[int, list[cp_model.IntVar]] = {}
    for vi, volunteer in enumerate(people):
        mine = sorted(by_person[vi], key=lambda si: shifts[si].start)
        if not mine:
            minutes_of[vi] = nights_of[vi] = weekends_of[vi] = 0
            posts_of[vi] = []
            continue

        def lit(si: int, vi: int = vi) -> cp_model.IntVar:
            return x[si, vi]

        movable = any(shifts[si].id not in frozen for si in mine)
        seen: set[frozenset[int]] = set()
        for si in mine:
            t = shifts[si].start
            clique = frozenset(sj for sj in mine if shifts[sj].start <= t < shifts[sj].end + rest)
            if len(clique) > 1 and clique not in seen and movable:
                seen.add(clique)
                if any(shifts[s].id not in frozen for s in clique):
                    model.add_at_most_one(lit(s) for s in clique)
        # Night then morning (pairs; few per person).
        nights = [si for si in mine if shifts[si].is_night]
        mornings = [si for si in mine if shifts[si].is_morning]
        for a in nights:
            for b in mornings:
                if _night_then_morning(shifts[a], shifts[b]) and not (
                    shifts[a].id in frozen and shifts[b].id in frozen
                ):
                    model.add_bool_or([lit(a).Not(), lit(b).Not()])
        # Per day, per week, consecutive nights.
        days: dict[date, list[int]] = defaultdict(list)
        for si in mine:
            days[shifts[si].day].append(si)
        for group in days.values():
            if len(group) > rules.max_shifts_per_day:
                model.add(sum(lit(s) for s in group) <= rules.max_shifts_per_day)
        cap = math.floor(volunteer.max_hours_week * 60 + 1e-6)
        for day in days:
            window = [si for si in mine if day <= shifts[si].day < day + timedelta(days=7)]
            if sum(shifts[s].minutes for s in window) > cap:
                model.add(sum(shifts[s].minutes * lit(s) for s in window) <= cap)
        n = rules.max_consecutive_nights
        night_days: dict[date, list[int]] = defaultdict(list)
        for si in nights:
            night_days[shifts[si].day].append(si)
        for day in night_days:
            span = [day + timedelta(days=k) for k in range(n + 1)]
            if all(d in night_days for d in span):
                flags = []
                for d in span:
                    if len(night_days[d]) == 1:
                        flags.append(lit(night_days[d][0]))
                    else:
                        flag = model.new_bool_var("")
                        model.add_max_equality(flag, [lit(s) for s in night_days[d]])
                        flags.append(flag)
                model.add(sum(flags) <= n)
        minutes_of[vi] = cp_model.LinearExpr.weighted_sum(
            [lit(s) for s in mine], [shifts[s].minutes for s in mine]
        )
        nights_of[vi] = cp_model.LinearExpr.sum([lit(s) for s in nights])
        weekends_of[vi] = cp_model.LinearExpr.sum([lit(s) for s in mine if shifts[s].is_weekend])
        posts: dict[str, list[int]] = defaultdict(list)
        for si in mine:
            posts[shifts[si].post].append(si)
        flags = []
        for group in posts.values():
            flag = model.new_bool_var("")
            for s in group:
                model.add_implication(lit(s), flag)
            flags.append(flag)
        posts_of[vi] = flags

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = max(1, workers)
    total_missing = sum(missing) if missing else 0
    # Start from the current roster (repair) or from the greedy one: CP-SAT's local search
    # then only has to improve a fair roster, not find one.
    if hint is not None:
        hint_pairs = set(hint)
    elif problem.current:
        hint_pairs = set(problem.current)
    else:
        hint_pairs = set(greedy(problem))
    hint_valid = bool(hint_pairs) and not check(problem, hint_pairs)
    if hint_pairs:
        for (si, vi), var in x.items():
            if shifts[si].id not in frozen:
                model.add_hint(var, (shifts[si].id, people[vi].id) in hint_pairs)
        staffed_hint: dict[str, int] = defaultdict(int)
        for shift_id, _ in hint_pairs:
            staffed_hint[shift_id] += 1
        for si, (hole, over) in hole_of.items():
            n = staffed_hint[shifts[si].id]
            model.add_hint(hole, max(0, shifts[si].min - n))
            model.add_hint(over, max(0, n - shifts[si].min))
    status_names = {
        cp_model.OPTIMAL: "optimal",
        cp_model.FEASIBLE: "feasible",
        cp_model.INFEASIBLE: "infeasible",
        cp_model.MODEL_INVALID: "invalid",
        cp_model.UNKNOWN: "unknown",
    }
    # Phase 1: as few missing people as possible (lexicographically first).
    phase1_gap = 0.0
    effort: tuple[int, float] = (0, 0.0)
    if missing and cost(problem, hint_pairs)[0] > 0:  # a hint without holes is optimal
        # Fewest holes first; among rosters with as few, the one closest to the hint (the
        # greedy roster is fair already: closing its holes should not undo that).
        deviations = [
            (1 - var if (shifts[si].id, people[vi].id) in hint_pairs else var)
            for (si, vi), var in x.items()
            if shifts[si].id not in frozen
        ]
        scale = len(deviations) + 1
        model.minimize(scale * total_missing + sum(deviations))
        solver.parameters.max_time_in_seconds = max(0.2, time_limit * 0.4)
        status = solver.solve(model)
        effort = (solver.num_branches, solver.deterministic_time)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            best_missing = round(solver.value(total_missing))
            lower = max(0, math.floor(solver.best_objective_bound / scale))
            phase1_gap = (best_missing - lower) / max(1, best_missing)
            fallback = [
                (shifts[si].id, people[vi].id) for (si, vi), v in x.items() if solver.value(v)
            ]
            _hint_found(model, solver, x, shifts, frozen)
        elif hint_valid:  # out of time: keep the hint's holes
            best_missing, phase1_gap = cost(problem, hint_pairs)[0], 1.0
            fallback = sorted(hint_pairs)
        else:
            raise ProblemError(
                [("problem", f"no roster keeps the frozen shifts ({status_names[status]})")]
            )
        model.add(total_missing <= best_missing)
    elif missing:
        model.add(total_missing <= 0)
        fallback = sorted(hint_pairs) if hint_valid else []
        best_missing = 0
    else:
        fallback = []
        best_missing = 0
    # Phase 2 with the holes settled: changes, fairness, posts, preferences.
    terms: list[cp_model.LinearExprT] = []
    # Proven floors of the spreads and of the whole objective (bounds.floors; None for a
    # repair or with holes).
    floor = (
        bounds.floors(problem, seconds=time_limit / 5)
        if BOUNDS and people and best_missing == 0
        else None
    )
    lowest: dict[str, cp_model.IntVar] = {}
    highest: dict[str, cp_model.IntVar] = {}
    if people:
        spreads = []
        # Above a shift's minimum anywhere (costly, W_EXTRA): the "low" bounds then lapse.
        surplus = sum(extra) if extra else 0
        for name, weight, values, top, quantity in (
            ("hours", W_HOURS, minutes_of, sum(s.minutes for s in shifts), _minutes),
            ("nights", W_NIGHTS, nights_of, len(shifts), _night),
            ("weekend", W_WEEKEND, weekends_of, len(shifts), _weekend),
        ):
            hi = model.new_int_var(0, top, "")
            lo = model.new_int_var(0, top, "")
            for vi in range(len(people)):
                model.add(hi >= values[vi])
                model.add(lo <= values[vi])
            # Redundant pigeonhole bounds (see spread_bounds): valid for every roster with
            # the holes of phase 1, they tighten the bound the gap is measured against.
            high, low = spread_bounds(problem, quantity, best_missing) if BOUNDS else (0, top)
            model.add(hi >= min(high, top))
            if low < top:
                model.add(lo <= low + (top - low) * surplus)
            if name == "hours" and floor is not None:
                # The count relaxation's proof (nobody above a minimum: else it lapses).
                model.add(hi - lo >= floor.minutes - floor.minutes * surplus)
            lowest[name], highest[name] = lo, hi
            spreads.append(weight * (hi - lo))
        terms.extend(spreads)
        # If everyone works (the least hours are above 0), everyone has at least one post.
        # ``busy`` is that condition: a roster where somebody is idle has busy = 0 and its
        # true cost; one where nobody is has busy = 1, lo ≥ 1 and its true cost too.
        flags = [f for group in posts_of.values() for f in group]
        low_minutes = spread_bounds(problem, _minutes, best_missing)[1]
        if BOUNDS and flags and low_minutes > 0:
            busy = model.new_bool_var("busy")
            top = sum(s.minutes for s in shifts)
            model.add(lowest["hours"] >= busy)
            model.add(lowest["hours"] <= low_minutes * busy + top * surplus)
            model.add(sum(flags) >= len(people) * busy)
    if extra:
        terms.append(W_EXTRA * sum(extra))
    terms.append(W_POST * sum(f for flags in posts_of.values() for f in flags))
    prefs = [
        (var, _preference(people[vi], shifts[si]))
        for (si, vi), var in x.items()
        if shifts[si].id not in frozen and _preference(people[vi], shifts[si])
    ]
    if prefs:
        terms.append(-W_PREF * cp_model.LinearExpr.weighted_sum(*zip(*prefs, strict=True)))
    if problem.current:
        change = []
        for (si, vi), var in x.items():
            if shifts[si].id in frozen:
                continue
            change.append(1 - var if (shifts[si].id, people[vi].id) in problem.current else var)
        # Current pairs that are no longer possible at all are changes whatever we do.
        terms.append(W_CHANGE * sum(change))
    # Searched first, as assumptions: rosters at every spread's floor, and among them the
    # floor programme's plan of each volunteer's shifts by kind (bounds.plan). When the
    # floor is close, the best rosters are there, and the plan is found in a blink.
    attempts: list[tuple[list[cp_model.IntVar], float]] = []
    if floor is not None and floor.objective is not None:
        # The objective's floor as its variable's least value, which CP-SAT's bound starts
        # from (a constraint on the same sum it does not connect with the objective).
        value = model.new_int_var(floor.objective, 2**40, "objective")
        model.add(value == sum(terms))
        terms = [value]
        at_floors = model.new_bool_var("at_floors")
        for name, width, lows in (
            ("hours", floor.minutes, floor.hour_lows),
            ("nights", floor.nights, floor.night_lows),
            ("weekend", floor.weekends, floor.weekend_lows),
        ):
            model.add(highest[name] - lowest[name] <= width).only_enforce_if(at_floors)
            if lows:
                model.add(lowest[name] >= min(lows)).only_enforce_if(at_floors)
                model.add(highest[name] <= max(lows) + width).only_enforce_if(at_floors)
        planned = _add_plan(
            model, bounds.plan(problem, floor, seconds=time_limit / 5), x, shifts, people
        )
        if planned is not None:
            attempts.append(([at_floors, planned], 0.5))
        attempts.append(([at_floors], 0.7))
    model.minimize(sum(terms))
    solver.parameters.relative_gap_limit = gap_limit
    proven = float(floor.objective) if floor is not None and floor.objective is not None else None
    found: tuple[float, list[tuple[str, str]]] | None = None  # (objective, roster)
    # A stronger linear relaxation in the searches at the floors: it finds rosters that
    # trade posts against preferences much sooner there (the whole search keeps the
    # default, cheaper per branch).
    solver.parameters.linearization_level = 2
    for assumptions, share in attempts:
        model.add_assumptions(assumptions)
        solver.parameters.max_time_in_seconds = share * _left(time_limit, began)
        status = solver.solve(model)
        effort = (effort[0] + solver.num_branches, effort[1] + solver.deterministic_time)
        model.clear_assumptions()
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if found is None or solver.objective_value < found[0]:
                found = (solver.objective_value, _roster(solver, x, shifts, people))
                _hint_found(model, solver, x, shifts, frozen)
            if proven is not None and _gap(found[0], proven) <= gap_limit:
                break
    solver.parameters.linearization_level = 1
    bound: float | None = None  # proven lower bound of the second phase's objective
    if found is not None and proven is not None and _gap(found[0], proven) <= gap_limit:
        objective, chosen, bound = found[0], found[1], proven
        gap = max(_gap(objective, bound), phase1_gap)
        status = cp_model.OPTIMAL if gap == 0 else cp_model.FEASIBLE
    else:
        solver.parameters.max_time_in_seconds = _left(time_limit, began)
        status = solver.solve(model)
        effort = (effort[0] + solver.num_branches, effort[1] + solver.deterministic_time)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            objective = solver.objective_value
            bound = solver.best_objective_bound
            chosen = _roster(solver, x, shifts, people)
            gap = 0.0 if status == cp_model.OPTIMAL else _gap(objective, bound)
            if found is not None and found[0] < objective:  # (the first search did better)
                objective, chosen = found
                gap = _gap(objective, bound)
            gap = max(gap, phase1_gap)  # holes not proven fewest count as a gap too
        elif found is not None:  # out of time in the second search: the first's roster
            status, (objective, chosen), bound = cp_model.FEASIBLE, found, proven
            gap = max(_gap(objective, proven or 0.0), phase1_gap)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        if not fallback and missing:
            raise ProblemError([("problem", f"no roster found ({status_names[status]})")])
        # Out of time before the fairness phase found anything: the first phase's roster.
        status, gap, chosen = cp_model.FEASIBLE, 1.0, sorted(fallback)
        objective = float(cost(problem, chosen)[1])
    if hint_valid and cost(problem, hint_pairs) < cost(problem, chosen):
        # Out of time with a roster worse than the hint (the greedy one): keep the hint,
        # its gap measured against the same proven bound when there is one.
        chosen = sorted(hint_pairs)
        objective = float(cost(problem, chosen)[1])
        if bound is not None and cost(problem, chosen)[0] <= best_missing:
            gap = max(phase1_gap, abs(objective - bound) / max(1.0, abs(objective)))
        else:
            gap = max(gap, 1.0)
    holes = explain_holes(problem, chosen)
    spread = fairness(problem, chosen)
    chosen_set = set(chosen)
    return Result(
        assignments=chosen,
        holes=holes,
        status=status_names[status],
        gap=round(gap, 6),
        seconds=round(time.perf_counter() - started, 3),
        objective=objective,
        hours_spread=float(spread["hours_spread"]),
        nights_spread=int(spread["nights_spread"]),
        weekend_spread=int(spread["weekend_spread"]),
        added=sorted(chosen_set - problem.current) if problem.current else [],
        removed=sorted(problem.current - chosen_set) if problem.current else [],
        warnings=warnings,
        branches=effort[0],
        deterministic_seconds=round(effort[1], 3),
    )


def repair(
    problem: Problem,
    cancelled: Sequence[tuple[str, str]],
    *,
    now: datetime,
    time_limit: float = 5.0,
    workers: int = 2,
) -> Result:
    """Re-solve after cancellations, changing as few assignments as possible.

    ``problem.current`` is the roster in force; each cancelled (shift, volunteer) pair is
    taken out of it and out of that volunteer's availability. Shifts that started before
    ``now`` are frozen. The result's ``added``/``removed`` is the diff to show before it is
    applied (the cancelled pairs themselves are not counted as changes).
    """
    shifts = {s.id: s for s in problem.shifts}
    errors = []
    for shift_id, person in cancelled:
        if shift_id not in shifts:
            errors.append(("cancelled", f"unknown shift {shift_id}"))
        elif shifts[shift_id].start <= now:
            errors.append(("cancelled", f"shift {shift_id} has already started"))
        elif (shift_id, person) not in problem.current:
            errors.append(("cancelled", f"{person} is not on shift {shift_id}"))
    if errors:
        raise ProblemError(errors)
    gone = set(cancelled)
    volunteers = []
    for volunteer in problem.volunteers:
        mine = {s for s, p in gone if p == volunteer.id}
        if mine:
            base = volunteer.available if volunteer.available is not None else frozenset(shifts)
            volunteer = replace(volunteer, available=frozenset(base - mine))
        volunteers.append(volunteer)
    repaired = replace(
        problem,
        volunteers=tuple(volunteers),
        current=frozenset(problem.current - gone),
        frozen_before=now,
    )
    return solve(repaired, time_limit=time_limit, workers=workers)


# --------------------------------------------------------------------------- holes


def explain_holes(problem: Problem, assignments: Iterable[tuple[str, str]]) -> list[Hole]:
    """Every shift below its minimum, with the reason in words.

    The reason looks at the roster as returned: nobody has the skill; nobody with it is
    available; or every available person is already busy (and how).
    """
    pairs = set(assignments)
    shifts = {s.id: s for s in problem.shifts}
    counts: dict[str, int] = defaultdict(int)
    mine: dict[str, list[Shift]] = defaultdict(list)
    for shift_id, person in pairs:
        counts[shift_id] += 1
        mine[person].append(shifts[shift_id])
    holes = []
    for shift in problem.shifts:
        short = shift.min - counts[shift.id]
        if short <= 0:
            continue
        if _frozen(problem, shift):
            holes.append(Hole(shift.id, short, "started", "the shift has already started"))
            continue
        skill_text = ", ".join(sorted(shift.skills))
        skilled = [v for v in problem.volunteers if shift.skills <= v.skills]
        if not skilled:
            holes.append(
                Hole(
                    shift.id,
                    short,
                    "no_skill",
                    f"nobody has the skill {skill_text}",
                    {"skill": skill_text},
                )
                if shift.skills
                else Hole(shift.id, short, "no_volunteers", "there are no volunteers")
            )
            continue
        free = [v for v in skilled if v.available is None or shift.id in v.available]
        if not free:
            who = f"with skill {skill_text} " if shift.skills else ""
            holes.append(
                Hole(
                    shift.id,
                    short,
                    "unavailable",
                    f"nobody {who}is available",
                    {"skill": skill_text},
                )
            )
            continue
        why: dict[str, int] = defaultdict(int)
        for volunteer in free:
            if (shift.id, volunteer.id) in pairs:
                continue
            why[_blocked(problem, volunteer, shift, mine[volunteer.id])] += 1
        blocked = sum(why.values())
        who = f"with skill {skill_text} " if shift.skills else ""
        if not blocked:
            text = (
                f"only {len(free)} volunteer{'s' if len(free) > 1 else ''} {who}"
                f"{'are' if len(free) > 1 else 'is'} available, already on this shift"
            )
            detail = {"skill": skill_text, "available": len(free)}
            holes.append(Hole(shift.id, short, "too_few", text, detail))
            continue
        everyone = (
            f"all {blocked} available volunteers {who}"
            if blocked > 1
            else f"the only other available volunteer {who}"
        )
        if len(why) == 1:
            (code,) = why
            verb = _REASONS[code] if blocked > 1 else _SINGULAR.get(code, _REASONS[code])
            text = everyone + verb
        else:
            parts = [f"{n} {_REASONS[c]}" for c, n in sorted(why.items(), key=lambda i: -i[1])]
            text = everyone + "are busy: " + ", ".join(parts)
            code = "busy"
        detail = {"skill": skill_text, "available": len(free), **why}
        holes.append(Hole(shift.id, short, code, text, detail))
    return holes


_REASONS = {
    "same_day": "already work that day",
    "rest": "would have too little rest or overlap another shift",
    "night_morning": "would start a morning right after a night",
    "week_hours": "would exceed their hours for the week",
    "nights": "would work too many nights in a row",
    "not_found": "were left free (time limit reached before they were placed)",
}
_SINGULAR = {
    "same_day": "already works that day",
    "not_found": "was left free (time limit reached before they were placed)",
}


def _blocked(problem: Problem, volunteer: Volunteer, shift: Shift, worked: list[Shift]) -> str:
    rules = problem.rules
    if sum(1 for s in worked if s.day == shift.day) >= rules.max_shifts_per_day:
        return "same_day"
    for other in worked:
        first, second = (other, shift) if other.start <= shift.start else (shift, other)
        if second.start < first.end + timedelta(hours=rules.min_rest_hours):
            return "rest"
        if _night_then_morning(first, second):
            return "night_morning"
    trial = [*worked, shift]
    for start in {s.day for s in trial}:
        window = [s for s in trial if start <= s.day < start + timedelta(days=7)]
        if sum(s.minutes for s in window) > volunteer.max_hours_week * 60 + 1e-6:
            return "week_hours"
    if check(
        replace(problem, frozen_before=None),
        [(s.id, volunteer.id) for s in trial],
    ):
        return "nights"
    return "not_found"


# --------------------------------------------------------------------------- baseline


def greedy(problem: Problem) -> list[tuple[str, str]]:
    """A greedy roster: shifts in time order, each filled to its minimum by the eligible
    person with the fewest hours (then nights) who breaks no rule. The baseline the solver
    must never do worse than."""
    people = {v.id: v for v in problem.volunteers}
    worked: dict[str, list[Shift]] = defaultdict(list)
    minutes: dict[str, int] = defaultdict(int)
    nights: dict[str, int] = defaultdict(int)
    chosen: list[tuple[str, str]] = []
    plain = replace(problem, frozen_before=None, current=frozenset())
    for shift in sorted(problem.shifts, key=lambda s: (s.start, s.id)):
        candidates = sorted(
            (v for v in problem.volunteers if eligible(v, shift)),
            key=lambda v: (minutes[v.id], nights[v.id], v.id),
        )
        taken = 0
        for volunteer in candidates:
            if taken >= shift.min:
                break
            trial = [*worked[volunteer.id], shift]
            if check(plain, [(s.id, volunteer.id) for s in trial]):
                continue
            worked[volunteer.id] = trial
            minutes[volunteer.id] += shift.minutes
            nights[volunteer.id] += shift.is_night
            chosen.append((shift.id, volunteer.id))
            taken += 1
    del people
    return chosen


# --------------------------------------------------------------------------- JSON


def problem_from_json(data: dict[str, object]) -> Problem:
    """Build a problem from the CLI's JSON (see the module docstring and ``duty solve``)."""
    errors: list[tuple[str, str]] = []

    def need(obj: object, key: str, where: str) -> object:
        if not isinstance(obj, dict) or key not in obj:
            errors.append((where + "." + key, "is missing"))
            return None
        return obj[key]

    def when(value: object, where: str) -> datetime:
        try:
            return datetime.fromisoformat(str(value)).replace(tzinfo=None)
        except ValueError:
            errors.append((where, f"not an ISO 8601 time: {value!r}"))
            return datetime(2000, 1, 1)

    def number(obj: dict[str, object], key: str, default: float, where: str) -> float:
        value = obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append((f"{where}.{key}", f"must be a number, not {value!r}"))
            return default
        return float(value)

    def strings(obj: dict[str, object], key: str, where: str) -> frozenset[str]:
        value = obj.get(key) or []
        if not isinstance(value, list):
            errors.append((f"{where}.{key}", "must be a list"))
            return frozenset()
        return frozenset(str(v) for v in value)

    if not isinstance(data, dict):
        raise ProblemError([("problem", "must be a JSON object")])
    raw_shifts = data.get("shifts", [])
    raw_people = data.get("volunteers", [])
    raw_rules = data.get("rules", {}) or {}
    if not isinstance(raw_shifts, list):
        raise ProblemError([("shifts", "must be a list")])
    if not isinstance(raw_people, list):
        raise ProblemError([("volunteers", "must be a list")])
    if not isinstance(raw_rules, dict):
        raise ProblemError([("rules", "must be an object")])
    shifts = []
    for i, raw in enumerate(raw_shifts):
        where = f"shifts[{i}]"
        if not isinstance(raw, dict):
            errors.append((where, "must be an object"))
            continue
        start, end = need(raw, "start", where), need(raw, "end", where)
        shift_id = need(raw, "id", where)
        if start is None or end is None or shift_id is None:
            continue
        shifts.append(
            Shift(
                id=str(shift_id),
                post=str(raw.get("post", "")),
                start=when(start, where + ".start"),
                end=when(end, where + ".end"),
                min=int(number(raw, "min", 1, where)),
                max=int(number(raw, "max", max(1, int(number(raw, "min", 1, where))), where)),
                skills=strings(raw, "skills", where),
            )
        )
    volunteers = []
    for i, raw in enumerate(raw_people):
        where = f"volunteers[{i}]"
        if not isinstance(raw, dict) or need(raw, "id", where) is None:
            if not isinstance(raw, dict):
                errors.append((where, "must be an object"))
            continue
        available = raw.get("available")
        prefs = raw.get("preferences") or {}
        if not isinstance(prefs, dict):
            errors.append((where + ".preferences", "must be an object"))
            prefs = {}
        volunteers.append(
            Volunteer(
                id=str(raw["id"]),
                skills=strings(raw, "skills", where),
                available=None if available is None else strings(raw, "available", where),
                max_hours_week=number(raw, "max_hours_week", 40.0, where),
                preferences={str(k): int(v) for k, v in dict(prefs).items()},
                preferred_posts=strings(raw, "preferred_posts", where),
            )
        )
    rules = Rules(
        min_rest_hours=number(raw_rules, "min_rest_hours", 10.0, "rules"),
        max_shifts_per_day=int(number(raw_rules, "max_shifts_per_day", 1, "rules")),
        max_consecutive_nights=int(number(raw_rules, "max_consecutive_nights", 3, "rules")),
    )
    current = data.get("current", []) or []
    if errors:
        raise ProblemError(errors)
    return Problem(
        shifts=tuple(shifts),
        volunteers=tuple(volunteers),
        rules=rules,
        current=frozenset(
            (str(a["shift"]), str(a["volunteer"]))
            for a in current  # type: ignore[attr-defined]
        ),
    )


def result_to_json(result: Result) -> dict[str, object]:
    """The CLI's output object."""
    return {
        "assignments": [{"shift": s, "volunteer": v} for s, v in result.assignments],
        "holes": [
            {"shift": h.shift, "missing": h.missing, "reason": h.reason, "code": h.code}
            for h in result.holes
        ],
        "gap": result.gap,
        "seconds": result.seconds,
        "hours_spread": result.hours_spread,
        "nights_spread": result.nights_spread,
        "weekend_spread": result.weekend_spread,
        "status": result.status,
        "warnings": result.warnings,
    }
