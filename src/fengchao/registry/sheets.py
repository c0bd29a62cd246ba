"""Reading the spreadsheets community offices keep (XLSX, CSV in UTF-8 or GBK).

Finds the header row itself (sheets often carry a merged title row above it and a 序号
column) and keeps Excel's row numbers so that errors point at the row the user sees.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from fengchao.web.i18n import _

HEADER_SCAN_ROWS = 20


class SheetError(ValueError):
    """The file as a whole cannot be read; ``message`` tells the user what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FormulaWithoutValue:
    """A formula cell whose result was never calculated (the file was not saved by Excel)."""

    formula: str


@dataclass
class Table:
    """Data rows under a recognised header; ``rows`` pairs Excel's row number with values."""

    columns: dict[str, int]
    header_row: int
    headers: list[str]
    rows: list[tuple[int, list[object]]] = field(default_factory=list)
    sheet: str = ""


def normalise_header(text: object) -> str:
    clean = re.sub(r"[\s*＊:：]|[（(].*?[)）]", "", str(text or ""))
    return clean.strip()


def _match_columns(headers: list[str], aliases: dict[str, tuple[str, ...]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        for field_name, names in aliases.items():
            if field_name not in found and header in names:
                found[field_name] = index
                break
    return found


def _find_header(
    rows: list[tuple[int, list[object]]], aliases: dict[str, tuple[str, ...]], key: str
) -> tuple[int, list[str], dict[str, int]] | None:
    best: tuple[int, list[str], dict[str, int]] | None = None
    for position, (_row_number, values) in enumerate(rows[:HEADER_SCAN_ROWS]):
        headers = [normalise_header(v) for v in values]
        columns = _match_columns(headers, aliases)
        if key in columns and len(columns) >= 2 and (best is None or len(columns) > len(best[2])):
            best = (position, headers, columns)
    return best


def _detect_kind(content: bytes, filename: str) -> str:
    if not content:
        raise SheetError(_("文件是空的"))
    if content.startswith(b"PK\x03\x04"):
        return "xlsx"
    if content.startswith(b"%PDF"):
        raise SheetError(_("这是 PDF 文件，不是表格。请上传 Excel（.xlsx）或 CSV 文件"))
    if content.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError(_("这是旧版 Excel（.xls）文件，请在 Excel 中“另存为” .xlsx 后再上传"))
    if b"\x00" in content[:4096]:
        raise SheetError(_("文件不是 Excel（.xlsx）或 CSV 表格"))
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise SheetError(_("文件名是 .xlsx，但内容不是 Excel 表格，文件可能已损坏"))
    return "csv"


def _decode_csv(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8", errors="strict")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK, which Excel in China writes.
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise SheetError(_("CSV 文件的编码无法识别，请用 UTF-8 或 GBK 保存")) from None


def _csv_rows(content: bytes) -> list[tuple[int, list[object]]]:
    text = _decode_csv(content)
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    return [(number, list(values)) for number, values in enumerate(reader, start=1)]


def _xlsx_sheets(content: bytes) -> Iterable[tuple[str, list[tuple[int, list[object]]]]]:
    import openpyxl  # imported here: the web process that never imports need not load it
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError):
        raise SheetError(_("Excel 文件已损坏或不是 .xlsx 格式，请在 Excel 中重新保存")) from None
    values_book = None
    try:
        for sheet in book.worksheets:
            rows = [
                (number, list(values))
                for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
            ]
            if any(isinstance(v, str) and v.startswith("=") for _, vs in rows for v in vs):
                # Formulas: take the values Excel calculated when it saved the file.
                if values_book is None:
                    values_book = openpyxl.load_workbook(
                        io.BytesIO(content), read_only=True, data_only=True
                    )
                cached = list(values_book[sheet.title].iter_rows(values_only=True))
                for (_number, values), calc in zip(rows, cached, strict=False):
                    for i, v in enumerate(values):
                        if isinstance(v, str) and v.startswith("="):
                            got = calc[i] if i < len(calc) else None
                            values[i] = FormulaWithoutValue(v) if got is None else got
            yield sheet.title, rows
    finally:
        book.close()
        if values_book is not None:
            values_book.close()


def read_table(
    content: bytes,
    filename: str,
    *,
    aliases: dict[str, tuple[str, ...]],
    key: str,
    max_bytes: int,
    max_rows: int,
) -> Table:
    """Read the first sheet that has a header with the ``key`` column (e.g. 姓名)."""
    if len(content) > max_bytes:
        raise SheetError(
            _("文件太大（{size} MB），上限是 {limit} MB；请拆成几个文件分别导入").format(
                size=round(len(content) / 1048576, 1), limit=max_bytes // 1048576
            )
        )
    kind = _detect_kind(content, filename)
    sheets = [("", _csv_rows(content))] if kind == "csv" else _xlsx_sheets(content)
    for title, rows in sheets:
        rows = [(n, vs) for n, vs in rows if any(v not in (None, "") for v in vs)]
        found = _find_header(rows, aliases, key)
        if found is None:
            continue
        position, headers, columns = found
        data = rows[position + 1 :]
        if len(data) > max_rows:
            raise SheetError(
                _("表格有 {n} 行，超过上限 {limit} 行；请拆开导入").format(
                    n=len(data), limit=max_rows
                )
            )
        return Table(columns, rows[position][0], headers, data, title)
    names = "、".join(f"“{a[0]}”" for a in list(aliases.values())[:4])
    raise SheetError(
        _("找不到表头行：前 {n} 行里没有 {names} 等列名").format(n=HEADER_SCAN_ROWS, names=names)
    )
