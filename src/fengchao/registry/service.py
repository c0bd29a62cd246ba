"""The registry's reads: the grid within a user's scope, households, people, search,
completeness; and setting a person's ID number."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import (
    Actor,
    NotFound,
    Permission,
    audit,
    require,
)
from fengchao.registry import completeness, id_numbers
from fengchao.registry import figures as figures_cache
from fengchao.registry.models import (
    Building,
    BuildingLead,
    Compound,
    HealthStatus,
    Household,
    Person,
    ResidenceStatus,
    Unit,
)
from fengchao.registry.scope import building_in_scope, household_in_scope
from fengchao.registry.validation import parse_id_number

# --- the grid --------------------------------------------------------------------------


@dataclass
class BuildingSummary:
    building: Building
    households: int
    people: int
    lead_name: str | None


@dataclass
class CompoundNode:
    compound: Compound
    buildings: list[BuildingSummary] = field(default_factory=list)

    @property
    def households(self) -> int:
        return sum(b.households for b in self.buildings)

    @property
    def people(self) -> int:
        return sum(b.people for b in self.buildings)


def grid_tree(*, session: Session, actor: Actor, community_id: int) -> list[CompoundNode]:
    """Compounds and their buildings with counts, limited to the actor's scope."""
    require(actor, Permission.registry_read)
    scope = building_in_scope(actor.scope)
    households = dict(
        session.execute(
            select(Household.building_id, func.count())
            .where(Household.community_id == community_id, household_in_scope(actor.scope))
            .group_by(Household.building_id)
        ).all()
    )
    people = dict(
        session.execute(
            select(Household.building_id, func.count(Person.id))
            .join(Person, Person.household_id == Household.id)
            .where(Household.community_id == community_id, household_in_scope(actor.scope))
            .group_by(Household.building_id)
        ).all()
    )
    leads = dict(
        session.execute(
            select(BuildingLead.building_id, Person.name)
            .join(Person, Person.id == BuildingLead.person_id)
            .where(BuildingLead.community_id == community_id)
        ).all()
    )
    nodes: dict[int, CompoundNode] = {}
    buildings = session.scalars(
        select(Building)
        .options(joinedload(Building.compound))
        .where(Building.community_id == community_id, scope)
        .order_by(Building.compound_id, Building.sort_key, Building.name)
    )
    for building in buildings:
        node = nodes.setdefault(building.compound_id, CompoundNode(building.compound))
        node.buildings.append(
            BuildingSummary(
                building,
                households.get(building.id, 0),
                people.get(building.id, 0),
                leads.get(building.id),
            )
        )
    return list(nodes.values())


def get_building(*, session: Session, actor: Actor, building_id: int) -> Building:
    require(actor, Permission.registry_read)
    building = session.scalar(
        select(Building)
        .options(joinedload(Building.compound))
        .where(Building.id == building_id, building_in_scope(actor.scope))
    )
    if building is None:
        raise NotFound(f"building {building_id}")
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="building",
        object_id=building.id,
        community_id=building.community_id,
    )
    return building


def building_lead(*, session: Session, building_id: int) -> Person | None:
    return session.scalar(
        select(Person)
        .join(BuildingLead, BuildingLead.person_id == Person.id)
        .where(BuildingLead.building_id == building_id)
    )


@dataclass
class Room:
    """One flat as the building page draws it."""

    household: Household
    people: int
    status: str  # vacant, empty, positive, isolation, care, normal: the tile's colour

    @property
    def floor(self) -> int:
        return floor_of(self.household.room)


@dataclass
class UnitRow:
    unit: Unit
    households: list[tuple[Household, int]]
    rooms: list[Room] = field(default_factory=list)

    @property
    def floors(self) -> list[tuple[int, list[Room]]]:
        """Rooms by floor, top floor first, as the building stands."""
        by_floor: dict[int, list[Room]] = {}
        for room in self.rooms:
            by_floor.setdefault(room.floor, []).append(room)
        return sorted(by_floor.items(), reverse=True)


