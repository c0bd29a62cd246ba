"""What an import check found or an import wrote (:class:`ImportReport`), and the steps
residents and vehicles share: reading the sheet, ordering the problems, auditing."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session

from fengchao.auth.service import SYSTEM_ACTOR, Actor, GridScope, audit
from fengchao.registry.importer import RowError
from fengchao.registry.sheets import SheetError, SheetLimits, Table, read_table
from fengchao.registry.validation import Address
from fengchao.settings import get_settings

Action = Literal["new", "changed", "unchanged"]


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What the import does with one valid row. ``changes`` holds, for a changed row,
    {field: [old, new]} as history keeps them (enum values, ISO dates, ID numbers masked);
    for a vehicle also its new values."""

    row: int
    name: str
    where: str
    action: Action
    changes: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProblemRow:
    """A row with problems, as the check page lists it: its name and every problem."""

    row: int
    name: str
    problems: list[RowError]


@dataclass
class ImportReport:
    """What a dry run found, or what an import wrote; and, for the error file, the sheet's
    header and the cells of the rows with problems as the sheet holds them."""

    kind: str
    rows: int = 0
    valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    plans: list[RowPlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    new_households: int = 0
    written: bool = False
    sheet: str = ""
    header_row: int = 0
    header: list[object] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)
    problem_cells: dict[int, list[object]] = field(default_factory=dict)

    def count(self, action: Action) -> int:
        return sum(1 for plan in self.plans if plan.action == action)

    @property
    def new(self) -> int:
        return self.count("new")

    @property
    def changed(self) -> int:
        return self.count("changed")

    @property
    def problem_rows(self) -> int:
        """Data rows with at least one problem (each would be, or was, skipped)."""
        return self.rows - self.valid if self.rows else 0

    @property
    def skipped(self) -> int:
        return self.problem_rows if self.written else 0

    @property
    def would_change(self) -> bool:
        return any(plan.action != "unchanged" for plan in self.plans)

    def problems(self) -> list[ProblemRow]:
        """The errors grouped by row, in row order; problems of the file or its header
        (row 0 or the header row) come first, under no name."""
        grouped: dict[int, ProblemRow] = {}
        for error in self.errors:
            row = grouped.get(error.row)
            if row is None:
                row = grouped[error.row] = ProblemRow(error.row, error.name, [])
            row.problems.append(error)
        return [grouped[n] for n in sorted(grouped)]

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
            "new": self.new,
            "changed": self.changed,
            "problem_rows": self.problem_rows,
            "skipped": self.skipped,
            "changes": [
                {"row": p.row, "name": p.name, "where": p.where, "fields": p.changes}
                for p in self.plans
                if p.action == "changed"
            ],
            "warnings": self.warnings,
        }


def read_sheet(
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
    report.header, report.columns = table.header_cells, table.columns
    return table


def finish_check(report: ImportReport, table: Table) -> None:
    """Order the problems and keep the cells of the rows they are in (for the error file)."""
    report.errors.sort(key=lambda e: e.row)  # stable: a row's problems keep their order
    wanted = {e.row for e in report.errors}
    report.problem_cells = {n: values for n, values in table.rows if n in wanted}
    report.valid = len(report.plans)
    report.unchanged = report.count("unchanged")


def audit_import(
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
        skipped_rows=report.problem_rows,  # written or not, the rows left out
        new_households=report.new_households,
    )


def import_scope(actor: Actor) -> GridScope | None:
    """The part of the grid the importer answers for; the system actor (the command line
    without ``--as``) imports anywhere."""
    return None if actor == SYSTEM_ACTOR else actor.scope


def place(address: Address) -> str:
    return f"{address.compound} {address.short}" if address.compound else address.short


def stored_value(value: Any) -> Any:
    """A value as history keeps it: enum values, ISO dates, sorted lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return sorted(value)
    return value
