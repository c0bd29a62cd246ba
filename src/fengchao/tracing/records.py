"""The records contact finding reads, answered from the database through the other slices'
services: the registry (who lives with whom), the access record (passages), the sampling
site (swabs, the queue, tubes) and, once that slice keeps them, visitor passes. Each
question is one indexed query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from fengchao.access import passages as access_passages
from fengchao.registry import service as registry
from fengchao.sampling import service as sampling
from fengchao.tracing.contacts import Passage, Subject, Swab, Visit, Window


def _person(subject: Subject) -> int | None:
    kind, number = subject
    return number if kind == "person" else None


class DatabaseRecords:
    """``contacts.Records`` over one community's database rows (read-only)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._households: dict[int, int | None] = {}
        self._near: dict[tuple[int, dt.datetime, int], list[Passage]] = {}

    def household_of(self, subject: Subject) -> int | None:
        person = _person(subject)
        if person is None:
            return None
        if person not in self._households:
            self._households[person] = registry.household_of_person(
                session=self.session, person_id=person
            )
        return self._households[person]

    def household_members(self, household_id: int) -> list[Subject]:
        return [
            ("person", p)
            for p in registry.household_residents(session=self.session, household_id=household_id)
        ]

    def households_of(self, subjects: Sequence[Subject]) -> dict[Subject, int]:
        people = [n for kind, n in subjects if kind == "person"]
        found = registry.households_of_people(session=self.session, person_ids=people)
        return {("person", p): h for p, h in found.items()}

    def members_of(self, household_ids: Sequence[int]) -> dict[int, list[Subject]]:
        found = registry.residents_of_households(
            session=self.session, household_ids=list(household_ids)
        )
        return {h: [("person", p) for p in people] for h, people in found.items()}

    def building_of(self, household_id: int) -> int | None:
        return registry.building_of_household(session=self.session, household_id=household_id)

    def building_residents(self, building_id: int) -> list[tuple[Subject, int]]:
        return [
            (("person", p), h)
            for p, h in registry.building_residents(session=self.session, building_id=building_id)
        ]

    def passages_of(self, subject: Subject, window: Window) -> list[Passage]:
        person = _person(subject)
        if person is None:
            return []
        rows = access_passages.passages_of(
            self.session, person_id=person, start=window.start, end=window.end
        )
        return [
            Passage(("person", r.person_id), r.gate_id, r.direction, r.at, r.event_id) for r in rows
        ]

    def passages_near(self, gate_id: int, at: dt.datetime, minutes: int) -> list[Passage]:
        key = (gate_id, at, minutes)
        if key not in self._near:
            rows = access_passages.passages_near(
                self.session, gate_id=gate_id, at=at, minutes=minutes
            )
            self._near[key] = [
                Passage(("person", r.person_id), r.gate_id, r.direction, r.at, r.event_id)
                for r in rows
            ]
        return self._near[key]

    # Visitor passes join here when their slice keeps them (issue 14); until then that
    # source contributes nothing, and the case page says so.
    def visits_hosted(self, household_id: int, window: Window) -> Sequence[Visit]:
        return []

    def visits_made(self, visitor: Subject, window: Window) -> Sequence[Visit]:
        return []

    def swabs_of(self, subject: Subject, window: Window) -> list[Swab]:
        person = _person(subject)
        if person is None:
            return []
        rows = sampling.swabs_of(self.session, person, window.start, window.end)
        return [_swab(row) for row in rows]

    def queue_around(self, swab: Swab, neighbours: int) -> list[Swab]:
        return [_swab(r) for r in sampling.queue_around(self.session, swab.swab_id, neighbours)]

    def tube_mates(self, tube_id: int) -> list[Swab]:
        return [_swab(r) for r in sampling.tube_mates(self.session, tube_id)]


def _swab(row: sampling.SwabRecord) -> Swab:
    return Swab(
        ("person", row.person_id), row.site_id, row.tube_id, row.tube_barcode, row.at, row.swab_id
    )