def floor_of(room: str) -> int:
    """1302 → 13, 0201 → 2, 101 → 1; a room without digits counts as floor 0."""
    digits = re.sub(r"\D", "", room)
    return int(digits[:-2]) if len(digits) >= 3 else 0


_WORST = {
    HealthStatus.positive: "positive",
    HealthStatus.central_isolation: "isolation",
    HealthStatus.home_isolation: "isolation",
}


def building_units(*, session: Session, building: Building) -> list[UnitRow]:
    """Units and flats of a building the caller got from :func:`get_building`, each flat
    with its people count and the status its tile shows."""
    building_id = building.id
    counts: dict[int, int] = {}
    status: dict[int, str] = {}
    for household_id, health, tags in session.execute(
        select(Person.household_id, Person.health_status, Person.care_tags)
        .join(Household, Household.id == Person.household_id)
        .where(
            Household.building_id == building_id,
            Person.residence_status != ResidenceStatus.moved_out,
        )
    ):
        counts[household_id] = counts.get(household_id, 0) + 1
        now = status.get(household_id, "normal")
        seen = _WORST.get(health) or ("care" if tags else "normal")
        order = ("positive", "isolation", "care", "normal")
        status[household_id] = min(now, seen, key=order.index)
    units = session.scalars(
        select(Unit).where(Unit.building_id == building_id).order_by(Unit.sort_key, Unit.name)
    ).all()
    households = session.scalars(
        select(Household).where(Household.building_id == building_id).order_by(Household.id)
    ).all()
    rows = {u.id: UnitRow(u, []) for u in units}
    for household in sorted(households, key=lambda h: room_key(h.room)):
        n = counts.get(household.id, 0)
        shown = "vacant" if household.vacant else "empty" if n == 0 else status[household.id]
        rows[household.unit_id].households.append((household, n))
        rows[household.unit_id].rooms.append(Room(household, n, shown))
    return list(rows.values())


def room_key(room: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", room)
    return (int(digits) if digits else 0, room)


def get_household(*, session: Session, actor: Actor, household_id: int) -> Household:
    require(actor, Permission.registry_read)
    household = session.scalar(
        select(Household)
        .options(
            joinedload(Household.unit),
            joinedload(Household.building),
            joinedload(Household.compound),
            selectinload(Household.people),
            selectinload(Household.vehicles),
        )
        .where(Household.id == household_id, household_in_scope(actor.scope))
    )
    if household is None:
        raise NotFound(f"household {household_id}")
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="household",
        object_id=household.id,
        community_id=household.community_id,
    )
    return household


def person_community(*, session: Session, person_id: int) -> int | None:
    """The community a registered person belongs to, or None when there is no such person
    (for credentials that name a person: the caller checks roles and scope)."""
    return session.scalar(select(Person.community_id).where(Person.id == person_id))


@dataclass
class PersonView:
    """A person as every role sees them: the ID number masked (see ``id_numbers.reveal``)
    and of the birth date only the year and the age."""

    person: Person
    id_mask: str | None
    birth_year: int | None
    age: int | None
    may_reveal_id: bool


def get_person(*, session: Session, actor: Actor, person_id: int) -> PersonView:
    """One person's record; every read is audited."""
    require(actor, Permission.registry_read)
    person = session.scalar(
        select(Person)
        .join(Household, Household.id == Person.household_id)
        .options(
            joinedload(Person.household).joinedload(Household.unit),
            joinedload(Person.household).joinedload(Household.building),
            joinedload(Person.household).joinedload(Household.compound),
        )
        .where(Person.id == person_id, household_in_scope(actor.scope))
    )
    if person is None:
        raise NotFound(f"person {person_id}")
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
    )
    birth = person.birth_date
    return PersonView(
        person,
        person.id_mask,
        birth.year if birth else None,
        id_numbers.age_on(birth, id_numbers.today()) if birth else None,
        actor.can(Permission.id_number_unmasked) and person.id_number_enc is not None,
    )


