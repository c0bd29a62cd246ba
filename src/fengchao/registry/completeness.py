"""The completeness report (应录尽录): what is missing per building and compound.

``summarise`` is pure: it takes plain rows and returns figures and the list of what to
fix, so it is tested without a database. The service counts the same figures in SQL for
the overview (``Figures.from_counts``; a test holds both to the same answer) and calls
``summarise`` on the rows of the part a user drills into.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum


class Gap(StrEnum):
    """A kind of missing or doubtful registration."""

    empty_household = "empty_household"  # 无人登记户
    no_phone = "no_phone"
    no_face = "no_face"
    no_id = "no_id"
    duplicate = "duplicate"  # 疑似重复登记
    moved_out_living = "moved_out_living"  # 已搬离仍登记在住


@dataclass(frozen=True)
class HouseholdRow:
    household_id: int
    building_id: int
    compound_id: int
    address: str
    vacant: bool


@dataclass(frozen=True)
class PersonRow:
    person_id: int
    household_id: int
    name: str
    phone: str | None
    birth_date: str | None
    has_id: bool
    has_face: bool
    living: bool


@dataclass
class Figures:
    """Counts for one building, one compound or the whole scope."""

    households: int = 0
    occupied_households: int = 0
    registered_households: int = 0
    people: int = 0
    with_phone: int = 0
    with_face: int = 0
    with_id: int = 0
    gaps: Counter[Gap] = field(default_factory=Counter)

    def add(self, other: Figures) -> None:
        for name in (
            "households", "occupied_households", "registered_households",
            "people", "with_phone", "with_face", "with_id",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.gaps.update(other.gaps)

    @classmethod
    def from_counts(
        cls,
        *,
        households: int,
        occupied: int,
        registered: int,
        people: int,
        with_phone: int,
        with_face: int,
        with_id: int,
        duplicates: int,
        living_in_vacant: int,
    ) -> Figures:
        """Figures of one building from the counts a database can give."""
        gaps: Counter[Gap] = Counter(
            {
                Gap.empty_household: occupied - registered,
                Gap.no_phone: people - with_phone,
                Gap.no_face: people - with_face,
                Gap.no_id: people - with_id,
                Gap.duplicate: duplicates,
                Gap.moved_out_living: living_in_vacant,
            }
        )
        return cls(
            households, occupied, registered, people, with_phone, with_face, with_id,
            +gaps,
        )  # fmt: skip

    @staticmethod
    def _pct(part: int, whole: int) -> float:
        return round(100.0 * part / whole, 1) if whole else 100.0

    @property
    def household_coverage(self) -> float:
        return self._pct(self.registered_households, self.occupied_households)

    @property
    def phone_coverage(self) -> float:
        return self._pct(self.with_phone, self.people)

    @property
    def face_coverage(self) -> float:
        return self._pct(self.with_face, self.people)

    @property
    def id_coverage(self) -> float:
        return self._pct(self.with_id, self.people)


@dataclass(frozen=True)
class GapItem:
    """One thing to fix, listed under its building."""

    gap: Gap
    building_id: int
    household_id: int
    address: str
    person_id: int | None = None
    name: str | None = None


@dataclass
class Report:
    by_building: dict[int, Figures]
    by_compound: dict[int, Figures]
    total: Figures
    items: list[GapItem]


def duplicate_keys(people: list[PersonRow]) -> set[tuple[str, str]]:
    """(name, phone) and (name, birth date) pairs that occur more than once: the same
    name with the same phone or birth date twice is almost always one person entered
    twice (often once without ID number)."""
    seen: Counter[tuple[str, str]] = Counter()
    for p in people:
        for key in (p.phone, p.birth_date):
            if key:
                seen[(p.name, key)] += 1
    return {key for key, n in seen.items() if n > 1}


def summarise(
    households: list[HouseholdRow],
    people: list[PersonRow],
    duplicates: set[tuple[str, str]] | None = None,
) -> Report:
    """Figures and items for ``households`` and their ``people``. ``duplicates`` are the
    duplicate keys of the whole scope when the rows are only part of it."""
    home = {h.household_id: h for h in households}
    by_building: dict[int, Figures] = defaultdict(Figures)
    items: list[GapItem] = []
    members: Counter[int] = Counter()
    doubled = duplicate_keys(people) if duplicates is None else duplicates

    for p in people:
        h = home.get(p.household_id)
        if h is None:
            continue
        members[p.household_id] += 1
        fig = by_building[h.building_id]
        fig.people += 1
        fig.with_phone += p.phone is not None
        fig.with_face += p.has_face
        fig.with_id += p.has_id
        gaps = []
        if p.phone is None:
            gaps.append(Gap.no_phone)
        if not p.has_face:
            gaps.append(Gap.no_face)
        if not p.has_id:
            gaps.append(Gap.no_id)
        if any((p.name, k) in doubled for k in (p.phone, p.birth_date) if k):
            gaps.append(Gap.duplicate)
        if p.living and h.vacant:
            gaps.append(Gap.moved_out_living)
        for gap in gaps:
            fig.gaps[gap] += 1
            items.append(
                GapItem(gap, h.building_id, h.household_id, h.address, p.person_id, p.name)
            )

    for h in households:
        fig = by_building[h.building_id]
        fig.households += 1
        if not h.vacant:
            fig.occupied_households += 1
            if members[h.household_id]:
                fig.registered_households += 1
            else:
                fig.gaps[Gap.empty_household] += 1
                items.append(GapItem(Gap.empty_household, h.building_id, h.household_id, h.address))

    compound_of = {h.building_id: h.compound_id for h in households}
    return roll_up(dict(by_building), compound_of, items)


def roll_up(
    by_building: dict[int, Figures], compound_of: dict[int, int], items: list[GapItem]
) -> Report:
    """Compound and total figures from the buildings'."""
    by_compound: dict[int, Figures] = defaultdict(Figures)
    total = Figures()
    for building_id, fig in by_building.items():
        by_compound[compound_of[building_id]].add(fig)
        total.add(fig)
    return Report(by_building, dict(by_compound), total, items)
