"""The registry's logic: the grid within a user's scope, people, search, imports."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import (
    Actor,
    GridScope,
    NotFound,
    Permission,
    audit,
    require,
)
from fengchao.db import utcnow
from fengchao.registry import completeness
from fengchao.registry.importer import (
    RESIDENT_ALIASES,
    VEHICLE_ALIASES,
    ResidentRecord,
    RowError,
    VehicleRecord,
    field_label,
    validate_resident_rows,
    validate_vehicle_rows,
)
from fengchao.registry.models import (
    Building,
    BuildingLead,
    Community,
    Compound,
    Household,
    ImportUpload,
    Person,
    ResidenceStatus,
    Street,
    Unit,
    Vehicle,
)
from fengchao.registry.sheets import SheetError, Table, read_table
from fengchao.registry.validation import Address, mask_id_number, parse_id_number
from fengchao.settings import get_settings
from fengchao.web.i18n import _

Progress = Callable[[int, int], None]


# --- scope -----------------------------------------------------------------------------


def _community_ids_of_street(street_id: int) -> Any:
    return select(Community.id).where(Community.street_id == street_id).scalar_subquery()


def household_in_scope(scope: GridScope) -> ColumnElement[bool]:
    match scope.level:
        case ScopeLevel.street:
            return Household.community_id.in_(_community_ids_of_street(scope.node_id))
        case ScopeLevel.community:
            return Household.community_id == scope.node_id
        case ScopeLevel.compound:
            return Household.compound_id == scope.node_id
        case ScopeLevel.building:
            return Household.building_id == scope.node_id
    raise ValueError(scope.level)


def building_in_scope(scope: GridScope) -> ColumnElement[bool]:
    match scope.level:
        case ScopeLevel.street:
            return Building.community_id.in_(_community_ids_of_street(scope.node_id))
        case ScopeLevel.community:
            return Building.community_id == scope.node_id
        case ScopeLevel.compound:
            return Building.compound_id == scope.node_id
        case ScopeLevel.building:
            return Building.id == scope.node_id
    raise ValueError(scope.level)


def communities_in_scope(*, session: Session, scope: GridScope) -> list[Community]:
    query = select(Community).options(joinedload(Community.street)).order_by(Community.id)
    match scope.level:
        case ScopeLevel.street:
            query = query.where(Community.street_id == scope.node_id)
        case ScopeLevel.community:
            query = query.where(Community.id == scope.node_id)
        case ScopeLevel.compound:
            query = query.where(
                Community.id
                == select(Compound.community_id)
                .where(Compound.id == scope.node_id)
                .scalar_subquery()
            )
        case ScopeLevel.building:
            query = query.where(
                Community.id
                == select(Building.community_id)
                .where(Building.id == scope.node_id)
                .scalar_subquery()
            )
    return list(session.scalars(query))


def scope_label(*, session: Session, scope: GridScope) -> str:
    if scope.level == ScopeLevel.building:
        building = session.get(Building, scope.node_id)
        return f"{building.compound.name} {building.name}{_('号楼')}" if building else "—"
    node: Street | Community | Compound | None
    if scope.level == ScopeLevel.street:
        node = session.get(Street, scope.node_id)
    elif scope.level == ScopeLevel.community:
        node = session.get(Community, scope.node_id)
    else:
        node = session.get(Compound, scope.node_id)
    return node.name if node else "—"


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
    for household in sorted(households, key=lambda h: _room_key(h.room)):
        by_unit[household.unit_id].append((household, counts.get(household.id, 0)))
    return [UnitRow(u, by_unit[u.id]) for u in units]


def _room_key(room: str) -> tuple[int, str]:
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


# --- imports ---------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What a dry run found, or what an import wrote."""

    kind: str
    rows: int = 0
    valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    new_households: int = 0
    written: bool = False
    sheet: str = ""
    header_row: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "errors": [e.as_dict() for e in self.errors],
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "new_households": self.new_households,
            "written": self.written,
        }