def register_person_id(person: Person, id_text: str) -> None:
    """Set a person's ID number (encrypted, hashed, masked) after checking it; the birth
    date and gender it carries fill those fields when they are empty."""
    parsed = parse_id_number(id_text)
    person.birth_date = person.birth_date or parsed.birth_date
    person.gender = person.gender or parsed.gender
    cipher = get_cipher()
    person.id_number_enc = cipher.encrypt(parsed.number)
    person.id_number_hash = cipher.lookup_hash(parsed.number)
    person.id_mask = parsed.masked
    person.id_last4 = parsed.number[-4:]


# --- completeness (应录尽录) ------------------------------------------------------------


@dataclass
class CompletenessReport:
    """The figures of every building in scope, and the items to fix where asked for."""

    report: completeness.Report
    buildings: dict[int, Building]
    compounds: dict[int, Compound]


def _duplicate_key_queries(community_id: int, scope: ColumnElement[bool]) -> tuple[Any, Any]:
    """(name, phone) and (name, birth date) pairs registered more than once in scope."""

    def doubled(column: Any) -> Any:
        return (
            select(Person.name.label("name"), column.label("key"))
            .join(Household, Household.id == Person.household_id)
            .where(Household.community_id == community_id, scope, column.is_not(None))
            .group_by(Person.name, column)
            .having(func.count() > 1)
        )

    return doubled(Person.phone), doubled(Person.birth_date)


def count_figures(
    session: Session, community_id: int, scope: ColumnElement[bool]
) -> dict[int, completeness.Figures]:
    """The figures of each building counted by the database: the same answer as
    ``completeness.summarise`` over all rows, without moving 15,000 rows into Python."""
    has_people = select(Person.id).where(Person.household_id == Household.id).exists()
    households = {
        building_id: (total, occupied, registered)
        for building_id, total, occupied, registered in session.execute(
            select(
                Household.building_id,
                func.count(),
                func.sum(case((Household.vacant.is_(False), 1), else_=0)),
                func.sum(case((and_(Household.vacant.is_(False), has_people), 1), else_=0)),
            )
            .where(Household.community_id == community_id, scope)
            .group_by(Household.building_id)
        )
    }
    # Joined, not correlated: a correlated lookup would redo the grouping for every person.
    by_phone, by_birth = (q.subquery() for q in _duplicate_key_queries(community_id, scope))
    doubled = or_(by_phone.c.name.is_not(None), by_birth.c.name.is_not(None))
    living_in_vacant = and_(
        Person.residence_status == ResidenceStatus.living, Household.vacant.is_(True)
    )
    people = {
        row[0]: row[1:]
        for row in session.execute(
            select(
                Household.building_id,
                func.count(Person.id),
                func.count(Person.phone),
                func.count(Person.face_enrolled_at),
                func.count(Person.id_number_hash),
                func.sum(case((doubled, 1), else_=0)),
                func.sum(case((living_in_vacant, 1), else_=0)),
            )
            .join(Household, Household.id == Person.household_id)
            .outerjoin(
                by_phone, and_(by_phone.c.name == Person.name, by_phone.c.key == Person.phone)
            )
            .outerjoin(
                by_birth,
                and_(by_birth.c.name == Person.name, by_birth.c.key == Person.birth_date),
            )
            .where(Household.community_id == community_id, scope)
            .group_by(Household.building_id)
        )
    }
    figures = {}
    for building_id, (total, occupied, registered) in households.items():
        n, phone, face, id_number, dup, vacant_living = people.get(building_id, (0,) * 6)
        figures[building_id] = completeness.Figures.from_counts(
            households=total,
            occupied=int(occupied or 0),
            registered=int(registered or 0),
            people=n,
            with_phone=phone,
            with_face=face,
            with_id=id_number,
            duplicates=int(dup or 0),
            living_in_vacant=int(vacant_living or 0),
        )
    return figures


