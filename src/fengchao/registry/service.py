"""The registry's reads: the grid within a user's scope, households, people, search,
completeness; and setting a person's ID number."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import (
    Actor,
    NotFound,
    Permission,
    audit,
    require,
)
from fengchao.registry import completeness
from fengchao.registry.models import (
    Building,
    BuildingLead,
    Compound,
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
    return building


def building_lead(*, session: Session, building_id: int) -> Person | None:
    return session.scalar(
        select(Person)
        .join(BuildingLead, BuildingLead.person_id == Person.id)
        .where(BuildingLead.building_id == building_id)
    )


@dataclass
class UnitRow:
    unit: Unit
    households: list[tuple[Household, int]]


def building_units(*, session: Session, building: Building) -> list[UnitRow]:
    """Units and households of a building the caller got from :func:`get_building`."""
    building_id = building.id
    counts = dict(
        session.execute(
            select(Person.household_id, func.count())
            .join(Household, Household.id == Person.household_id)
            .where(Household.building_id == building_id)
            .group_by(Person.household_id)
        ).all()
    )
    units = session.scalars(
        select(Unit).where(Unit.building_id == building_id).order_by(Unit.sort_key, Unit.name)
    ).all()
    households = session.scalars(
        select(Household).where(Household.building_id == building_id).order_by(Household.id)
    ).all()
    by_unit: dict[int, list[tuple[Household, int]]] = {u.id: [] for u in units}
    for household in sorted(households, key=lambda h: room_key(h.room)):
        by_unit[household.unit_id].append((household, counts.get(household.id, 0)))
    return [UnitRow(u, by_unit[u.id]) for u in units]


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


@dataclass
class PersonView:
    """A person as the actor may see them: the ID number is masked unless the role needs it."""

    person: Person
    id_number: str | None
    id_masked: bool


def _visible_id(actor: Actor, person: Person) -> tuple[str | None, bool]:
    if person.id_number_enc is None:
        return None, False
    if actor.can(Permission.id_number_unmasked):
        return get_cipher().decrypt(person.id_number_enc), False
    return person.id_mask, True


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
    id_number, masked = _visible_id(actor, person)
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
        id_unmasked=not masked and id_number is not None,
    )
    return PersonView(person, id_number, masked)


# --- search ----------------------------------------------------------------------------

_ROOM_QUERY = re.compile(r"^(\w+?)[-－—](\w+?)[-－—](\w+)$")


@dataclass
class SearchResult:
    people: list[Person]
    households: list[Household]
    truncated: bool


def search(*, session: Session, actor: Actor, query: str, limit: int = 50) -> SearchResult:
    """Find by name, phone, the last 4 of an ID, a whole ID, or a room such as 5-2-1302."""
    require(actor, Permission.registry_read)
    q = query.strip()
    if not q:
        return SearchResult([], [], False)
    scope = household_in_scope(actor.scope)
    households: list[Household] = []
    if m := _ROOM_QUERY.match(q):
        households = list(
            session.scalars(
                select(Household)
                .join(Unit, Unit.id == Household.unit_id)
                .join(Building, Building.id == Household.building_id)
                .options(
                    joinedload(Household.unit),
                    joinedload(Household.building),
                    joinedload(Household.compound),
                )
                .where(scope, Building.name == m[1], Unit.name == m[2], Household.room == m[3])
                .limit(limit)
            )
        )
    person_query = (
        select(Person)
        .join(Household, Household.id == Person.household_id)
        .options(
            joinedload(Person.household).joinedload(Household.unit),
            joinedload(Person.household).joinedload(Household.building),
        )
        .where(scope)
    )
    compact = re.sub(r"[\s-]", "", q).upper()
    if households:
        condition: ColumnElement[bool] = Person.household_id.in_([h.id for h in households])
    elif re.fullmatch(r"\d{17}[\dX]", compact):
        condition = Person.id_number_hash == get_cipher().lookup_hash(compact)
    elif re.fullmatch(r"\d{3}[\dX]", compact):
        condition = (Person.id_last4 == compact) | Person.phone.endswith(compact)
    elif re.fullmatch(r"(\+?86)?1\d{10}", compact):
        condition = Person.phone == compact[-11:]
    elif compact.isdigit() and len(compact) >= 5:
        condition = Person.phone.contains(compact)
    else:
        condition = Person.name.contains(q)
    people = list(
        session.scalars(person_query.where(condition).order_by(Person.name).limit(limit + 1))
    )
    audit(
        session=session,
        actor=actor,
        action="search",
        object_type="person",
        query=q,
        results=len(people[:limit]),
    )
    return SearchResult(people[:limit], households, len(people) > limit)


def register_person_id(person: Person, id_text: str) -> None:
    """Set a person's ID number (encrypted, hashed, masked) after checking it."""
    parsed = parse_id_number(id_text)
    cipher = get_cipher()
    person.id_number_enc = cipher.encrypt(parsed.number)
    person.id_number_hash = cipher.lookup_hash(parsed.number)
    person.id_mask = parsed.masked
    person.id_last4 = parsed.number[-4:]


# --- completeness (应录尽录) ------------------------------------------------------------


@dataclass
class CompletenessReport:
    report: completeness.Report
    buildings: dict[int, Building]
    compounds: dict[int, Compound]


def completeness_report(*, session: Session, actor: Actor, community_id: int) -> CompletenessReport:
    require(actor, Permission.registry_read)
    scope = household_in_scope(actor.scope)
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
            .where(Household.community_id == community_id, scope)
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
            .where(Household.community_id == community_id, scope)
        )
    ]
    report = completeness.summarise(households, people)
    buildings = {
        b.id: b
        for b in session.scalars(
            select(Building)
            .options(joinedload(Building.compound))
            .where(Building.community_id == community_id, building_in_scope(actor.scope))
        )
    }
    compounds = {b.compound_id: b.compound for b in buildings.values()}
    return CompletenessReport(report, buildings, compounds)


GAP_LABELS = {
    completeness.Gap.empty_household: "户内无人登记",
    completeness.Gap.no_phone: "无手机号",
    completeness.Gap.no_face: "未录人脸",
    completeness.Gap.no_id: "无身份证号",
    completeness.Gap.duplicate: "疑似重复",
    completeness.Gap.moved_out_living: "空置户仍有在住人员",
}
