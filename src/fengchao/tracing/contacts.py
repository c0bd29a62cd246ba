"""Contact finding (流调): who was near a case, why, and how close — a pure module.

Plain records in, contacts out; no database. The records come through the ``Records``
protocol so that the service can answer each question with one indexed query (the
co-passage question as a windowed lookup on (gate, time), a person's passages on (person,
time)) while tests answer them from lists (``RecordLists``).

Every source (household, co-passage, visitor, sampling queue, tube, building, chain) has
its tier and, where it has one, its window in ``Rules``. A person reached through several
sources is one contact with several reasons; the highest tier wins. Contacts of close
contacts are found to ``Rules.depth`` and are secondary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

Tier = Literal["close", "secondary"]
ReasonKind = Literal[
    "household", "co_passage", "visitor", "sampling_queue", "tube", "building", "chain"
]
Subject = tuple[Literal["person", "visitor"], int]
"""Who a contact is: a registered person or a visitor (whose ids are their own)."""

_TIER_RANK: dict[str, int] = {"close": 2, "secondary": 1}


class Passage(NamedTuple):
    """One allowed passage through a gate (from the access record). A named tuple: a busy
    case reads tens of thousands of them."""

    subject: Subject
    gate_id: int
    direction: str
    at: dt.datetime
    event_id: int


class CoPassage(NamedTuple):
    """Another's passage at the gate of the case's passage ``case``: who, which way, when
    (ISO 8601 in UTC, as the evidence shows it) and how many seconds after the case's
    passage (negative: before)."""

    case: Passage
    subject: Subject
    direction: str
    at: str
    seconds: float
    event_id: int


@dataclass(frozen=True)
class Visit:
    """A visitor's pass used at a host household (from the visitors slice): when the
    visitor was inside (as the gate saw it, else the pass's window), and the gate passage
    of the entry when one was recorded."""

    visitor: Subject
    host_household_id: int
    start: dt.datetime
    end: dt.datetime
    pass_id: int
    place: str = ""
    entered_at: dt.datetime | None = None
    gate_id: int | None = None

    def evidence(self, role: str) -> dict[str, object]:
        """What a tracer checks: the pass, the day, the host household, the gate."""
        found: dict[str, object] = {
            "pass_id": self.pass_id,
            "at": _stamp(self.start),
            "until": _stamp(self.end),
            "household_id": self.host_household_id,
            "role": role,
        }
        if self.place:
            found["place"] = self.place
        if self.entered_at is not None:
            found["entered_at"] = _stamp(self.entered_at)
        if self.gate_id is not None:
            found["gate_id"] = self.gate_id
        return found


@dataclass(frozen=True)
class Swab:
    """One swab at the sampling site: its place in the site's queue and its tube."""

    subject: Subject
    site_id: int
    tube_id: int
    tube_barcode: str
    at: dt.datetime
    swab_id: int


@dataclass(frozen=True)
class Rules:
    """What counts as contact, and how close. Defaults follow common practice: household
    members, co-passages (±5 min), visits, queue neighbours and tube mates are close
    contacts (密接); the building's other residents and contacts of close contacts are
    secondary (次密接)."""

    co_passage_minutes: int = 5
    co_passage_same_direction_only: bool = False
    queue_neighbours: int = 2
    include_building: bool = True
    depth: int = 2
    # Which links of a close contact make their contacts secondary: by default living
    # together (次密接 as tracing teams count them). Visits and shared tubes of close contacts
    # can be added; co-passages of co-passages are best left out: at a busy gate they reach
    # most of the community and say little. Each added kind costs queries per close contact.
    chain_kinds: frozenset[str] = frozenset({"household"})
    tiers: dict[str, Tier] = field(
        default_factory=lambda: {
            "household": "close",
            "co_passage": "close",
            "visitor": "close",
            "sampling_queue": "close",
            "tube": "close",
            "building": "secondary",
            "chain": "secondary",
        }
    )

    def problems(self) -> list[str]:
        """What makes these rules unusable (empty when they are fine)."""
        found = []
        if not 0 <= self.co_passage_minutes <= 120:
            found.append("co_passage_minutes must be between 0 and 120")
        if not 0 <= self.queue_neighbours <= 20:
            found.append("queue_neighbours must be between 0 and 20")
        if not 1 <= self.depth <= 3:
            found.append("depth must be between 1 and 3")
        unknown = set(self.chain_kinds) - ALL_KINDS
        if unknown:
            found.append(f"chain_kinds: unknown kinds {sorted(unknown)}")
        for kind, tier in self.tiers.items():
            if tier not in _TIER_RANK:
                found.append(f"tier of {kind} must be close or secondary")
        return found


class Reason(NamedTuple):
    """Why someone is a contact, with the evidence a tracer checks (which gate, which
    minute, which tube). A named tuple, as ``Passage``."""

    kind: ReasonKind
    evidence: dict[str, object]
    tier: Tier


@dataclass(frozen=True)
class Dismissal:
    """An earlier decision that someone was not a contact of another case."""

    case_id: int
    reason: str
    at: dt.datetime


@dataclass
class Contact:
    subject: Subject
    tier: Tier
    reasons: list[Reason]
    earlier_dismissals: list[Dismissal] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    def __contains__(self, moment: dt.datetime) -> bool:
        return self.start <= moment <= self.end


class Records(Protocol):
    """The questions contact finding asks. Each answer covers the given window only."""

    def household_of(self, subject: Subject) -> int | None: ...

    def household_members(self, household_id: int) -> Sequence[Subject]: ...

    def households_of(self, subjects: Sequence[Subject]) -> dict[Subject, int]:
        """The household of each subject that has one (one read for all)."""
        ...

    def members_of(self, household_ids: Sequence[int]) -> dict[int, list[Subject]]:
        """The people living in each household (one read for all)."""
        ...

    def building_of(self, household_id: int) -> int | None: ...

    def building_residents(self, building_id: int) -> Sequence[tuple[Subject, int]]:
        """(person, household) for everyone living in the building."""
        ...

    def co_passages(self, subject: Subject, window: Window, minutes: int) -> Iterable[CoPassage]:
        """Others' passages at the same gate within ``minutes`` of each of the subject's
        passages within ``window``: one windowed self-join over (gate, time). The answer
        may be a little wide; the rule decides."""
        ...

    def visits_hosted(self, household_id: int, window: Window) -> Sequence[Visit]: ...

    def visits_made(self, visitor: Subject, window: Window) -> Sequence[Visit]: ...

    def swabs_of(self, subject: Subject, window: Window) -> Sequence[Swab]: ...

    def queue_around(self, swab: Swab, neighbours: int) -> Sequence[Swab]:
        """The swabs registered just before and after ``swab`` at its site."""
        ...

    def tube_mates(self, tube_id: int) -> Sequence[Swab]: ...


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


class _Collector:
    """Contacts keyed by subject, merging reasons and keeping the highest tier."""

    def __init__(self, case: Subject, rules: Rules) -> None:
        self.case = case
        self.rules = rules
        self.found: dict[Subject, Contact] = {}

    def add(self, subject: Subject, kind: ReasonKind, evidence: dict[str, object]) -> None:
        if subject == self.case:
            return
        tier = self.rules.tiers.get(kind, "secondary")
        reason = Reason(kind, evidence, tier)
        contact = self.found.get(subject)
        if contact is None:
            self.found[subject] = Contact(subject, tier, [reason])
            return
        if reason not in contact.reasons:
            contact.reasons.append(reason)
        if _TIER_RANK[tier] > _TIER_RANK[contact.tier]:
            contact.tier = tier


ALL_KINDS = frozenset({"household", "co_passage", "visitor", "sampling_queue", "tube", "building"})


def _direct(
    subject: Subject,
    records: Records,
    window: Window,
    rules: Rules,
    out: _Collector,
    kinds: frozenset[str] = ALL_KINDS,
) -> None:
    """Every direct contact of ``subject`` within ``window`` through the given ``kinds`` of
    link (each kind's records are read only when it is asked for)."""
    wants_home = bool(kinds & {"household", "building", "visitor"})
    household = records.household_of(subject) if wants_home else None
    if household is not None:
        if "household" in kinds:
            for member in records.household_members(household):
                out.add(member, "household", {"household_id": household})
        building = records.building_of(household) if "building" in kinds else None
        if rules.include_building and building is not None:
            for resident, their_household in records.building_residents(building):
                if their_household != household:
                    out.add(resident, "building", {"building_id": building})
    if household is not None and "visitor" in kinds:
        # Visitors the subject's household received (role: they were the host's guest).
        for visit in records.visits_hosted(household, window):
            out.add(visit.visitor, "visitor", visit.evidence("guest"))
    for visit in records.visits_made(subject, window) if "visitor" in kinds else ():
        # Households the subject visited as a visitor (role: they were the host).
        for member in records.household_members(visit.host_household_id):
            out.add(member, "visitor", visit.evidence("host"))
    if "co_passage" in kinds:
        _co_passages(subject, records, window, rules, out)
    swab_kinds = kinds & {"sampling_queue", "tube"}
    for swab in records.swabs_of(subject, window) if swab_kinds else ():
        for neighbour in records.queue_around(swab, rules.queue_neighbours):
            if "sampling_queue" not in kinds:
                break
            out.add(
                neighbour.subject,
                "sampling_queue",
                {
                    "site_id": swab.site_id,
                    "case_at": _stamp(swab.at),
                    "contact_at": _stamp(neighbour.at),
                },
            )
        for mate in records.tube_mates(swab.tube_id) if "tube" in kinds else ():
            out.add(mate.subject, "tube", {"tube": swab.tube_barcode, "at": _stamp(swab.at)})


def _co_passages(
    subject: Subject, records: Records, window: Window, rules: Rules, out: _Collector
) -> None:
    """People through the same gate within the minutes of the rule (时空伴随). The hot path
    of a busy record (tens of thousands of pairs a case): each case passage is stamped
    once, and each pair (unique by its two events) is added without comparing reasons."""
    minutes = rules.co_passage_minutes
    same_only = rules.co_passage_same_direction_only
    tier = rules.tiers.get("co_passage", "secondary")
    rank = _TIER_RANK[tier]
    found = out.found
    stamps: dict[int, str] = {}
    for mine, who, direction, contact_at, seconds, _event in records.co_passages(
        subject, window, minutes
    ):
        if who == subject or who == out.case:
            continue
        if same_only and direction != mine.direction:
            continue
        gap = abs(seconds) / 60
        if gap > minutes + 1e-6:  # (a database's seconds may be a hair off the exact minute)
            continue  # the records may answer a little wide; the rule decides
        case_at = stamps.get(mine.event_id)
        if case_at is None:
            case_at = stamps[mine.event_id] = _stamp(mine.at)
        reason = Reason(
            "co_passage",
            {
                "gate_id": mine.gate_id,
                "case_at": case_at,
                "contact_at": contact_at,
                "minutes_apart": round(gap, 1),
                "direction": direction,
            },
            tier,
        )
        # What _Collector.add does, inline: each pair is distinct (two events).
        contact = found.get(who)
        if contact is None:
            found[who] = Contact(who, tier, [reason])
        else:
            contact.reasons.append(reason)
            if rank > _TIER_RANK[contact.tier]:
                contact.tier = tier


def _chain_links(
    frontier: list[Subject], records: Records, window: Window, rules: Rules
) -> Iterator[tuple[Subject, Subject, str]]:
    """(close contact, their contact, kind of link) for every chain link of the frontier.
    Household links are read for the whole frontier at once (a busy gate gives hundreds of
    close contacts; one query each would not do)."""
    if "household" in rules.chain_kinds:
        homes = records.households_of(frontier)
        members = records.members_of(sorted(set(homes.values())))
        for via in frontier:
            for member in members.get(homes.get(via, -1), []):
                if member != via:
                    yield via, member, "household"
    others = (rules.chain_kinds & ALL_KINDS) - {"household", "building"}
    if others:
        for via in frontier:
            inner = _Collector(via, rules)
            _direct(via, records, window, rules, inner, frozenset(others))
            for subject, found in inner.found.items():
                for reason in found.reasons:
                    if reason.tier == "close":
                        yield via, subject, reason.kind


def find_contacts(
    case: Subject,
    records: Records,
    window: Window,
    rules: Rules | None = None,
    dismissals: dict[Subject, list[Dismissal]] | None = None,
) -> list[Contact]:
    """The contacts of ``case`` within ``window``: close contacts first, then secondary,
    each once with all their reasons, and with the dismissals other cases recorded for them
    (a dismissed contact who turns up again is shown again)."""
    rules = rules or Rules()
    problems = rules.problems()
    if problems:
        raise ValueError("; ".join(problems))
    collector = _Collector(case, rules)
    _direct(case, records, window, rules, collector)
    frontier = [c.subject for c in collector.found.values() if c.tier == "close"]
    seen = {case, *frontier}
    for level in range(2, rules.depth + 1):
        reached: dict[Subject, tuple[Subject, set[str]]] = {}
        for via, subject, kind in _chain_links(frontier, records, window, rules):
            if subject in seen:
                continue
            first_via, kinds = reached.setdefault(subject, (via, set()))
            if first_via == via:
                kinds.add(kind)
        for subject, (via, kinds) in reached.items():
            evidence = {"via": list(via), "kinds": sorted(kinds), "depth": level}
            collector.add(subject, "chain", evidence)
        seen.update(reached)
        frontier = list(reached)
    contacts = list(collector.found.values())
    for contact in contacts:
        contact.earlier_dismissals = list((dismissals or {}).get(contact.subject, []))
    contacts.sort(key=lambda c: (-_TIER_RANK[c.tier], c.subject))
    return contacts


@dataclass
class RecordLists:
    """``Records`` answered from plain lists (tests, small command-line runs)."""

    households: dict[Subject, int] = field(default_factory=dict)
    buildings: dict[int, int] = field(default_factory=dict)  # household -> building
    passages: list[Passage] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    swabs: list[Swab] = field(default_factory=list)

    def household_of(self, subject: Subject) -> int | None:
        return self.households.get(subject)

    def household_members(self, household_id: int) -> list[Subject]:
        return sorted(s for s, h in self.households.items() if h == household_id)

    def households_of(self, subjects: Sequence[Subject]) -> dict[Subject, int]:
        return {s: self.households[s] for s in subjects if s in self.households}

    def members_of(self, household_ids: Sequence[int]) -> dict[int, list[Subject]]:
        return {h: self.household_members(h) for h in household_ids}

    def building_of(self, household_id: int) -> int | None:
        return self.buildings.get(household_id)

    def building_residents(self, building_id: int) -> list[tuple[Subject, int]]:
        return sorted(
            (s, h) for s, h in self.households.items() if self.buildings.get(h) == building_id
        )

    def passages_of(self, subject: Subject, window: Window) -> list[Passage]:
        return [p for p in self.passages if p.subject == subject and p.at in window]

    def co_passages(self, subject: Subject, window: Window, minutes: int) -> list[CoPassage]:
        reach = dt.timedelta(minutes=minutes)
        return [
            CoPassage(
                mine,
                other.subject,
                other.direction,
                _stamp(other.at),
                (other.at - mine.at).total_seconds(),
                other.event_id,
            )
            for mine in self.passages_of(subject, window)
            for other in self.passages
            if other.gate_id == mine.gate_id and abs(other.at - mine.at) <= reach
        ]

    def visits_hosted(self, household_id: int, window: Window) -> list[Visit]:
        return [
            v for v in self.visits if v.host_household_id == household_id and _overlaps(v, window)
        ]

    def visits_made(self, visitor: Subject, window: Window) -> list[Visit]:
        return [v for v in self.visits if v.visitor == visitor and _overlaps(v, window)]

    def swabs_of(self, subject: Subject, window: Window) -> list[Swab]:
        return [s for s in self.swabs if s.subject == subject and s.at in window]

    def queue_around(self, swab: Swab, neighbours: int) -> list[Swab]:
        queue = sorted(
            (s for s in self.swabs if s.site_id == swab.site_id and s.at.date() == swab.at.date()),
            key=lambda s: (s.at, s.swab_id),
        )
        index = queue.index(swab)
        return _around(queue, index, neighbours)

    def tube_mates(self, tube_id: int) -> list[Swab]:
        return [s for s in self.swabs if s.tube_id == tube_id]


def _overlaps(visit: Visit, window: Window) -> bool:
    return visit.start <= window.end and visit.end >= window.start


def _around(queue: Sequence[Swab], index: int, neighbours: int) -> list[Swab]:
    lower = max(0, index - neighbours)
    return [s for s in queue[lower : index + neighbours + 1] if s != queue[index]]


def lookback_window(
    *,
    onset: dt.datetime | None,
    sampled: dt.datetime | None,
    confirmed: dt.datetime,
    days_before: int = 4,
) -> Window:
    """From ``days_before`` days before the earlier of onset and sampling (or confirmation
    when neither is known) up to confirmation."""
    anchors: Iterable[dt.datetime] = [d for d in (onset, sampled) if d is not None]
    anchor = min(anchors, default=confirmed)
    return Window(anchor - dt.timedelta(days=days_before), max(confirmed, anchor))