def summarise_rows(
    session: Session, community_id: int, scope: ColumnElement[bool], building_id: int | None
) -> completeness.Report:
    """Figures and what to fix in the scope (or one building of it), from the rows."""
    where = [Household.community_id == community_id, scope]
    if building_id is not None:
        where.append(Household.building_id == building_id)
    households = [
        completeness.HouseholdRow(hid, bid, cid, f"{bname}-{uname}-{room}", vacant)
        for hid, bid, cid, bname, uname, room, vacant in session.execute(
            select(
                Household.id,
                Household.building_id,
                Household.compound_id,
                Building.name,
                Unit.name,
                Household.room,
                Household.vacant,
            )
            .join(Building, Building.id == Household.building_id)
            .join(Unit, Unit.id == Household.unit_id)
            .where(*where)
        )
    ]
    people = [
        completeness.PersonRow(
            pid,
            hid,
            name,
            phone,
            birth.isoformat() if birth else None,
            has_id,
            has_face,
            status == ResidenceStatus.living,
        )
        for pid, hid, name, phone, birth, has_id, has_face, status in session.execute(
            select(
                Person.id,
                Person.household_id,
                Person.name,
                Person.phone,
                Person.birth_date,
                Person.id_number_hash.is_not(None),
                Person.face_enrolled_at.is_not(None),
                Person.residence_status,
            )
            .join(Household, Household.id == Person.household_id)
            .where(*where)
        )
    ]
    # Duplicates are judged across the whole scope, not only the building shown.
    by_phone, by_birth = _duplicate_key_queries(community_id, scope)
    duplicates = {(name, str(key)) for name, key in session.execute(by_phone)}
    duplicates |= {(name, key.isoformat()) for name, key in session.execute(by_birth)}
    return completeness.summarise(households, people, duplicates)


def completeness_report(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    items: bool = False,
    building_id: int | None = None,
) -> CompletenessReport:
    """Coverage and gaps per building in the actor's scope; with ``items`` also the list of
    what to fix (of one building when ``building_id`` is given). Audited: the items name
    people."""
    require(actor, Permission.registry_read)
    scope = household_in_scope(actor.scope)
    buildings = {
        b.id: b
        for b in session.scalars(
            select(Building)
            .options(joinedload(Building.compound))
            .where(Building.community_id == community_id, building_in_scope(actor.scope))
        )
    }
    # The same counts for everyone in this scope until a person or household changes.
    key = ("completeness", community_id, actor.scope.level, actor.scope.node_id)
    figures = figures_cache.cached(
        key,
        figures_cache.fingerprint(session, scope),
        lambda: count_figures(session, community_id, scope),
    )
    listed = summarise_rows(session, community_id, scope, building_id).items if items else []
    report = completeness.roll_up(
        figures, {b.id: b.compound_id for b in buildings.values()}, listed
    )
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="completeness",
        object_id=building_id,
        community_id=community_id,
        items=len(listed),
    )
    compounds = {b.compound_id: b.compound for b in buildings.values()}
    return CompletenessReport(report, buildings, compounds)


GAP_LABELS = {
    completeness.Gap.empty_household: "无人登记户",
    completeness.Gap.no_phone: "无手机号",
    completeness.Gap.no_face: "未录人脸",
    completeness.Gap.no_id: "无身份证号",
    completeness.Gap.duplicate: "疑似重复",
    completeness.Gap.moved_out_living: "空置户仍有在住人员",
}


# --- reads for contact tracing (who lives with whom); the caller checks role and scope ---


def household_of_person(*, session: Session, person_id: int) -> int | None:
    return session.scalar(select(Person.household_id).where(Person.id == person_id))


def household_residents(*, session: Session, household_id: int) -> list[int]:
    """The ids of the people living in a household (not those moved out)."""
    return residents_of_households(session=session, household_ids=[household_id])[household_id]


def households_of_people(*, session: Session, person_ids: list[int]) -> dict[int, int]:
    """Each person's household, read in chunks (for hundreds of people at once)."""
    found: dict[int, int] = {}
    for start in range(0, len(person_ids), 1000):
        chunk = person_ids[start : start + 1000]
        rows = session.execute(select(Person.id, Person.household_id).where(Person.id.in_(chunk)))
        found.update({int(p): int(h) for p, h in rows})
    return found


