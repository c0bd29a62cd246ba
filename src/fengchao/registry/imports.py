"""Importing residents and vehicles from the spreadsheets offices keep: plan against the
grid and the importer's scope, validate, then write in one transaction.

The plan is the same for a dry run and for the write: every valid row is new, changed (with
the fields that change, old → new) or unchanged, matched by ID number, or without one by
name within the household. What the check page promises is what the import does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import Actor, Permission, require
from fengchao.db import begin_write, refresh_statistics, utcnow
from fengchao.registry.edits import PERSON_CREATE, PERSON_UPDATE
from fengchao.registry.import_grid import GridIndex, GridMiss
from fengchao.registry.import_report import (
    ImportReport,
    ProblemRow,
    RowPlan,
    audit_import,
    finish_check,
    import_scope,
    place,
    read_sheet,
    stored_value,
)
from fengchao.registry.import_vehicles import import_vehicles
from fengchao.registry.importer import (
    RESIDENT_ALIASES,
    ResidentRecord,
    RowError,
    validate_resident_rows,
)
from fengchao.registry.models import ChangeVia, Household, Person, RecordChange
from fengchao.registry.validation import mask_id_number
from fengchao.web.i18n import _

__all__ = ["ImportKind", "ImportReport", "ProblemRow", "RowPlan", "import_residents",
           "import_sheet", "import_vehicles"]  # fmt: skip

Progress = Callable[[int, int], None]
BATCH = 2000


# --- residents -------------------------------------------------------------------------

_PERSON_FIELDS = (
    "name", "gender", "birth_date", "phone", "relation", "residence_status", "health_status",
    "care_tags", "note",
)  # fmt: skip


@dataclass(slots=True)
class _PlannedPerson:
    record: ResidentRecord
    household_id: int | None
    new_household_key: str | None
    existing: Person | None
    id_hash: str | None
    # Columns to set on an existing person (the values as the database takes them).
    values: dict[str, Any] = field(default_factory=dict)


def _person_diff(existing: Person, record: ResidentRecord) -> dict[str, tuple[Any, Any]]:
    """{field: (old, new)} for the fields the sheet gives whose value differs; a field the
    sheet leaves out or empty keeps what is registered."""
    diff: dict[str, tuple[Any, Any]] = {}
    for name in _PERSON_FIELDS:
        if name not in record.given:
            continue
        old, new = getattr(existing, name), getattr(record, name)
        if name == "care_tags":
            old = sorted(old or [])
        if old != new:
            diff[name] = (old, new)
    return diff


def _id_columns(record: ResidentRecord, id_hash: str | None) -> dict[str, Any]:
    number = record.id_number.number if record.id_number else None
    return {
        "id_number_enc": get_cipher().encrypt(number) if number else None,
        "id_number_hash": id_hash,
        "id_mask": mask_id_number(number) if number else None,
        "id_last4": number[-4:] if number else None,
    }


class _ResidentPlanner:
    """Matches each row to the person it names (by ID number; without one, by name within
    the household) and records every problem of the row against the grid and the file."""

    def __init__(
        self,
        session: Session,
        actor: Actor,
        community_id: int,
        records: list[ResidentRecord],
        create_missing: bool,
        columns: Iterable[str] = (),
    ) -> None:
        self.session = session
        self.columns = set(columns)  # a place is blamed on its own column, if the sheet has one
        self.community_id = community_id
        self.create_missing = create_missing
        self.grid = GridIndex(session, community_id, import_scope(actor))
        cipher = get_cipher()
        self.hashes = {
            r.row: cipher.lookup_hash(r.id_number.number)
            for r in records
            if r.id_number is not None
        }
        # One scan of the community rather than IN-lists of hashes: right after a bulk load
        # the planner's statistics are stale and PostgreSQL compared every row with every
        # hash.
        wanted = set(self.hashes.values())
        self.by_hash: dict[str, Person] = {}
        if wanted:
            for person in session.scalars(
                select(Person).where(
                    Person.community_id == community_id, Person.id_number_hash.is_not(None)
                )
            ):
                if person.id_number_hash in wanted:
                    self.by_hash[person.id_number_hash] = person
        self._no_id: dict[tuple[int, str], Person] | None = None
        self.first_row_of: dict[str, int] = {}
        self.claimed: dict[int, int] = {}  # person id → the row that matched it

    def no_id_person(self, household_id: int, name: str) -> Person | None:
        """A registered person of the household with this name and no ID number."""
        if self._no_id is None:
            self._no_id = {
                (p.household_id, p.name): p
                for p in self.session.scalars(
                    select(Person).where(
                        Person.community_id == self.community_id,
                        Person.id_number_hash.is_(None),
                    )
                )
            }
        return self._no_id.get((household_id, name))

    def plan(self, record: ResidentRecord, errors: list[RowError]) -> _PlannedPerson | None:
        problems: list[tuple[str, str]] = []
        household_id: int | None = None
        new_key: str | None = None
        placed = False
        if record.address is not None:
            try:
                household_id, new_key = self.grid.resolve(record.address, self.create_missing)
                placed = True
            except GridMiss as miss:
                problems.append(
                    (miss.field if miss.field in self.columns else "address", miss.message)
                )
        id_hash = self.hashes.get(record.row)
        existing: Person | None = None
        if id_hash is not None:
            if id_hash in self.first_row_of:
                problems.append(
                    (
                        "id_number",
                        _("与第 {row} 行是同一个身份证号（同一个人填了两次）").format(
                            row=self.first_row_of[id_hash]
                        ),
                    )
                )
            else:
                self.first_row_of[id_hash] = record.row
                existing = self.by_hash.get(id_hash)
                if existing is not None and placed and existing.household_id != household_id:
                    problems.append(("id_number", self._elsewhere(existing)))
                    existing = None
                elif existing is None and household_id is not None:
                    # Registered before without an ID number: this row gives it one.
                    existing = self.no_id_person(household_id, record.name)
        elif "id_number" not in record.given and placed:
            name_key = f"{household_id or new_key}|{record.name}"
            if name_key in self.first_row_of:
                problems.append(
                    (
                        "name",
                        _("与第 {row} 行同户同名且都没有身份证号（同一个人填了两次？）").format(
                            row=self.first_row_of[name_key]
                        ),
                    )
                )
            else:
                self.first_row_of[name_key] = record.row
                if household_id is not None:
                    existing = self.no_id_person(household_id, record.name)
        if existing is not None:
            first = self.claimed.setdefault(existing.id, record.row)
            if first != record.row:
                problems.append(
                    (
                        "name",
                        _("与第 {row} 行是同一户的同一个人（同一个人填了两次？）").format(
                            row=first
                        ),
                    )
                )
        errors.extend(RowError(record.row, f, m, record.name) for f, m in problems)
        if problems or not record.valid:
            return None
        return _PlannedPerson(record, household_id, new_key, existing, id_hash)

    def _elsewhere(self, existing: Person) -> str:
        current = self.session.get(Household, existing.household_id)
        if current is None or not self.grid.covers(current):
            # Outside the importer's scope: say neither where nor who.
            return _(
                "此身份证号已登记在本社区的其他住户，不在您负责的范围内；"
                "如此人已搬家，请联系负责原住户的社区干部先把此人标为迁出"
            )
        return _("此身份证号已登记在 {where}（{name}）；如已搬家，请先在原户把此人标为迁出").format(
            where=current.address, name=existing.name
        )


def _created(r: ResidentRecord) -> dict[str, list[Any]]:
    """A new person's values as history keeps them ({field: [None, value]}). Written out
    field by field: for 15,000 people a generic loop costs a quarter of a second."""
    changes: dict[str, list[Any]] = {"name": [None, r.name]}
    if r.id_number is not None:
        changes["id_number"] = [None, r.id_number.masked]
    if r.gender is not None:
        changes["gender"] = [None, r.gender.value]
    if r.birth_date is not None:
        changes["birth_date"] = [None, r.birth_date.isoformat()]
    if r.phone is not None:
        changes["phone"] = [None, r.phone]
    changes["relation"] = [None, r.relation.value]
    changes["residence_status"] = [None, r.residence_status.value]
    changes["health_status"] = [None, r.health_status.value]
    if r.care_tags:
        changes["care_tags"] = [[], list(r.care_tags)]
    if r.note is not None:
        changes["note"] = [None, r.note]
    return changes


def _classify(item: _PlannedPerson) -> RowPlan:
    """New, changed or unchanged; sets the columns an update writes."""
    record, existing = item.record, item.existing
    where = place(record.address) if record.address else ""
    if existing is None:
        # Its values go to history when it is written (kept for every new row of a
        # 15,000-row sheet, they would cost the garbage collector more than the insert).
        return RowPlan(record.row, record.name, where, "new")
    diff = _person_diff(existing, record)
    item.values = {name: new for name, (_old, new) in diff.items()}
    history = {name: [stored_value(old), stored_value(new)] for name, (old, new) in diff.items()}
    if record.id_number is not None and existing.id_number_hash is None:
        item.values.update(_id_columns(record, item.id_hash))
        history["id_number"] = [None, record.id_number.masked]
    if not history:
        return RowPlan(record.row, record.name, where, "unchanged")
    return RowPlan(record.row, record.name, where, "changed", history)


_PERSON = cast(Table, Person.__table__)
_RECORD_CHANGE = cast(Table, RecordChange.__table__)


def _insert_history(session: Session, rows: list[dict[str, Any]]) -> None:
    """History rows through Core, not the ORM's bulk insert: a third of the time."""
    for start in range(0, len(rows), BATCH):
        session.execute(insert(_RECORD_CHANGE), rows[start : start + BATCH])


