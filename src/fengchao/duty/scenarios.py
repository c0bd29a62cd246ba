"""Roster problems like the reference community's and a street office's, for the benchmark,
the tests and the demo (deterministic for a given seed; no database)."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from fengchao.duty.solver import Problem, Rules, Shift, Volunteer

# The gate shifts of 值大夜 and the two day shifts; the sampling site; the evening patrol.
GATE_SHIFTS = (("night", time(0), 8), ("day", time(8), 8), ("evening", time(16), 8))
SAMPLING = (time(7, 30), 6)
PATROL = (time(19), 3)


def _shift(post: str, name: str, day: date, start: time, hours: float, **kw: object) -> Shift:
    begin = datetime.combine(day, start)
    return Shift(
        id=f"{post}-{day.isoformat()}-{name}",
        post=post,
        start=begin,
        end=begin + timedelta(hours=hours),
        **kw,  # type: ignore[arg-type]
    )


def community_shifts(prefix: str, first: date, days: int, gates: int = 2) -> list[Shift]:
    """Gates round the clock (2 a shift, 3 at most), sampling (3 medical), patrol (2)."""
    shifts = []
    for d in range(days):
        day = first + timedelta(days=d)
        for g in range(gates):
            for name, start, hours in GATE_SHIFTS:
                shifts.append(_shift(f"{prefix}gate{g + 1}", name, day, start, hours, min=2, max=3))
        shifts.append(
            _shift(
                f"{prefix}sampling",
                "am",
                day,
                SAMPLING[0],
                SAMPLING[1],
                min=3,
                max=4,
                skills=frozenset({"medical"}),
            )
        )
        shifts.append(_shift(f"{prefix}patrol", "eve", day, PATROL[0], PATROL[1], min=2, max=2))
    return shifts


def community_volunteers(
    prefix: str, count: int, shifts: list[Shift], rng: random.Random
) -> list[Volunteer]:
    """Volunteers with a quarter medical, a weekly pattern (days off, some never at night)."""
    people = []
    for i in range(count):
        skills = {"medical"} if i % 4 == 0 else set()
        if i % 5 == 1:
            skills.add("tracing")
        days_off = set(rng.sample(range(7), rng.choice((1, 2, 2, 3))))
        no_nights = rng.random() < 0.3
        available = frozenset(
            s.id
            for s in shifts
            if s.start.weekday() not in days_off and not (no_nights and s.is_night)
        )
        people.append(
            Volunteer(
                id=f"{prefix}v{i + 1:03d}",
                skills=frozenset(skills),
                available=available,
                max_hours_week=rng.choice((24, 32, 40, 40)),
                preferred_posts=frozenset({f"{prefix}gate{1 + i % 2}"}),
            )
        )
    return people


def reference_week(first: date = date(2026, 12, 7), seed: int = 1) -> Problem:
    """The reference community's week: 40 volunteers, 2 gates × 3 shifts × 7 days,
    the sampling site and the evening patrol."""
    rng = random.Random(seed)
    shifts = community_shifts("", first, 7)
    people = community_volunteers("", 40, shifts, rng)
    return Problem(shifts=tuple(shifts), volunteers=tuple(people), rules=Rules())


def street_office(
    first: date = date(2026, 12, 7), days: int = 14, communities: int = 10, seed: int = 1
) -> Problem:
    """A street office: ``communities`` communities of 40 volunteers and 2 gates each, each
    volunteer serving in their own community (400 volunteers × 20 gates by default)."""
    rng = random.Random(seed)
    shifts: list[Shift] = []
    people: list[Volunteer] = []
    for c in range(communities):
        prefix = f"c{c + 1:02d}-"
        mine = community_shifts(prefix, first, days)
        shifts.extend(mine)
        people.extend(community_volunteers(prefix, 40, mine, rng))
    return Problem(shifts=tuple(shifts), volunteers=tuple(people), rules=Rules())
