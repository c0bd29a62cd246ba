"""Importing vehicles (登记车辆) from a sheet: plate, household, owner; matched by plate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.service import Actor, Permission, require
from fengchao.registry.import_grid import GridIndex, GridMiss
from fengchao.registry.import_report import (
    Action,
    ImportReport,
    RowPlan,
    audit_import,
    finish_check,
    import_scope,
    place,
    read_sheet,
)
from fengchao.registry.importer import (
    VEHICLE_ALIASES,
    RowError,
    VehicleRecord,
    validate_vehicle_rows,
)
from fengchao.registry.models import Household, Person, Vehicle
from fengchao.web.i18n import _


def _people_by_name(session: Session, community_id: int) -> dict[tuple[int, str], int]:
    return {
        (household_id, name): person_id
        for person_id, household_id, name in session.execute(
            select(Person.id, Person.household_id, Person.name).where(
                Person.community_id == community_id
            )
        )
    }


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
    table = read_sheet(report, content, filename, VEHICLE_ALIASES, "plate")
    if table is None:
        return report
    records, report.errors = validate_vehicle_rows(table)
    grid = GridIndex(session, community_id, import_scope(actor))
    existing = {
        v.plate: v
        for v in session.scalars(select(Vehicle).where(Vehicle.community_id == community_id))
    }
    owners = _people_by_name(session, community_id) if records else {}
    names = {person_id: name for (_h, name), person_id in owners.items()}
    planned: list[tuple[VehicleRecord, int, int | None]] = []
    seen: dict[str, int] = {}
    for record in records:
        problems, household_id = _check_vehicle(
            session, grid, existing, seen, record, table.columns
        )
        report.errors.extend(RowError(record.row, f, m, record.plate) for f, m in problems)
        if problems or not record.valid or household_id is None:
            continue
        owner_id = owners.get((household_id, record.owner_name or ""))
        current = existing.get(record.plate)
        where = place(record.address) if record.address else ""
        if current is None:
            changes = {"owner_name": [None, names[owner_id]]} if owner_id else {}
            if record.note:
                changes["note"] = [None, record.note]
            plan = RowPlan(record.row, record.plate, where, "new", changes)
        else:
            changes = {}
            if owner_id is not None and owner_id != current.owner_person_id:
                old = names.get(current.owner_person_id or 0)
                changes["owner_name"] = [old, names[owner_id]]
            if "note" in record.given and record.note != current.note:
                changes["note"] = [current.note, record.note]
            action: Action = "changed" if changes else "unchanged"
            plan = RowPlan(record.row, record.plate, where, action, changes)
        report.plans.append(plan)
        planned.append((record, household_id, owner_id))
    finish_check(report, table)
    if dry_run or (report.errors and not skip_invalid):
        return report
    with session.begin_nested():
        for (record, household_id, owner_id), plan in zip(planned, report.plans, strict=True):
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
            elif plan.action == "changed":
                if "owner_name" in plan.changes:
                    current.owner_person_id = owner_id
                if "note" in plan.changes:
                    current.note = record.note
                report.updated += 1
        audit_import(session, actor, community_id, filename, report)
    report.written = True
    return report


def _check_vehicle(
    session: Session,
    grid: GridIndex,
    existing: dict[str, Vehicle],
    seen: dict[str, int],
    record: VehicleRecord,
    columns: dict[str, int],
) -> tuple[list[tuple[str, str]], int | None]:
    """The row's problems against the grid and the file, and its household."""
    problems: list[tuple[str, str]] = []
    household_id: int | None = None
    if record.address is not None:
        try:
            household_id, _new = grid.resolve(record.address, create_missing=False)
        except GridMiss as miss:
            field = miss.field if miss.field in columns else "address"
            problems.append((field, miss.message))
    if not record.plate:
        return problems, household_id
    if record.plate in seen:
        problems.append(("plate", _("与第 {row} 行车牌相同").format(row=seen[record.plate])))
        return problems, household_id
    seen[record.plate] = record.row
    current = existing.get(record.plate)
    if current is not None and household_id is not None and current.household_id != household_id:
        holder = session.get(Household, current.household_id)
        if holder is None or not grid.covers(holder):
            message = _("车牌 {p} 已登记在本社区的另一户，不在您负责的范围内").format(
                p=record.plate
            )
        else:
            message = _("车牌 {p} 已登记在另一户（{where}）").format(
                p=record.plate, where=holder.address
            )
        problems.append(("plate", message))
    return problems, household_id