class _GridIndex:
    """The community's grid in memory, so that 15,000 rows resolve without 15,000 queries."""

    def __init__(self, session: Session, community_id: int) -> None:
        self.session = session
        self.community_id = community_id
        self.compounds = {
            c.name: c
            for c in session.scalars(select(Compound).where(Compound.community_id == community_id))
        }
        self.buildings: dict[tuple[int, str], Building] = {}
        self.buildings_by_name: dict[str, list[Building]] = {}
        for b in session.scalars(select(Building).where(Building.community_id == community_id)):
            self.buildings[(b.compound_id, b.name)] = b
            self.buildings_by_name.setdefault(b.name, []).append(b)
        self.units = {
            (u.building_id, u.name): u
            for u in session.scalars(select(Unit).where(Unit.community_id == community_id))
        }
        self.households = {
            (h.unit_id, h.room): h
            for h in session.scalars(
                select(Household).where(Household.community_id == community_id)
            )
        }

    def building_for(self, address: Address) -> Building | str:
        """The building, or the reason it cannot be found."""
        if address.compound:
            compound = self.compounds.get(address.compound)
            if compound is None:
                known = "、".join(self.compounds) or "—"
                return _("小区“{c}”不在本社区（本社区有：{known}）").format(
                    c=address.compound, known=known
                )
            building = self.buildings.get((compound.id, address.building))
            if building is None:
                return _("{c} 没有 {b} 号楼").format(c=address.compound, b=address.building)
            return building
        candidates = self.buildings_by_name.get(address.building, [])
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            return _("本社区没有 {b} 号楼").format(b=address.building)
        return _("{b} 号楼在多个小区都有，请填写“小区”列").format(b=address.building)

    def resolve(self, address: Address, create_missing: bool) -> tuple[int | None, str | None]:
        """(household id, None), or (None, a planned new household key), or an error."""
        building = self.building_for(address)
        if isinstance(building, str):
            raise LookupError(building)
        unit = self.units.get((building.id, address.unit))
        household = self.households.get((unit.id, address.room)) if unit else None
        if household is not None:
            return household.id, None
        if not create_missing:
            raise LookupError(
                _(
                    "{b}号楼{u}单元{r}室 在网格中不存在（如确是新房号，请勾选“自动创建缺少的单元和房号”）"  # noqa: E501
                ).format(b=building.name, u=address.unit, r=address.room)
            )
        return None, f"{building.id}|{address.unit}|{address.room}"

    def create(self, key: str) -> int:
        building_id_s, unit_name, room = key.split("|")
        building = self.session.get(Building, int(building_id_s))
        assert building is not None
        unit = self.units.get((building.id, unit_name))
        if unit is None:
            unit = Unit(
                community_id=self.community_id,
                building_id=building.id,
                name=unit_name,
                sort_key=_room_key(unit_name)[0],
            )
            self.session.add(unit)
            self.session.flush()
            self.units[(building.id, unit_name)] = unit
        household = Household(
            community_id=self.community_id,
            compound_id=building.compound_id,
            building_id=building.id,
            unit_id=unit.id,
            room=room,
        )
        self.session.add(household)
        self.session.flush()
        self.households[(unit.id, room)] = household
        return household.id


def _read(
    report: ImportReport,
    content: bytes,
    filename: str,
    aliases: dict[str, tuple[str, ...]],
    key: str,
) -> Table | None:
    """The sheet's table, or None with the file-level problem added to ``report``."""
    limits = get_settings().imports
    try:
        table = read_table(
            content,
            filename,
            aliases=aliases,
            key=key,
            max_bytes=limits.max_bytes,
            max_rows=limits.max_rows,
        )
    except SheetError as exc:
        report.errors.append(RowError(0, "file", exc.message))
        return None
    report.rows, report.sheet, report.header_row = len(table.rows), table.sheet, table.header_row
    return table


def _audit_import(
    session: Session, actor: Actor, community_id: int, filename: str, report: ImportReport
) -> None:
    audit(
        session=session,
        actor=actor,
        action="import",
        object_type=report.kind,
        community_id=community_id,
        filename=filename,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        skipped_rows=len(report.errors),
        new_households=report.new_households,
    )


_PERSON_FIELDS = (
    "name", "gender", "birth_date", "phone", "relation", "residence_status", "health_status",
    "care_tags", "note",
)  # fmt: skip


@dataclass
class _PlannedPerson:
    record: ResidentRecord
    household_id: int | None
    new_household_key: str | None
    existing: Person | None
    id_hash: str | None


