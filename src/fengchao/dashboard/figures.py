"""The dashboard's figures as plain dataclasses (no SQLAlchemy, no web objects), and the
pure arithmetic that turns the slices' counts into them. The page, the JSON route and the
daily report all read these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from fengchao.duty.service import WindowHole

HOURS = 24
KINDS = ("face", "plate", "code", "visitor", "other")
# Ages of open help requests, in hours: under 1, 1–4, 4–24, a day or more.
AGE_BUCKETS = ((1, "lt1h"), (4, "1to4h"), (24, "4to24h"), (None, "ge24h"))


@dataclass(frozen=True)
class Node:
    """The grid node the figures are for."""

    level: str  # street, community, compound, building
    node_id: int
    label: str
    community_id: int | None  # None for a street

    @property
    def key(self) -> str:
        return f"{self.level}:{self.node_id}"


@dataclass(frozen=True)
class AlertFigure:
    """The alert level in force (the community's, or the compound's own)."""

    level: str
    label: str
    overrides: list[tuple[str, str]] = field(default_factory=list)  # compound, level label


@dataclass(frozen=True)
class RegistrationFigure:
    """People registered and the completeness of the registration (应录尽录)."""

    households: int
    occupied: int
    registered: int
    people: int
    household_pct: float
    phone_pct: float
    face_pct: float
    id_pct: float


@dataclass
class DayTraffic:
    """One local day's passages: in and out per hour, by method kind, refusals, fevers."""

    day: dt.date
    in_by_hour: list[int] = field(default_factory=lambda: [0] * HOURS)
    out_by_hour: list[int] = field(default_factory=lambda: [0] * HOURS)
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    refused: int = 0
    fever: int = 0

    @property
    def total_in(self) -> int:
        return sum(self.in_by_hour)

    @property
    def total_out(self) -> int:
        return sum(self.out_by_hour)

    @property
    def total(self) -> int:
        return self.total_in + self.total_out


class CountRow(Protocol):
    @property
    def hour(self) -> int: ...
    @property
    def direction(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def fever(self) -> int: ...


def split_days(rows: Iterable[CountRow], first_day: dt.date, days: int) -> list[DayTraffic]:
    """The grouped counts of ``days`` consecutive days (hours counted from the first day's
    midnight) as one :class:`DayTraffic` per day. Passages pending a second frame are left
    out of the traffic (they are not yet passages), refused ones are counted apart."""
    out = [DayTraffic(first_day + dt.timedelta(days=i)) for i in range(days)]
    for row in rows:
        index, hour = divmod(row.hour, HOURS)
        if not 0 <= index < days:
            continue
        day = out[index]
        day.fever += row.fever
        if row.decision == "deny":
            day.refused += row.count
            continue
        if row.decision != "allow":
            continue
        (day.in_by_hour if row.direction == "in" else day.out_by_hour)[hour] += row.count
        kind = row.kind if row.kind in day.by_kind else "other"
        day.by_kind[kind] += row.count
    return out


@dataclass(frozen=True)
class BuildingCell:
    """A building's sampling coverage, one cell of the heat map."""

    building_id: int
    compound: str
    name: str
    expected: int
    sampled: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.sampled / self.expected, 1) if self.expected else 100.0


@dataclass(frozen=True)
class SamplingFigure:
    """The round of the day: progress against its target, swabs per hour, by building."""

    round_id: int
    name: str
    day: dt.date
    expected: int
    sampled: int
    exempt: int
    target_per_hour: int
    per_hour: list[tuple[str, int]]  # "08:00", swabs
    buildings: list[BuildingCell]

    @property
    def percent(self) -> float:
        return round(100.0 * self.sampled / self.expected, 1) if self.expected else 100.0

    @property
    def behind(self) -> list[BuildingCell]:
        """Buildings below the round's overall coverage, the furthest behind first."""
        return sorted((b for b in self.buildings if b.percent < self.percent),
                      key=lambda b: b.percent)  # fmt: skip


@dataclass(frozen=True)
class RosterFigure:
    """Duty shifts starting in a window (the next 24 hours, or a report's day)."""

    start: dt.datetime  # local
    end: dt.datetime
    shifts: int
    placed: int
    required: int
    holes: list[WindowHole]  # duty's own rows: post, local times, people missing, why

    @property
    def percent(self) -> float:
        return round(100.0 * self.placed / self.required, 1) if self.required else 100.0


@dataclass(frozen=True)
class HelpFigure:
    """Open help requests by age and escalation; requests made and closed in the day."""

    open: int  # waiting to be accepted
    accepted: int  # accepted, not yet closed
    by_age: dict[str, int]
    escalated: int
    overdue: int
    made: int
    closed: int


class OpenRequest(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def deadline(self) -> dt.datetime: ...
    @property
    def escalations(self) -> int: ...


def help_figure(
    rows: Iterable[OpenRequest], now: dt.datetime, made: int, closed: int
) -> HelpFigure:
    """Open requests counted by age (from when they were made) and escalation."""
    by_age = {name: 0 for _limit, name in AGE_BUCKETS}
    waiting = accepted = escalated = overdue = 0
    for row in rows:
        hours = (now - row.created_at).total_seconds() / 3600
        name = next(n for limit, n in AGE_BUCKETS if limit is None or hours < limit)
        by_age[name] += 1
        if row.status == "open":
            waiting += 1
            overdue += row.deadline <= now
        else:
            accepted += 1
        escalated += row.escalations > 0
    return HelpFigure(waiting, accepted, by_age, escalated, overdue, made, closed)


@dataclass(frozen=True)
class SweepFigure:
    sweep_id: int
    title: str
    total: int
    done: int
    nobody_home: int
    needs: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1) if self.total else 100.0


@dataclass(frozen=True)
class TracingFigure:
    open_cases: int
    new_cases: int
    contacts: int
    not_isolated: int


@dataclass
class DayFigures:
    """Every section's figures for one grid node and one local day. A section is None when
    the account's role does not cover it (a building lead has no roster, no tracing).

    Stock figures (registration, open requests, open cases, sweeps) are as of the moment
    they were computed; flow figures (traffic, swabs, requests made and closed, new cases)
    belong to ``day``."""

    node: Node
    day: dt.date
    computed_at: dt.datetime
    alert: AlertFigure | None = None
    registration: RegistrationFigure | None = None
    traffic: DayTraffic | None = None
    sampling: SamplingFigure | None = None
    roster: RosterFigure | None = None
    help: HelpFigure | None = None
    sweeps: list[SweepFigure] | None = None
    tracing: TracingFigure | None = None


@dataclass
class Dashboard:
    """The page's data: the day's figures and the day before's traffic beside them."""

    today: DayFigures
    previous_traffic: DayTraffic | None = None
    choices: list[Node] = field(default_factory=list)  # nodes the account may narrow to


@dataclass
class DayPair:
    """A day's figures and the day before's, for "change from the day before"."""

    day: DayFigures
    previous: DayFigures


def change(now: float | int, before: float | int) -> float | int:
    """The change from the day before (positive: up)."""
    return round(now - before, 1) if isinstance(now, float) else now - before
