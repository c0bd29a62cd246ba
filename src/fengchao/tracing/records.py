"""The records contact finding reads, answered from the database through the other slices'
services: the registry (who lives with whom), the access record (passages), the sampling
site (swabs, the queue, tubes) and the visitors slice (passes: who visited which
household). Each question is one indexed query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from fengchao.access import passages as access_passages
from fengchao.registry import service as registry
from fengchao.sampling import service as sampling
from fengchao.tracing.contacts import CoPassage, Passage, Subject, Swab, Visit, Window
from fengchao.visitors import service as visitors


def _person(subject: Subject) -> int | None:
    kind, number = subject
    return number if kind == "person" else None


class DatabaseRecords:
    """``contacts.Records`` over one community's database rows (read-only)."""

    # From this many people asked about at once, who lives where is read for the whole
    # community (kept between cases while the registry is unchanged).
    MANY = 300

    def __init__(self, session: Session, community_id: int | None = None) -> None:
        self.session = session
        self.community_id = community_id
        self._households: dict[int, int | None] = {}
        self._near: dict[tuple[int, dt.datetime, int], list[Passage]] = {}
        self._made: dict[tuple[int, Window], list[tuple[Visit, list[Passage]]]] = {}

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

    def _homes(self, count: int) -> registry.Homes | None:
        if self.community_id is None or count < self.MANY:
            return None
        return registry.community_homes(session=self.session, community_id=self.community_id)

    def households_of(self, subjects: Sequence[Subject]) -> dict[Subject, int]:
        people = [n for kind, n in subjects if kind == "person"]
        homes = self._homes(len(people))
        if homes is not None:
            found = homes.household_of
            return {("person", p): found[p] for p in people if p in found}
        found = registry.households_of_people(session=self.session, person_ids=people)
        return {("person", p): h for p, h in found.items()}

    def members_of(self, household_ids: Sequence[int]) -> dict[int, list[Subject]]:
        homes = self._homes(len(household_ids))
        if homes is not None:
            living = homes.residents
            return {h: [("person", p) for p in living.get(h, ())] for h in household_ids}
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
            # A visitor: the gate passages of each of their passes.
            return sorted(
                (p for visit in self._visits_made(subject, window) for p in visit[1]),
                key=lambda p: (p.at, p.event_id),
            )
        rows = access_passages.passages_of(
            self.session, person_id=person, start=window.start, end=window.end
        )
        return [
            Passage(("person", r.person_id), r.gate_id, r.direction, r.at, r.event_id) for r in rows
        ]

    def co_passages(self, subject: Subject, window: Window, minutes: int) -> list[CoPassage]:
        person = _person(subject)
        passages = {p.event_id: p for p in self.passages_of(subject, window)}
        if person is None:  # a visitor: their few passages, one range read each
            return [
                CoPassage(
                    mine,
                    other.subject,
                    other.direction,
                    other.at.isoformat(timespec="seconds"),
                    (other.at - mine.at).total_seconds(),
                    other.event_id,
                )
                for mine in passages.values()
                for other in self.passages_near(mine.gate_id, mine.at, minutes)
            ]
        rows = access_passages.co_passages(
            self.session, person_id=person, start=window.start, end=window.end, minutes=minutes
        )
        return [
            CoPassage(passages[case], ("person", who), direction, at, seconds, event)
            for case, event, who, direction, at, seconds in rows
            if case in passages  # always, unless a passage was written in between
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

    def _passes(self, record: visitors.VisitRecord) -> list[Passage]:
        rows = access_passages.passages_of_pass(
            self.session,
            pass_id=record.pass_id,
            gate_ids=list(record.gate_ids),
            start=record.start - dt.timedelta(seconds=1),
            end=record.end + dt.timedelta(seconds=1),
        )
        who: Subject = ("visitor", record.pass_id)
        return [Passage(who, r.gate_id, r.direction, r.at, r.event_id) for r in rows]

    def _visit(self, record: visitors.VisitRecord) -> tuple[Visit, list[Passage]]:
        passages = self._passes(record)
        entry = next((p for p in passages if p.direction == "in"), None)
        visit = Visit(
            ("visitor", record.pass_id),
            record.host_household_id,
            record.start,
            record.end,
            record.pass_id,
            record.host_place,
            entry.at if entry else record.entered_at,
            entry.gate_id if entry else None,
        )
        return visit, passages

    def visits_hosted(self, household_id: int, window: Window) -> list[Visit]:
        records = visitors.visits_to_households(
            session=self.session, household_ids=[household_id], start=window.start, end=window.end
        )
        return [self._visit(r)[0] for r in records]

    def _visits_made(self, visitor: Subject, window: Window) -> list[tuple[Visit, list[Passage]]]:
        kind, number = visitor
        if kind != "visitor":
            return []
        key = (number, window)
        if key not in self._made:
            records = visitors.visits_by_visitor(
                session=self.session, pass_id=number, start=window.start, end=window.end
            )
            self._made[key] = [self._visit(r) for r in records]
        return self._made[key]

    def visits_made(self, visitor: Subject, window: Window) -> list[Visit]:
        return [visit for visit, _passages in self._visits_made(visitor, window)]

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