def _insert_people(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` and return their ids in order (the history rows need them).

    The ids are reserved first and the rows inserted with them, because RETURNING over a
    many-row insert costs twice (SQLite) to four times (PostgreSQL) the insert itself:
    PostgreSQL hands them out from the table's sequence; SQLite has one writer at a time
    and the import holds the write lock (``begin_write``), so the next ids are free — and
    should another writer have taken one anyway, the insert fails whole, it never mixes."""
    if session.get_bind().dialect.name == "postgresql":
        ids = list(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence('person', 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"n": len(rows)},
            )
        )
    else:
        last = session.scalar(select(func.max(Person.id))) or 0
        ids = list(range(last + 1, last + 1 + len(rows)))
    session.execute(insert(_PERSON), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
    return ids


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
    the same file changes nothing. Every person created or changed gets a history row.
    """
    require(actor, Permission.registry_write)
    report = ImportReport(kind="residents")
    table = read_sheet(report, content, filename, RESIDENT_ALIASES, "name")
    if table is None:
        return report
    if table.columns and "id_number" not in table.columns and report.rows:
        report.warnings.append(
            _("表格里没有“身份证号”列：这些人都将没有身份证号，在应录尽录报告中计为缺身份证号")
        )
    records, report.errors = validate_resident_rows(table)
    planner = _ResidentPlanner(session, actor, community_id, records, create_missing, table.columns)
    planned: list[_PlannedPerson] = []
    for done, record in enumerate(records, start=1):
        if progress and done % 500 == 0:
            progress(done, len(records))
        item = planner.plan(record, report.errors)
        if item is not None:
            planned.append(item)
            report.plans.append(_classify(item))
    report.new_households = len({p.new_household_key for p in planned if p.new_household_key})
    finish_check(report, table)
    if dry_run or (report.errors and not skip_invalid):
        return report
    with session.begin_nested():
        _write_residents(session, actor, community_id, planner.grid, planned, report, progress)
        audit_import(session, actor, community_id, filename, report)
    session.expire_all()
    report.written = True
    return report


def _write_residents(
    session: Session,
    actor: Actor,
    community_id: int,
    grid: GridIndex,
    planned: list[_PlannedPerson],
    report: ImportReport,
    progress: Progress | None,
) -> None:
    """Update the changed people, insert the new ones, and keep a history row for each,
    in bulk (15,000 people in a few seconds). New rows are built and written a batch at a
    time: kept all at once, 15,000 rows of small dicts and lists cost more in the garbage
    collector's full passes than in the database."""
    created_households: dict[str, int] = {}
    creating: list[tuple[ResidentRecord, str | None, RowPlan, int]] = []
    at = utcnow()

    def history_row(household_id: int, person_id: int, action: str, changes: Any) -> dict[str, Any]:
        return {
            "community_id": community_id,
            "household_id": household_id,
            "person_id": person_id,
            "action": action,
            "changes": changes,
            "via": ChangeVia.import_,
            "proposal_id": None,
            "user_id": actor.user_id or None,
            "username": actor.username,
            "at": at,
        }

    updates: list[dict[str, Any]] = []
    for item, plan in zip(planned, report.plans, strict=True):
        if plan.action == "unchanged":
            continue
        if item.existing is not None:
            # Rows differ in which columns changed, so each is its own UPDATE.
            session.execute(
                update(Person)
                .where(Person.id == item.existing.id)
                .values({**item.values, "version": Person.version + 1})
            )
            updates.append(
                history_row(
                    item.existing.household_id, item.existing.id, PERSON_UPDATE, plan.changes
                )
            )
            if str(plan.changes.get("residence_status", [None, None])[1]) == "moved_out":
                from fengchao.access.faces import forget_person  # access stands on registry

                forget_person(session, item.existing.id)  # a face leaves with the resident
            continue
        household_id = item.household_id
        if household_id is None:
            key = item.new_household_key
            assert key is not None
            if key not in created_households:
                created_households[key] = grid.create(key)
            household_id = created_households[key]
        creating.append((item.record, item.id_hash, plan, household_id))
    _insert_history(session, updates)
    for start in range(0, len(creating), BATCH):
        batch = creating[start : start + BATCH]
        rows = [
            {
                **{name: getattr(record, name) for name in _PERSON_FIELDS},
                "community_id": community_id,
                "household_id": household_id,
                **_id_columns(record, id_hash),
            }
            for record, id_hash, _plan, household_id in batch
        ]
        ids = _insert_people(session, rows)
        _insert_history(
            session,
            [
                history_row(household_id, person_id, PERSON_CREATE, _created(record))
                for (record, _h, _plan, household_id), person_id in zip(batch, ids, strict=True)
            ],
        )
        if progress:
            progress(min(start + BATCH, len(creating)), len(creating))
    report.created, report.updated = len(creating), len(updates)
    report.new_households = len(created_households)


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
        report = import_vehicles(
            session=session,
            actor=actor,
            community_id=community_id,
            content=content,
            filename=filename,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
        )
    else:
        report = import_residents(
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
    if not dry_run:
        # The gates look people and vehicles up from the next second on.
        refresh_statistics(session, "household", "person", "vehicle", "building", "unit")
    return report
