"""Building time slots at a sampling site (楼栋分时段采样): plain data in, slots out.

The site's opening hours are cut into slots (30 minutes by default). A slot can take as
many people as its stations swab in that time (stations × swabs per station-hour × slot
length); the planner never expects more. Each building is given one slot where its
expected people fit, and is split by unit (consecutive units together) where they do not.
The load is balanced: the largest pieces go first, each to the least-filled slot that
still has room (longest-processing-time), then pieces are moved between slots while that
lowers the fullest slot. The result is compared with a plain greedy plan (pieces in the
buildings' own order, each to the least-filled slot with room) and the better of the two
is returned, so a plan is never more uneven than that baseline.

What does not fit (a single unit larger than a slot, or more people than the day holds)
is returned as ``unplaced`` with the reason, never squeezed in.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_SLOT_MINUTES = 30
DEFAULT_PER_STATION_HOUR = 100
DEFAULT_TURNOUT = 0.9

# Reasons a piece stays unplaced.
UNIT_TOO_LARGE = "unit_too_large"
NO_CAPACITY = "no_capacity"


class PlanError(ValueError):
    """Parameters that cannot give a plan (names the parameter in ``field``)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class UnitLoad:
    """One unit (单元) of a building and the people registered in it."""

    unit_id: int
    people: int


@dataclass(frozen=True)
class BuildingLoad:
    """One building (楼栋) with its units in walking order."""

    building_id: int
    units: tuple[UnitLoad, ...]

    @property
    def people(self) -> int:
        return sum(u.people for u in self.units)


@dataclass(frozen=True)
class SiteDay:
    """The site's hours and throughput for one day."""

    start: dt.time
    end: dt.time
    stations: int
    per_station_hour: int = DEFAULT_PER_STATION_HOUR
    turnout: float = DEFAULT_TURNOUT
    slot_minutes: int = DEFAULT_SLOT_MINUTES

    def check(self) -> None:
        if self.stations < 1:
            raise PlanError("stations must be at least 1", field="stations")
        if self.per_station_hour < 1:
            raise PlanError("per_station_hour must be at least 1", field="per_station_hour")
        if not 0 < self.turnout <= 1:
            raise PlanError("turnout must be above 0 and at most 1", field="turnout")
        if not 5 <= self.slot_minutes <= 240:
            raise PlanError("slot_minutes must be 5 to 240", field="slot_minutes")
        if _minutes(self.end) <= _minutes(self.start):
            raise PlanError("end must be after start", field="end")


@dataclass(frozen=True)
class Piece:
    """A building, or some of its units (``units`` None: the whole building)."""

    building_id: int
    units: tuple[int, ...] | None
    expected: int


@dataclass
class Slot:
    start: dt.time
    end: dt.time
    capacity: int
    pieces: list[Piece] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return sum(p.expected for p in self.pieces)


@dataclass(frozen=True)
class Unplaced:
    piece: Piece
    reason: str


@dataclass
class Plan:
    slots: list[Slot]
    unplaced: list[Unplaced]

    @property
    def placed_expected(self) -> int:
        return sum(s.expected for s in self.slots)

    @property
    def unplaced_expected(self) -> int:
        return sum(u.piece.expected for u in self.unplaced)

    def score(self) -> tuple[int, float, float]:
        """Lower is better: people left out, then the fullest slot, then the spread."""
        return (self.unplaced_expected, round(peak(self.slots), 9), round(spread(self.slots), 9))

    def as_json(self) -> dict[str, object]:
        return {
            "slots": [
                {
                    "start": s.start.strftime("%H:%M"),
                    "end": s.end.strftime("%H:%M"),
                    "capacity": s.capacity,
                    "expected": s.expected,
                    "buildings": [_piece_json(p) for p in s.pieces],
                }
                for s in self.slots
            ],
            "unplaced": [{**_piece_json(u.piece), "reason": u.reason} for u in self.unplaced],
        }


