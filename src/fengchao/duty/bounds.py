"""Proven lower bounds for the roster solver (pure; no database, no web).

CP-SAT proves a roster optimal only as far as its linear relaxation sees, and for the
fairness terms that is little: in the reference week every volunteer averages 21 h, so the
relaxation allows a spread of 0, and it lets preferences and posts be spread fractionally.
The bounds here look at the problem the way a person would — how many shifts of each kind
each volunteer can take — and are valid for every roster that keeps the hard rules:

* :func:`minutes_spread_bound`: the least spread of total hours (a subset-sum over
  volunteers of their possible counts of each shift length);
* :func:`objective_bound`: the least second-phase objective, from the spreads' floors and
  a linear programme over each volunteer's possible counts (one column per count vector:
  a Dantzig–Wolfe relaxation, much tighter than the model's own).

The solver adds them to its model as redundant constraints; the gap it reports is measured
against them.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date

from fengchao.duty.solver import (
    W_EXTRA,
    W_HOURS,
    W_NIGHTS,
    W_POST,
    W_PREF,
    W_WEEKEND,
    Problem,
    Shift,
    Volunteer,
    _frozen,
    _minutes,
    _night,
    _preference,
    _weekend,
    eligible,
    spread_bounds,
)


def minutes_spread_bound(
    problem: Problem, missing: int = 0, *, seconds: float = 1.0, states: int = 4_000_000
) -> int:
    """A proven lower bound on the spread (max − min) of total minutes, for every roster
    that keeps the hard rules with nobody missing and nobody above a shift's minimum.

    CP-SAT's linear relaxation sees only the average (each volunteer 21 h in the reference
    week, so spread 0), while the true spread comes from how shift lengths add up: with
    8 h gate shifts, 6 h sampling and 3 h patrols nobody can work exactly 21 h. This bound
    relaxes the roster to *how many shifts of each kind* each volunteer works — a kind is
    a length and a set of skills; a volunteer takes at most their days' worth of each kind
    they can do, at most ``max_shifts_per_day`` shifts a day, and at most their weekly
    hours in each 7 days — and asks, smallest spread first, whether some band of totals
    ``[low, low + spread]`` lets every volunteer pick counts that add up to each kind's
    demand exactly (a subset-sum over volunteers, with the reachable count vectors as one
    big integer of bits). The first spread that fits is the bound: it holds for the
    relaxation, so for every real roster.

    Returns 0 when the bound does not apply (people missing, a current roster or frozen
    shifts) or when the count space exceeds ``states``; after ``seconds`` it returns the
    spread it had got to (every smaller one is proven impossible)."""
    bands = _hour_bands(problem, missing, states)
    return 0 if bands is None else bands.floor(time.perf_counter() + seconds)[0]


@dataclass(frozen=True)
class _HourBands:
    """Which bands ``[low, high]`` of total minutes every volunteer can be in at once."""

    fits: Callable[[int, int], bool]
    reachable: frozenset[int]  # totals some volunteer can reach
    average: float
    unit: int  # every total is a multiple of it

    def lows(self, width: int, deadline: float) -> list[int] | None:
        """The lows of the bands of this width that fit (None past ``deadline``). Every
        total lies in the band, so the average does too."""
        fitting = []
        for low in sorted(m for m in self.reachable if self.average - width <= m <= self.average):
            if time.perf_counter() > deadline:
                return None
            if self.fits(low, low + width):
                fitting.append(low)
        return fitting

    def floor(self, deadline: float) -> tuple[int, list[int]]:
        """The least width some band fits, and the lows that fit at it (smallest first;
        the lows are empty when the deadline came first)."""
        spread = 0
        while spread <= max(self.reachable) - min(self.reachable):
            lows = self.lows(spread, deadline)
            if lows is None:
                return spread, []
            if lows:
                return spread, lows
            spread += self.unit
        return spread, []


def _hour_bands(problem: Problem, missing: int, states: int) -> _HourBands | None:
    """The subset-sum of :func:`minutes_spread_bound` (None where it does not apply)."""
    if missing or _repair(problem):
        return None
    people = problem.volunteers
    if len(people) < 2 or not problem.shifts:
        return None
    kinds: dict[tuple[int, frozenset[str]], int] = {}  # kind -> index
    for shift in problem.shifts:
        kinds.setdefault((shift.minutes, shift.skills), len(kinds))
    demand = [0] * len(kinds)
    for shift in problem.shifts:
        demand[kinds[shift.minutes, shift.skills]] += shift.min
    lengths = [minutes for minutes, _ in kinds]
    first = min(s.day for s in problem.shifts)
    weeks = -(-((max(s.day for s in problem.shifts) - first).days + 1) // 7)
    per_day = problem.rules.max_shifts_per_day
    # Each volunteer's choices: (counts per kind, minutes).
    choices: list[list[tuple[tuple[int, ...], int]]] = []
    most = [0] * len(kinds)
    limits: list[tuple[list[int], int, int]] = []  # per kind, in all, minutes
    for volunteer in people:
        days: dict[date, list[int]] = defaultdict(lambda: [0] * len(kinds))
        for shift in problem.shifts:
            if eligible(volunteer, shift):
                days[shift.day][kinds[shift.minutes, shift.skills]] += 1
        top = [sum(min(per_day, counts[k]) for counts in days.values()) for k in range(len(kinds))]
        total = sum(min(per_day, sum(counts)) for counts in days.values())
        limits.append((top, total, math.floor(volunteer.max_hours_week * 60 + 1e-6) * weeks))
        most = [max(a, b) for a, b in zip(most, top, strict=True)]
    radix = [d + m + 1 for d, m in zip(demand, most, strict=True)]
    if (
        math.prod(radix) > states
        or sum(math.prod(t + 1 for t in top) for top, *_ in limits) > states // 8
    ):
        return None  # too big to settle in the time a solve has
    for top, total, cap in limits:
        mine = []
        for counts in _count_vectors(top, total):
            minutes = sum(c * m for c, m in zip(counts, lengths, strict=True))
            if minutes <= cap:
                mine.append((counts, minutes))
        choices.append(mine)
    stride = [math.prod(radix[:k]) for k in range(len(kinds))]
    target = sum(d * w for d, w in zip(demand, stride, strict=True))
    valid = 1
    for d, w in zip(demand, stride, strict=True):  # every count at most its demand
        valid = sum(valid << (c * w) for c in range(d + 1))
    offsets = [
        [
            (sum(c * w for c, w in zip(counts, stride, strict=True)), minutes)
            for counts, minutes in mine
        ]
        for mine in choices
    ]

    def fits(low: int, high: int) -> bool:
        reach = 1
        for mine in offsets:
            step = 0
            for offset, minutes in mine:
                if low <= minutes <= high:
                    step |= reach << offset
            reach = step & valid
            if not reach:
                return False
        return bool(reach >> target & 1)

    unit = 0
    for length in lengths:
        unit = math.gcd(unit, length)
    work = sum(d * m for d, m in zip(demand, lengths, strict=True))
    reachable = frozenset(minutes for mine in choices for _, minutes in mine)
    return _HourBands(fits, reachable, work / len(people), unit)


def _repair(problem: Problem) -> bool:
    """A current roster to keep or shifts already begun: the bounds do not apply (changes
    weigh more than fairness, and the past is not the solver's to spread). A week computed
    ahead has a ``frozen_before`` (now) but no shift before it."""
    return bool(problem.current) or any(_frozen(problem, s) for s in problem.shifts)


def _count_vectors(top: list[int], total: int) -> Iterator[tuple[int, ...]]:
    """Every vector of counts with count k in 0..top[k] and their sum at most ``total``."""
    if not top:
        yield ()
        return
    for count in range(min(top[0], total) + 1):
        for rest in _count_vectors(top[1:], total - count):
            yield (count, *rest)


Kind = tuple[str, int, frozenset[str], bool, bool]  # post, minutes, skills, night, weekend


@dataclass(frozen=True)
class _Band:
    """Bounds on one volunteer's totals: minutes, nights and weekend shifts."""

    minutes: tuple[int, int]
    nights: tuple[int, int]
    weekends: tuple[int, int]


def _kind(shift: Shift, fine: bool) -> Kind:
    """A shift's kind: its post, length and skills, and (``fine``) night and weekend."""
    return (
        shift.post,
        shift.minutes,
        shift.skills,
        fine and shift.is_night,
        fine and shift.is_weekend,
    )


@dataclass(frozen=True)
class _Profile:
    """What one volunteer can work, counted by kind of shift."""

    kinds: list[int]  # the kinds they can work
    tops: dict[int, int]  # at most this many of each (their days' worth)
    best: dict[int, list[int]]  # the best preference total of n shifts of each kind
    total: int  # shifts in all (their days, times shifts a day)
    nights: int
    weekends: int
    cap: int  # minutes over the horizon (weekly hours in each 7 days)


class _Columns:
    """Each volunteer's possible count vectors over the kinds they can work, with the
    least second-phase cost of each (posts and the best preferences of that many shifts)."""

    def __init__(self, problem: Problem, *, fine: bool = True) -> None:
        self.fine = fine  # (coarse: nights and weekends not counted, the bands ignored)
        self.kinds: dict[Kind, int] = {}
        for shift in problem.shifts:
            self.kinds.setdefault(_kind(shift, fine), len(self.kinds))
        self.demand = [0] * len(self.kinds)
        for shift in problem.shifts:
            self.demand[self.kinds[_kind(shift, fine)]] += shift.min
        first = min(s.day for s in problem.shifts)
        weeks = -(-((max(s.day for s in problem.shifts) - first).days + 1) // 7)
        self.rules = problem.rules
        self.people = [self._profile(v, weeks, problem) for v in problem.volunteers]

    def _profile(self, volunteer: Volunteer, weeks: int, problem: Problem) -> _Profile:
        per_day = problem.rules.max_shifts_per_day
        info = list(self.kinds)
        days: dict[date, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        prefs: dict[int, list[int]] = defaultdict(list)
        for shift in problem.shifts:
            if eligible(volunteer, shift):
                k = self.kinds[_kind(shift, self.fine)]
                days[shift.day][k] += 1
                prefs[k].append(_preference(volunteer, shift))
        tops = {k: sum(min(per_day, c.get(k, 0)) for c in days.values()) for k in prefs}
        return _Profile(
            kinds=sorted(tops),
            tops=tops,
            # The best preference total of n shifts of a kind: the n best of them.
            best={
                k: [0, *itertools.accumulate(sorted(values, reverse=True))]
                for k, values in prefs.items()
            },
            total=sum(min(per_day, sum(c.values())) for c in days.values()),
            nights=sum(
                min(per_day, sum(n for k, n in c.items() if info[k][3])) for c in days.values()
            ),
            weekends=sum(
                min(per_day, sum(c.values())) for d, c in days.items() if d.weekday() >= 5
            ),
            cap=math.floor(volunteer.max_hours_week * 60 + 1e-6) * weeks,
        )

    def of(self, person: int, band: _Band, limit: int) -> list[tuple[dict[int, int], int]] | None:
        """(counts by kind, least cost) of every count vector of ``person`` within
        ``band``; None past ``limit`` vectors."""
        profile = self.people[person]
        kinds, tops, best = profile.kinds, profile.tops, profile.best
        info = list(self.kinds)
        low_m, high_m = band.minutes[0], min(band.minutes[1], profile.cap)
        high_n = min(band.nights[1], profile.nights)
        high_w = min(band.weekends[1], profile.weekends)
        out: list[tuple[dict[int, int], int]] = []
        counts: dict[int, int] = {}

        def walk(i: int, left: int, minutes: int, nights: int, weekends: int) -> bool:
            if i == len(kinds):
                if minutes >= low_m and nights >= band.nights[0] and weekends >= band.weekends[0]:
                    posts = {info[k][0] for k, n in counts.items() if n}
                    pref = sum(best[k][n] for k, n in counts.items())
                    out.append((dict(counts), W_POST * len(posts) - W_PREF * pref))
                    if len(out) > limit:
                        return False
                return True
            k = kinds[i]
            _post, length, _skills, night, weekend = info[k]
            for n in range(min(tops[k], left) + 1):
                m = minutes + n * length
                if m > high_m:
                    break
                nn = nights + n * night
                ww = weekends + n * weekend
                if nn > high_n or ww > high_w:
                    break
                counts[k] = n
                if not walk(i + 1, left - n, m, nn, ww):
                    return False
            counts.pop(k, None)
            return True

        if not walk(0, profile.total, 0, 0, 0):
            return None
        return out

    def vectors(self) -> int:
        """How many count vectors the volunteers have in all, without bands or weekly
        hours (an upper bound on the columns of any programme, counted without listing
        them)."""
        total = 0
        for profile in self.people:
            ways = [1] + [0] * profile.total  # ways[t]: vectors of t shifts so far
            for k in profile.kinds:
                ways = [
                    sum(ways[t - n] for n in range(min(profile.tops[k], t) + 1))
                    for t in range(profile.total + 1)
                ]
            total += sum(ways)
        return total

    def least(self, band: _Band, limit: int, deadline: float) -> float | None:
        """The linear programme's least total cost over all volunteers within ``band``
        (inf when no roster fits the band; None past ``limit`` columns or ``deadline``)."""
        from ortools.linear_solver import pywraplp

        lp = pywraplp.Solver.CreateSolver("GLOP")
        rows = [lp.Constraint(d, d) for d in self.demand]
        objective = lp.Objective()
        columns = 0
        for person in range(len(self.people)):
            vectors = self.of(person, band, limit - columns)
            if vectors is None or time.perf_counter() > deadline:
                return None
            if not vectors:
                return math.inf
            one = lp.Constraint(1, 1)
            for counts, cost in vectors:
                share = lp.NumVar(0, 1, "")
                one.SetCoefficient(share, 1)
                objective.SetCoefficient(share, cost)
                for k, n in counts.items():
                    if n:
                        rows[k].SetCoefficient(share, n)
            columns += len(vectors)
        objective.SetMinimization()
        status = lp.Solve()
        if status == pywraplp.Solver.INFEASIBLE:
            return math.inf
        if status != pywraplp.Solver.OPTIMAL:
            return None
        return float(objective.Value())

    def plan(self, band: _Band, limit: int, seconds: float) -> list[dict[Kind, int]] | None:
        """One count vector per volunteer within ``band`` that meets each kind's demand at
        the least cost (the programme in whole numbers: SCIP, or CBC), or None."""
        from ortools.linear_solver import pywraplp

        mip = pywraplp.Solver.CreateSolver("SCIP") or pywraplp.Solver.CreateSolver("CBC")
        if mip is None:
            return None
        rows = [mip.Constraint(d, d) for d in self.demand]
        objective = mip.Objective()
        chosen = []
        for person in range(len(self.people)):
            vectors = self.of(person, band, limit)
            if not vectors:
                return None
            one = mip.Constraint(1, 1)
            mine = []
            for counts, cost in vectors:
                pick = mip.BoolVar("")
                one.SetCoefficient(pick, 1)
                objective.SetCoefficient(pick, cost)
                for k, n in counts.items():
                    if n:
                        rows[k].SetCoefficient(pick, n)
                mine.append((pick, counts))
            chosen.append(mine)
        objective.SetMinimization()
        mip.SetTimeLimit(max(50, int(seconds * 1000)))
        if mip.Solve() not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            return None
        info = list(self.kinds)
        return [
            {info[k]: n for k, n in counts.items() if n}
            for mine in chosen
            for pick, counts in mine
            if pick.solution_value() > 0.5
        ]


def _lows(total: int, people: int, spread: int, unit: int = 1) -> list[int]:
    """Every low of a band ``[low, low + spread]`` (multiples of ``unit``) that holds the
    average: all totals in the band, so their average too."""
    average = total / people
    first = max(0, math.ceil((average - spread) / unit - 1e-9))
    return [k * unit for k in range(first, math.floor(average / unit + 1e-9) + 1)]


@dataclass(frozen=True)
class Floor:
    """What no roster with nobody missing can go below: each spread's floor (the hours'
    in minutes, with the lows of the bands of that width that fit), and the whole
    second-phase objective's (None when it was not settled in time)."""

    nights: int
    weekends: int
    minutes: int
    hour_lows: tuple[int, ...]
    objective: int | None
    # The lows of the bands of nights and weekend shifts at their floors that hold the
    # averages (every roster at the floors has everyone's count in one of them).
    night_lows: tuple[int, ...] = ()
    weekend_lows: tuple[int, ...] = ()
    # The band whose programme gave the floor, when it is at the spreads' floors (where a
    # roster of exactly the floor's cost would be: see :func:`plan`).
    band: _Band | None = None


def objective_bound(problem: Problem, *, seconds: float = 1.0) -> int | None:
    """The least second-phase objective of any roster with nobody missing (see
    :func:`floors`), or None where it does not apply."""
    floor = floors(problem, seconds=seconds)
    return None if floor is None else floor.objective


def floors(problem: Problem, *, seconds: float = 1.0, columns: int = 30_000) -> Floor | None:
    """Proven floors for every roster with nobody missing (None when they do not apply: a
    repair, or a problem too big for the count relaxation).

    A roster's spreads of nights, weekend shifts and hours are at least their floors
    (``spread_bounds``, :func:`minutes_spread_bound`). For spreads ``(n, w, h)``, every
    volunteer's nights, weekend shifts and hours lie in bands of those widths that hold
    the averages, which leaves a few bands to try; in each, posts and preferences cost at
    least the linear programme over the volunteers' count vectors. The spreads are tried
    cheapest first, until their cost plus the programme without bands (the least posts
    and preferences can cost at all) reaches the best found: that is the objective's
    floor. Someone above a shift's minimum costs more than any of these (W_EXTRA).
    """
    if _repair(problem) or len(problem.volunteers) < 2:
        return None
    deadline = time.perf_counter() + seconds
    bands = _hour_bands(problem, 0, 4_000_000)
    if bands is None:
        return None
    hours, hour_lows = bands.floor(deadline)
    spreads = {}
    for name, quantity in (("nights", _night), ("weekends", _weekend), ("minutes", _minutes)):
        high, low = spread_bounds(problem, quantity)
        spreads[name] = max(0, high - low)
    if spreads["minutes"] > hours:  # (the pigeonhole saw more than the count relaxation)
        hours, hour_lows = spreads["minutes"], bands.lows(spreads["minutes"], deadline) or []
    people = len(problem.volunteers)
    nights = sum(s.min for s in problem.shifts if s.is_night)
    weekends = sum(s.min for s in problem.shifts if s.is_weekend)
    floor = Floor(
        spreads["nights"],
        spreads["weekends"],
        hours,
        tuple(hour_lows),
        None,
        tuple(_lows(nights, people, spreads["nights"])),
        tuple(_lows(weekends, people, spreads["weekends"])),
    )
    if not hour_lows:
        return floor
    fine, coarse = _Columns(problem), _Columns(problem, fine=False)
    if coarse.vectors() > 4 * columns or fine.vectors() > 20 * columns:
        # Too many to list in time (a fortnight of a community: 4 million vectors by
        # kind; the reference week has 60,000, of which its bands keep 4,300).
        return floor
    wide = 10**9
    free = coarse.least(_Band((0, wide), (0, wide), (0, wide)), columns, deadline)
    if free is None:
        return floor
    liked = sum(
        max(0, _preference(v, s))
        for v in problem.volunteers
        for s in problem.shifts
        if eligible(v, s)
    )
    best: float = W_EXTRA - W_PREF * liked  # someone above a minimum
    best_band: _Band | None = None
    start = (floor.nights, floor.weekends, floor.minutes)
    queue = [(_spread_cost(*start), *start)]
    seen = {start}
    while queue:
        cost, n, w, h = heapq.heappop(queue)
        if cost + free >= best:
            break  # every spread left costs at least this much more
        lows = bands.lows(h, deadline)
        if lows is None:
            return floor
        for low_m in lows:
            for low_n in _lows(nights, people, n):
                for low_w in _lows(weekends, people, w):
                    if time.perf_counter() > deadline:
                        return floor
                    band = _Band((low_m, low_m + h), (low_n, low_n + n), (low_w, low_w + w))
                    least = fine.least(band, columns, deadline)
                    if least is None:
                        return floor
                    if cost + least < best:
                        best = cost + least
                        best_band = band if (n, w, h) == start else None
        for step in ((n + 1, w, h), (n, w + 1, h), (n, w, h + bands.unit)):
            if step not in seen:
                seen.add(step)
                heapq.heappush(queue, (_spread_cost(*step), *step))
    # The objective is a whole number: a fractional bound rounds up (with a margin for the
    # programme's floating point).
    return replace(floor, objective=math.ceil(best - 1e-4), band=best_band)


def plan(problem: Problem, floor: Floor, *, seconds: float = 1.0) -> dict[str, dict[Kind, int]]:
    """How many shifts of each kind each volunteer works in a plan of exactly the floor's
    cost: the floor's programme solved in whole numbers (empty when there is none). A
    roster with these counts may not exist (the counts do not see the days), but the posts
    of the plan are where the solver looks first; a roster found there at the floor's cost
    is optimal, proven by the floor."""
    if floor.band is None or floor.objective is None:
        return {}
    counts = _Columns(problem).plan(floor.band, 30_000, seconds)
    if counts is None:
        return {}
    return {v.id: mine for v, mine in zip(problem.volunteers, counts, strict=True)}


def _spread_cost(nights: int, weekends: int, minutes: int) -> int:
    return W_NIGHTS * nights + W_WEEKEND * weekends + W_HOURS * minutes
