"""Importing residents and vehicles from the spreadsheets offices keep: plan against the
grid and the importer's scope, validate, then write in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import (
    SYSTEM_ACTOR,
    Actor,
    GridScope,
    Permission,
    audit,
    require,
)
from fengchao.db import begin_write
from fengchao.registry.importer import (
    RESIDENT_ALIASES,
    VEHICLE_ALIASES,
    ResidentRecord,
    RowError,
    VehicleRecord,
    validate_resident_rows,
    validate_vehicle_rows,
)
from fengchao.registry.models import (
    Building,
    Community,
    Compound,
    Household,
    Person,
    Unit,
    Vehicle,
)
from fengchao.registry.scope import covers, scope_label
from fengchao.registry.service import room_key
from fengchao.registry.sheets import SheetError, SheetLimits, Table, read_table
from fengchao.registry.validation import Address, clip, mask_id_number
from fengchao.settings import get_settings
from fengchao.web.i18n import _

Progress = Callable[[int, int], None]


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
    """The community's grid in memory, so that 15,000 rows resolve without 15,000 queries,
    and the part of it the importer is responsible for (``scope``; None: all of it)."""

    def __init__(self, session: Session, community_id: int, scope: GridScope | None) -> None:
        self.session = session
        self.community_id = community_id
        self.scope = scope
        community = session.get(Community, community_id)
        self.street_id = community.street_id if community else 0
        self.scope_name = scope_label(session=session, scope=scope) if scope else ""
        self.compounds = {
            c.name: c
            for c in session.scalars(select(Compound).where(Compound.community_id == community_id))
        }
        self.compound_names = {c.id: c.name for c in self.compounds.values()}
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

    def covers(self, household: Household | Building) -> bool:
        """Whether the importer is responsible for this household or building."""
        if self.scope is None:
            return True
        building_id = household.id if isinstance(household, Building) else household.building_id
        return covers(
            self.scope,
            street_id=self.street_id,
            community_id=household.community_id,
            compound_id=household.compound_id,
            building_id=building_id,
        )

    def building_for(self, address: Address) -> Building | str:
        """The building, or the reason it cannot be found."""
        if address.compound:
            compound = self.compounds.get(address.compound)
            if compound is None:
                known = "、".join(self.compounds) or "—"
                return _("小区“{c}”不在本社区（本社区有：{known}）").format(
                    c=clip(address.compound), known=known
                )
            building = self.buildings.get((compound.id, address.building))
            if building is None:
                return _("{c} 没有 {b} 号楼").format(
                    c=clip(address.compound), b=clip(address.building)
                )
            return building
        candidates = self.buildings_by_name.get(address.building, [])
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            return _("本社区没有 {b} 号楼").format(b=clip(address.building))
        return _("{b} 号楼在多个小区都有，请填写“小区”列").format(b=clip(address.building))

    def resolve(self, address: Address, create_missing: bool) -> tuple[int | None, str | None]:
        """(household id, None), or (None, a planned new household key), or an error."""
        building = self.building_for(address)
        if isinstance(building, str):
            raise LookupError(building)
        if not self.covers(building):
            raise LookupError(
                _("{c} {b}号楼不在您负责的范围内（您负责：{scope}）").format(
                    c=self.compound_names.get(building.compound_id, ""),
                    b=building.name,
                    scope=self.scope_name,
                )
            )
        unit = self.units.get((building.id, address.unit))
        household = self.households.get((unit.id, address.room)) if unit else None
        if household is not None:
            return household.id, None
        if not create_missing:
            raise LookupError(
                _(
                    "{b}号楼{u}单元{r}室 在网格中不存在（如确是新房号，请勾选“自动创建缺少的单元和房号”）"  # noqa: E501
                ).format(b=building.name, u=clip(address.unit), r=clip(address.room))
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
                sort_key=room_key(unit_name)[0],
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
    settings = get_settings().imports
    limits = SheetLimits(
        max_bytes=settings.max_bytes,
        max_rows=settings.max_rows,
        max_uncompressed_bytes=settings.max_uncompressed_bytes,
        max_compression_ratio=settings.max_compression_ratio,
        max_cell_chars=settings.max_cell_chars,
    )
    try:
        table = read_table(content, filename, aliases=aliases, key=key, limits=limits)
    except SheetError as exc:
        report.errors.append(RowError(exc.row, "file", exc.message))
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


def _import_scope(actor: Actor) -> GridScope | None:
    """The part of the grid the importer answers for; the system actor (the command line
    without ``--as``) imports anywhere."""
    return None if actor == SYSTEM_ACTOR else actor.scope


def _plan_residents(
    session: Session,
    actor: Actor,
    community_id: int,
    records: list[ResidentRecord],
    create_missing: bool,
    errors: list[RowError],
    progress: Progress | None,
) -> tuple[list[_PlannedPerson], _GridIndex]:
    grid = _GridIndex(session, community_id, _import_scope(actor))
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
                if current is None or not grid.covers(current):
                    # Outside the importer's scope: say neither where nor who.
                    message = _(
                        "此身份证号已登记在本社区的其他住户，不在您负责的范围内；"
                        "如此人已搬家，请联系负责原住户的社区干部先把此人标为迁出"
                    )
                else:
                    message = _(
                        "此身份证号已登记在 {where}（{name}）；如已搬家，请先在原户把此人标为迁出"
                    ).format(where=current.address, name=existing.name)
                errors.append(RowError(record.row, "id_number", message))
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
        session, actor, community_id, records, create_missing, report.errors, progress
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
    grid = _GridIndex(session, community_id, _import_scope(actor))
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
            if holder is None or not grid.covers(holder):
                message = _("车牌 {p} 已登记在本社区的另一户，不在您负责的范围内").format(
                    p=record.plate
                )
            else:
                message = _("车牌 {p} 已登记在另一户（{where}）").format(
                    p=record.plate, where=holder.address
                )
            report.errors.append(RowError(record.row, "plate", message))
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
    if not dry_run:
        begin_write(session)
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