def residents_of_households(*, session: Session, household_ids: list[int]) -> dict[int, list[int]]:
    """The people living in each household (not those moved out), read in chunks."""
    found: dict[int, list[int]] = {h: [] for h in household_ids}
    for start in range(0, len(household_ids), 1000):
        chunk = household_ids[start : start + 1000]
        rows = session.execute(
            select(Person.household_id, Person.id)
            .where(
                Person.household_id.in_(chunk),
                Person.residence_status != ResidenceStatus.moved_out,
            )
            .order_by(Person.id)
        )
        for household, person in rows:
            found[int(household)].append(int(person))
    return found


@dataclass(frozen=True)
class Homes:
    """Who lives where in one community (not those moved out): shared between callers,
    read-only."""

    household_of: dict[int, int]
    residents: dict[int, tuple[int, ...]]


def community_homes(*, session: Session, community_id: int) -> Homes:
    """Everyone living in the community and their household, kept between calls while the
    community's registry has not changed (``figures`` fingerprint, ~3 ms to check): contact
    tracing asks for the households of thousands of people per case."""
    scope = Household.community_id == community_id

    def compute() -> Homes:
        rows = session.execute(
            select(Person.id, Person.household_id)
            .join(Household, Household.id == Person.household_id)
            .where(scope, Person.residence_status != ResidenceStatus.moved_out)
            .order_by(Person.id)
        )
        household_of: dict[int, int] = {}
        residents: dict[int, list[int]] = {}
        for person, household in rows:
            household_of[int(person)] = int(household)
            residents.setdefault(int(household), []).append(int(person))
        return Homes(household_of, {h: tuple(p) for h, p in residents.items()})

    current = figures_cache.fingerprint(session, scope)
    return figures_cache.cached(("community_homes", community_id), current, compute)


def building_of_household(*, session: Session, household_id: int) -> int | None:
    return session.scalar(select(Household.building_id).where(Household.id == household_id))


def building_residents(*, session: Session, building_id: int) -> list[tuple[int, int]]:
    """(person id, household id) of everyone living in a building."""
    rows = session.execute(
        select(Person.id, Person.household_id)
        .join(Household, Household.id == Person.household_id)
        .where(
            Household.building_id == building_id,
            Person.residence_status != ResidenceStatus.moved_out,
        )
        .order_by(Person.id)
    )
    return [(int(p), int(h)) for p, h in rows]


@dataclass(frozen=True)
class ContactCard:
    """What a tracer sees of a contact: who, where, how to reach them (phone shown to
    roles that may read the registry)."""

    person_id: int
    name: str
    gender: str | None
    birth_year: int | None
    phone: str | None
    compound: str
    address: str
    building_id: int
    health_status: str


def contact_cards(
    *, session: Session, actor: Actor, person_ids: list[int]
) -> dict[int, ContactCard]:
    """Cards of the given people that lie in the actor's scope (others are left out)."""
    require(actor, Permission.registry_read)
    cards: dict[int, ContactCard] = {}
    for start in range(0, len(person_ids), 500):
        chunk = person_ids[start : start + 500]
        rows = session.execute(
            select(Person, Household, Building, Unit, Compound)
            .join(Household, Household.id == Person.household_id)
            .join(Building, Building.id == Household.building_id)
            .join(Unit, Unit.id == Household.unit_id)
            .join(Compound, Compound.id == Household.compound_id)
            .where(Person.id.in_(chunk), household_in_scope(actor.scope))
        )
        for person, household, building, unit, compound in rows:
            cards[person.id] = ContactCard(
                person_id=person.id,
                name=person.name,
                gender=person.gender.value if person.gender else None,
                birth_year=person.birth_date.year if person.birth_date else None,
                phone=person.phone,
                compound=compound.name,
                address=f"{building.name}-{unit.name}-{household.room}",
                building_id=building.id,
                health_status=person.health_status.value,
            )
    return cards


def building_places(*, session: Session, community_id: int) -> dict[int, tuple[str, str]]:
    """Each building of a community: (compound name, building name), in the grid's order
    (for charts that lay buildings out by compound)."""
    return {
        building_id: (compound, name)
        for building_id, compound, name in session.execute(
            select(Building.id, Compound.name, Building.name)
            .join(Compound, Compound.id == Building.compound_id)
            .where(Building.community_id == community_id)
            .order_by(Building.compound_id, Building.sort_key, Building.id)
        )
    }