def _plan_residents(
    session: Session,
    community_id: int,
    records: list[ResidentRecord],
    create_missing: bool,
    errors: list[RowError],
    progress: Progress | None,
) -> tuple[list[_PlannedPerson], _GridIndex]:
    grid = _GridIndex(session, community_id)
    cipher = get_cipher()
    hashes = {
        r.row: cipher.lookup_hash(r.id_number.number) for r in records if r.id_number is not None
    }
    # One scan of the community rather than IN-lists of hashes: right after a bulk load the
    # planner's statistics are stale and PostgreSQL compared every row with every hash.
    wanted = set(hashes.values())
    existing_by_hash: dict[str, Person] = {}
    if wanted:
        for person in session.scalars(
            select(Person).where(
                Person.community_id == community_id, Person.id_number_hash.is_not(None)
            )
        ):
            if person.id_number_hash in wanted:
                existing_by_hash[person.id_number_hash] = person
    planned: list[_PlannedPerson] = []
    first_row_of: dict[str, int] = {}
    no_id_people: dict[tuple[int, str], Person] | None = None
    for done, record in enumerate(records, start=1):
        if progress and done % 500 == 0:
            progress(done, len(records))
        try:
            household_id, new_key = grid.resolve(record.address, create_missing)
        except LookupError as exc:
            field_name = "address" if not record.address.compound else "building"
            errors.append(RowError(record.row, field_name, str(exc)))
            continue
        id_hash = hashes.get(record.row)
        existing: Person | None = None
        if id_hash is not None:
            if id_hash in first_row_of:
                errors.append(
                    RowError(
                        record.row,
                        "id_number",
                        _("与第 {row} 行是同一个身份证号（同一个人填了两次）").format(
                            row=first_row_of[id_hash]
                        ),
                    )
                )
                continue
            first_row_of[id_hash] = record.row
            existing = existing_by_hash.get(id_hash)
            if existing is not None and existing.household_id != household_id:
                current = session.get(Household, existing.household_id)
                where = current.address if current else "?"
                errors.append(
                    RowError(
                        record.row,
                        "id_number",
                        _(
                            "此身份证号已登记在 {where}（{name}）；如已搬家，请先在原户把此人标为迁出"  # noqa: E501
                        ).format(where=where, name=existing.name),
                    )
                )
                continue
        else:
            name_key = f"{household_id or new_key}|{record.name}"
            if name_key in first_row_of:
                errors.append(
                    RowError(
                        record.row,
                        "name",
                        _("与第 {row} 行同户同名且都没有身份证号（同一个人填了两次？）").format(
                            row=first_row_of[name_key]
                        ),
                    )
                )
                continue
            first_row_of[name_key] = record.row
            if household_id is not None:
                if no_id_people is None:
                    no_id_people = {
                        (p.household_id, p.name): p
                        for p in session.scalars(
                            select(Person).where(
                                Person.community_id == community_id,
                                Person.id_number_hash.is_(None),
                            )
                        )
                    }
                existing = no_id_people.get((household_id, record.name))
        planned.append(_PlannedPerson(record, household_id, new_key, existing, id_hash))
    return planned, grid


def _person_values(record: ResidentRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _PERSON_FIELDS}