def _piece_json(piece: Piece) -> dict[str, object]:
    units = list(piece.units) if piece.units is not None else None
    return {"building_id": piece.building_id, "units": units, "expected": piece.expected}


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def _time(minutes: int) -> dt.time:
    return dt.time(minutes // 60, minutes % 60)


def expected_of(people: int, turnout: float) -> int:
    """People expected to come (rounded up: a slot is sized for the worst case)."""
    return math.ceil(people * turnout - 1e-9)


def empty_slots(day: SiteDay) -> list[Slot]:
    """The day cut into slots; a shorter last slot gets a proportionally smaller capacity."""
    day.check()
    start, end = _minutes(day.start), _minutes(day.end)
    slots = []
    for t in range(start, end, day.slot_minutes):
        length = min(day.slot_minutes, end - t)
        capacity = day.stations * day.per_station_hour * length // 60
        slots.append(Slot(_time(t), _time(t + length), capacity))
    return slots


def pieces_of(
    building: BuildingLoad, turnout: float, capacity: int
) -> tuple[list[Piece], list[Unplaced]]:
    """The building whole if it fits ``capacity``, otherwise runs of consecutive units
    that do; a unit larger than a slot on its own cannot be placed."""
    unit_expected = [(u.unit_id, expected_of(u.people, turnout)) for u in building.units]
    total = sum(e for _u, e in unit_expected)
    if total <= capacity:
        return [Piece(building.building_id, None, total)], []
    pieces: list[Piece] = []
    unplaced: list[Unplaced] = []
    run: list[int] = []
    run_expected = 0
    for unit_id, expected in unit_expected:
        if expected > capacity:
            unplaced.append(
                Unplaced(Piece(building.building_id, (unit_id,), expected), UNIT_TOO_LARGE)
            )
            continue
        if run and run_expected + expected > capacity:
            pieces.append(Piece(building.building_id, tuple(run), run_expected))
            run, run_expected = [], 0
        run.append(unit_id)
        run_expected += expected
    if run:
        pieces.append(Piece(building.building_id, tuple(run), run_expected))
    return pieces, unplaced


def peak(slots: Sequence[Slot]) -> float:
    """The fullest slot's share of its capacity."""
    return max((s.expected / s.capacity for s in slots if s.capacity), default=0.0)


def spread(slots: Sequence[Slot]) -> float:
    """Fullest minus emptiest share of capacity: 0 is perfectly flat."""
    shares = [s.expected / s.capacity for s in slots if s.capacity]
    return max(shares) - min(shares) if shares else 0.0


def _assign(pieces: Sequence[Piece], slots: list[Slot]) -> list[Unplaced]:
    """Each piece, in the order given, to the least-filled slot (by share) with room."""
    loads = [0] * len(slots)
    unplaced = []
    for piece in pieces:
        best = -1
        best_share = math.inf
        for i, slot in enumerate(slots):
            if slot.capacity and loads[i] + piece.expected <= slot.capacity:
                share = loads[i] / slot.capacity
                if share < best_share:
                    best, best_share = i, share
        if best < 0:
            unplaced.append(Unplaced(piece, NO_CAPACITY))
            continue
        slots[best].pieces.append(piece)
        loads[best] += piece.expected
    return unplaced


def _rebalance(slots: list[Slot], rounds: int = 2000) -> None:
    """Move or swap pieces out of the fullest slot while that lowers the peak or the
    spread without raising the other."""
    loads = [s.expected for s in slots]
    usable = [i for i, s in enumerate(slots) if s.capacity]
    if len(usable) < 2:
        return

    def share(i: int, load: int) -> float:
        return load / slots[i].capacity

    for _ in range(rounds):
        order = sorted(usable, key=lambda i: share(i, loads[i]))
        hi = order[-1]
        hi_share = share(hi, loads[hi])
        improved = False
        for lo in order[:-1]:
            lo_share = share(lo, loads[lo])
            if lo_share >= hi_share:
                break
            # A single move from the fullest slot to a lighter one.
            for k, piece in enumerate(slots[hi].pieces):
                new_lo = loads[lo] + piece.expected
                if new_lo > slots[lo].capacity or piece.expected == 0:
                    continue
                if max(share(hi, loads[hi] - piece.expected), share(lo, new_lo)) < hi_share - 1e-12:
                    slots[lo].pieces.append(slots[hi].pieces.pop(k))
                    loads[hi] -= piece.expected
                    loads[lo] = new_lo
                    improved = True
                    break
            if improved:
                break
            # A swap of a larger piece of the fullest slot with a smaller one.
            for k, a in enumerate(slots[hi].pieces):
                for m, b in enumerate(slots[lo].pieces):
                    delta = a.expected - b.expected
                    if delta <= 0 or loads[lo] + delta > slots[lo].capacity:
                        continue
                    if (
                        max(share(hi, loads[hi] - delta), share(lo, loads[lo] + delta))
                        < hi_share - 1e-12
                    ):
                        slots[hi].pieces[k], slots[lo].pieces[m] = b, a
                        loads[hi] -= delta
                        loads[lo] += delta
                        improved = True
                        break
                if improved:
                    break
            if improved:
                break
        if not improved:
            return


def _sort_slot(slot: Slot, order: dict[int, int]) -> None:
    slot.pieces.sort(key=lambda p: (order.get(p.building_id, 0), p.units or ()))


def greedy_baseline(buildings: Sequence[BuildingLoad], day: SiteDay) -> Plan:
    """The plain plan a person would make: buildings in their own order, each (or each run
    of units) into the least-filled slot that has room."""
    slots = empty_slots(day)
    capacity = max((s.capacity for s in slots), default=0)
    pieces, unplaced = _split_all(buildings, day.turnout, capacity)
    unplaced += _assign(pieces, slots)
    return Plan(slots, unplaced)


def _split_all(
    buildings: Sequence[BuildingLoad], turnout: float, capacity: int
) -> tuple[list[Piece], list[Unplaced]]:
    pieces: list[Piece] = []
    unplaced: list[Unplaced] = []
    for building in buildings:
        got, left = pieces_of(building, turnout, capacity)
        pieces += got
        unplaced += left
    return pieces, unplaced


def plan_slots(buildings: Sequence[BuildingLoad], day: SiteDay) -> Plan:
    """Slots for ``buildings`` on ``day`` (see the module's docstring). Raises
    :class:`PlanError` for impossible parameters. Deterministic."""
    seen: set[int] = set()
    for b in buildings:
        if b.building_id in seen:
            raise PlanError(f"building {b.building_id} given twice", field="buildings")
        seen.add(b.building_id)
    order = {b.building_id: i for i, b in enumerate(buildings)}
    slots = empty_slots(day)
    capacity = max((s.capacity for s in slots), default=0)
    pieces, unplaced = _split_all(buildings, day.turnout, capacity)
    # Largest first; ties in the buildings' own order so that equal input gives equal plans.
    ranked = sorted(pieces, key=lambda p: (-p.expected, order[p.building_id], p.units or ()))
    unplaced += _assign(ranked, slots)
    _rebalance(slots)
    plan = Plan(slots, unplaced)
    baseline = greedy_baseline(buildings, day)
    best = plan if plan.score() <= baseline.score() else baseline
    for slot in best.slots:
        _sort_slot(slot, order)
    best.unplaced.sort(key=lambda u: (order[u.piece.building_id], u.piece.units or ()))
    return best