def import_residents(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    content: bytes,
    filename: str,
    dry_run: bool,
    create_missing: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Validate a resident sheet and, unless ``dry_run``, write it in one transaction.

    Nothing is written while errors remain, unless ``skip_invalid`` is given. Re-importing
    the same file changes nothing: people are matched by ID number (or, without one, by
    name within the household).
    """
    require(actor, Permission.registry_write)
    report = ImportReport(kind="residents")
    table = _read(report, content, filename, RESIDENT_ALIASES, "name")
    if table is None:
        return report
    records, errors = validate_resident_rows(table)
    report.errors = errors
    planned, grid = _plan_residents(
        session, community_id, records, create_missing, report.errors, progress
    )
    report.errors.sort(key=lambda e: (e.row, e.field))
    report.valid = len(planned)
    if dry_run or (report.errors and not skip_invalid):
        return report

    cipher = get_cipher()
    with session.begin_nested():
        new_rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        created_households: dict[str, int] = {}
        for item in planned:
            household_id = item.household_id
            if household_id is None:
                assert item.new_household_key is not None
                key = item.new_household_key
                if key not in created_households:
                    created_households[key] = grid.create(key)
                household_id = created_households[key]
            values = _person_values(item.record)
            if item.existing is not None:
                diff = {k: v for k, v in values.items() if getattr(item.existing, k) != v}
                if diff:
                    changes.append({"id": item.existing.id, **diff})
                else:
                    report.unchanged += 1
                continue
            id_number = item.record.id_number
            new_rows.append(
                {
                    **values,
                    "community_id": community_id,
                    "household_id": household_id,
                    "id_number_enc": cipher.encrypt(id_number.number) if id_number else None,
                    "id_number_hash": item.id_hash,
                    "id_mask": mask_id_number(id_number.number) if id_number else None,
                    "id_last4": id_number.number[-4:] if id_number else None,
                }
            )
        for start in range(0, len(new_rows), 2000):
            session.execute(insert(Person), new_rows[start : start + 2000])
            if progress:
                progress(min(start + 2000, len(new_rows)), len(new_rows))
        for change in changes:
            # Rows differ in which columns changed, so each is its own UPDATE.
            session.execute(
                update(Person)
                .where(Person.id == change["id"])
                .values({k: v for k, v in change.items() if k != "id"})
            )
        report.created, report.updated = len(new_rows), len(changes)
        report.new_households = len(created_households)
        _audit_import(session, actor, community_id, filename, report)
    session.expire_all()
    report.written = True
    return report


def import_vehicles(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    content: bytes,
    filename: str,
    dry_run: bool,
    skip_invalid: bool = False,
) -> ImportReport:
    """Validate a vehicle sheet and, unless ``dry_run``, write it; idempotent by plate."""
    require(actor, Permission.registry_write)
    report = ImportReport(kind="vehicles")
    table = _read(report, content, filename, VEHICLE_ALIASES, "plate")
    if table is None:
        return report
    records, report.errors = validate_vehicle_rows(table)
    grid = _GridIndex(session, community_id)
    existing = {
        v.plate: v
        for v in session.scalars(select(Vehicle).where(Vehicle.community_id == community_id))
    }
    planned: list[tuple[VehicleRecord, int]] = []
    seen: dict[str, int] = {}
    for record in records:
        try:
            household_id, _new = grid.resolve(record.address, create_missing=False)
        except LookupError as exc:
            report.errors.append(RowError(record.row, "address", str(exc)))
            continue
        assert household_id is not None
        if record.plate in seen:
            report.errors.append(
                RowError(
                    record.row, "plate", _("与第 {row} 行车牌相同").format(row=seen[record.plate])
                )
            )
            continue
        seen[record.plate] = record.row
        current = existing.get(record.plate)
        if current is not None and current.household_id != household_id:
            holder = session.get(Household, current.household_id)
            report.errors.append(
                RowError(
                    record.row,
                    "plate",
                    _("车牌 {p} 已登记在另一户（{where}）").format(
                        p=record.plate, where=holder.address if holder else "?"
                    ),
                )
            )
            continue
        planned.append((record, household_id))
    report.errors.sort(key=lambda e: (e.row, e.field))
    report.valid = len(planned)
    if dry_run or (report.errors and not skip_invalid):
        return report
    with session.begin_nested():
        for record, household_id in planned:
            owner_id = None
            if record.owner_name:
                owner_id = session.scalar(
                    select(Person.id).where(
                        Person.household_id == household_id, Person.name == record.owner_name
                    )
                )
            current = existing.get(record.plate)
            if current is None:
                session.add(
                    Vehicle(
                        community_id=community_id,
                        household_id=household_id,
                        plate=record.plate,
                        owner_person_id=owner_id,
                        note=record.note,
                    )
                )
                report.created += 1
            elif (current.owner_person_id, current.note) != (owner_id, record.note):
                current.owner_person_id, current.note = owner_id, record.note
                report.updated += 1
            else:
                report.unchanged += 1
        _audit_import(session, actor, community_id, filename, report)
    report.written = True
    return report


ImportKind = Literal["residents", "vehicles"]


def import_sheet(
    kind: ImportKind,
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    content: bytes,
    filename: str,
    dry_run: bool,
    create_missing: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """One entry for every caller (page, API, command line): residents or vehicles."""
    if kind == "vehicles":
        return import_vehicles(
            session=session,
            actor=actor,
            community_id=community_id,
            content=content,
            filename=filename,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
        )
    return import_residents(
        session=session,
        actor=actor,
        community_id=community_id,
        content=content,
        filename=filename,
        dry_run=dry_run,
        create_missing=create_missing,
        skip_invalid=skip_invalid,
        progress=progress,
    )


UPLOAD_KEEP = dt.timedelta(days=1)


def purge_stale_uploads(*, session: Session) -> int:
    """Drop uploads never confirmed within a day: they hold personal data."""
    result = session.execute(
        delete(ImportUpload).where(ImportUpload.created_at < utcnow() - UPLOAD_KEEP)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def mark_upload_imported(upload: ImportUpload) -> None:
    """Once imported, the sheet itself is no longer kept; the row stays to refuse replays."""
    upload.imported_at = utcnow()
    upload.content = b""


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


def completeness_xlsx(result: CompletenessReport) -> bytes:
    """The report as a workbook: one summary sheet, one sheet listing every item to fix."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = _("汇总")
    gaps = list(completeness.Gap)
    header = [
        _("小区"),
        _("楼栋"),
        _("户数"),
        _("已登记户"),
        _("人数"),
        _("登记率%"),
        _("手机覆盖%"),
        _("人脸覆盖%"),
        _("身份证覆盖%"),
    ]
    sheet.append(header + [_(GAP_LABELS[g]) for g in gaps])
    for cell in sheet[1]:
        cell.font = Font(bold=True)

    def figures_row(compound: str, building: str, f: completeness.Figures) -> list[object]:
        return [
            compound,
            building,
            f.households,
            f.registered_households,
            f.people,
            f.household_coverage,
            f.phone_coverage,
            f.face_coverage,
            f.id_coverage,
            *[f.gaps[g] for g in gaps],
        ]

    ordered = sorted(result.buildings.values(), key=lambda b: (b.compound_id, b.sort_key, b.name))
    for b in ordered:
        fig = result.report.by_building.get(b.id, completeness.Figures())
        sheet.append(figures_row(b.compound.name, b.name, fig))
    sheet.append(figures_row(_("合计"), "", result.report.total))
    detail = book.create_sheet(_("待补录明细"))
    detail.append([_("小区"), _("楼栋"), _("房号"), _("姓名"), _("问题")])
    for item in result.report.items:
        b = result.buildings[item.building_id]
        detail.append(
            [b.compound.name, b.name, item.address, item.name or "", _(GAP_LABELS[item.gap])]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def resident_template_xlsx() -> bytes:
    """The import template with Chinese headers; the ID and phone columns are text, so
    Excel cannot turn an ID number into a float and lose its last digits."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    book = Workbook()
    sheet = book.active
    sheet.title = "居民信息"
    headers = [
        "姓名",
        "性别",
        "身份证号",
        "手机",
        "小区",
        "楼栋",
        "单元",
        "房号",
        "与户主关系",
        "居住状态",
        "健康状态",
        "关怀标签",
        "备注",
    ]
    sheet.append(headers)
    sheet.append(
        [
            "张三",
            "男",
            "350102198001011234",
            "13800000000",
            "华润中央公园",
            "5",
            "2",
            "1302",
            "户主",
            "在住",
            "正常",
            "",
            "示例行，导入前请删除",
        ]
    )
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="FFF2CC")
    for column in ("C", "D", "F", "G", "H"):
        for row in range(1, 5001):
            sheet[f"{column}{row}"].number_format = "@"
        sheet.column_dimensions[column].width = 22 if column == "C" else 14
    notes = book.create_sheet("填写说明")
    for line in (
        "必填：姓名、身份证号（可空，但会计入“无身份证号”）、楼栋、单元、房号。",
        "身份证号和手机号列已设为文本格式；不要改成数字，否则18位号码的末几位会丢失。",
        "与户主关系：户主、配偶、子女、父母、租户、其他……",
        "居住状态：在住、外出、迁出；健康状态：正常、居家隔离、集中隔离、阳性、康复。",
        "关怀标签：独居老人、残疾、孕妇、慢性病，多个用顿号分隔。",
    ):
        notes.append([line])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def error_report_xlsx(report: ImportReport) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = _("错误")
    sheet.append([_("行号"), _("字段"), _("问题")])
    for error in report.errors:
        sheet.append([error.row or "", field_label(error.field), error.message])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
