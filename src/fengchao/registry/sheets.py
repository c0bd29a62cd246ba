"""Reading the spreadsheets community offices keep (XLSX, CSV in UTF-8 or GBK).

Finds the header row itself (sheets often carry a merged title row above it and a 序号
column) and keeps Excel's row numbers so that errors point at the row the user sees.

Uploads are untrusted: 143 KB of XLSX can unzip to a million rows, 306 KB to one cell of
300 MB. Before openpyxl sees an XLSX, its zip directory is checked (declared sizes,
compression ratio, encryption, a workbook inside) and its XML is scanned for over-long
text and too many rows — milliseconds, a megabyte of memory. Rows and cells are limited
again while streaming, and whatever is malformed becomes a :class:`SheetError` that tells
the user what is wrong, never an exception from deep inside a parser.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import struct
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TypeVar
from xml.etree.ElementTree import ParseError

from fengchao.tabular import unneutralised
from fengchao.web.i18n import _

if TYPE_CHECKING:
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

log = logging.getLogger(__name__)

HEADER_SCAN_ROWS = 20
# Columns read per row. openpyxl pads every row to the widest column it was told of, so a
# cell in column XFD would make each row 16,384 values wide; registers use a few dozen.
MAX_COLUMNS = 256
MIN_COLUMNS = 64
# A part must unzip to at least this much before its compression ratio is judged: small
# parts cannot hurt, and their ratios say nothing.
RATIO_FLOOR = 1 << 20
MAX_PARTS = 1000  # real workbooks have 10-30 parts (more with pictures)
# XML bytes one cell character can take at most (Excel escapes a control character as
# _x000D_, 7 bytes); text without a tag for longer than this is no legitimate cell.
XML_BYTES_PER_CHAR = 8
_CHUNK = 1 << 20
_EOCD = b"PK\x05\x06"
# Excel saves a password-protected workbook as an OLE file holding these streams.
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


class SheetError(ValueError):
    """The file as a whole cannot be read; ``message`` tells the user what to do, ``row``
    is the row where reading stopped (0 when the file as such is the problem)."""

    def __init__(self, message: str, row: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


@dataclass(frozen=True)
class SheetLimits:
    """What one upload may hold (the ``imports`` settings)."""

    max_bytes: int
    max_rows: int
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_cell_chars: int


@dataclass(frozen=True)
class FormulaWithoutValue:
    """A formula cell whose result was never calculated (the file was not saved by Excel)."""

    formula: str


@dataclass
class Table:
    """Data rows under a recognised header; ``rows`` pairs Excel's row number with values
    (every cell up to the row's last non-empty one, so that an error file can give the row
    back as it was); ``header_cells`` is the header row as written."""

    columns: dict[str, int]
    header_row: int
    headers: list[str]
    rows: list[tuple[int, list[object]]] = field(default_factory=list)
    sheet: str = ""
    header_cells: list[object] = field(default_factory=list)


Rows = Iterator[tuple[int, list[object]]]
T = TypeVar("T")


def normalise_header(text: object) -> str:
    clean = re.sub(r"[\s*＊:：]|[（(].*?[)）]", "", str(text or ""))
    return clean.strip()


def column_letter(index: int) -> str:
    """Excel's name of the 0-based column ``index``: 0 → A, 27 → AB."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _mb(size: float) -> float:
    return round(size / 1048576, 1)


# --- the file as a whole -----------------------------------------------------------------


def _corrupt() -> SheetError:
    return SheetError(
        _("Excel 文件已损坏或不完整（可能没有上传完），请在 Excel 中打开后重新保存再上传")
    )


def _detect_kind(content: bytes, filename: str) -> str:
    if not content:
        raise SheetError(_("文件是空的"))
    if content.startswith(b"PK\x03\x04"):
        return "xlsx"
    if content.startswith(b"%PDF"):
        raise SheetError(_("这是 PDF 文件，不是表格。请上传 Excel（.xlsx）或 CSV 文件"))
    if content.startswith(b"\xd0\xcf\x11\xe0"):
        if _ENCRYPTED_PACKAGE in content:
            raise SheetError(
                _(
                    "这个 Excel 文件设置了打开密码，系统无法读取。请在 Excel 中打开，"
                    "点“文件 → 信息 → 保护工作簿 → 用密码进行加密”，清空密码并保存后再上传"
                )
            )
        raise SheetError(_("这是旧版 Excel（.xls）文件，请在 Excel 中“另存为” .xlsx 后再上传"))
    if b"\x00" in content:  # anywhere: PostgreSQL cannot store NUL in text either
        raise SheetError(_("文件不是 Excel（.xlsx）或 CSV 表格"))
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise SheetError(_("文件名是 .xlsx，但内容不是 Excel 表格，文件可能已损坏"))
    return "csv"


def _open_zip(content: bytes) -> zipfile.ZipFile:
    """The archive, once its end record shows a plausible number of parts (zipfile reads
    the whole directory into memory, so that number is checked first)."""
    end = content.rfind(_EOCD, max(0, len(content) - 65_557))
    if end < 0 or len(content) < end + 22:
        raise _corrupt()  # the directory sits at the end: a truncated upload has none
    (parts,) = struct.unpack_from("<H", content, end + 10)
    if parts > MAX_PARTS:
        raise SheetError(
            _("文件里有 {n} 个部件，不像 Excel 表格（正常的只有几十个），系统拒绝读取").format(
                n=parts
            )
        )
    try:
        return zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error):
        raise _corrupt() from None


def check_xlsx(content: bytes, limits: SheetLimits) -> None:
    """Refuse an XLSX that is encrypted, not a workbook, or unzips to more than a register
    could, from its zip directory alone; then scan its XML (see :func:`_scan_xml`)."""
    with _open_zip(content) as archive:
        parts = archive.infolist()
        if len(parts) > MAX_PARTS:
            raise SheetError(
                _("文件里有 {n} 个部件，不像 Excel 表格（正常的只有几十个），系统拒绝读取").format(
                    n=len(parts)
                )
            )
        if any(part.flag_bits & 0x1 for part in parts):
            raise SheetError(
                _("Excel 文件的内容被加密了，系统无法读取；请取消密码后另存为 .xlsx 再上传")
            )
        names = {part.filename for part in parts}
        if "[Content_Types].xml" not in names or not any(
            name.endswith(".xml") and "workbook" in name.rsplit("/", 1)[-1] for name in names
        ):
            if "word/document.xml" in names:
                raise SheetError(_("这是 Word 文档，不是表格。请上传 Excel（.xlsx）或 CSV 文件"))
            raise SheetError(
                _("这是一个压缩包，但里面没有 Excel 工作簿。请上传 Excel（.xlsx）或 CSV 文件")
            )
        declared = sum(part.file_size for part in parts)
        if declared > limits.max_uncompressed_bytes:
            raise SheetError(
                _(
                    "Excel 文件解压后有 {size} MB，超过上限 {limit} MB；请拆成几个文件分别导入"
                ).format(size=_mb(declared), limit=_mb(limits.max_uncompressed_bytes))
            )
        for part in parts:
            ratio = part.file_size / max(part.compress_size, 1)
            if part.file_size >= RATIO_FLOOR and ratio > limits.max_compression_ratio:
                raise SheetError(
                    _(
                        "文件异常：其中“{part}”从 {packed} KB 解压成 {size} MB，压缩了 {ratio} 倍"
                        "（正常表格不超过 {limit} 倍）。这可能是“压缩炸弹”，系统拒绝读取"
                    ).format(
                        part=part.filename,
                        packed=round(part.compress_size / 1024),
                        size=_mb(part.file_size),
                        ratio=round(ratio),
                        limit=round(limits.max_compression_ratio),
                    )
                )
        _scan_xml(archive, parts, limits)


def _scan_xml(archive: zipfile.ZipFile, parts: list[zipfile.ZipInfo], limits: SheetLimits) -> None:
    """Unzip each XML part in chunks and look for text that runs too long without a tag
    (a giant cell, which a parser would hold whole) and for too many rows in a sheet.

    The declared sizes hold here: Python's zipfile stops at a part's declared size and then
    fails its checksum.
    """
    for part in parts:
        if not part.filename.endswith((".xml", ".rels")):
            continue
        try:
            with archive.open(part) as stream:
                _scan_part(stream, "worksheets/" in part.filename, limits)
        except SheetError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError):
            log.info("unreadable zip part %s", part.filename, exc_info=True)
            raise _corrupt() from None


def _row_ceiling(limits: SheetLimits) -> int:
    """Rows a sheet may reach, blank ones included (Excel writes formatted blank rows)."""
    return 2 * limits.max_rows + HEADER_SCAN_ROWS


def _too_many_rows(limits: SheetLimits, row: int = 0) -> SheetError:
    return SheetError(
        _("表格有超过 {n} 行，上限是 {limit} 行；请拆成几个文件分别导入").format(
            n=_row_ceiling(limits), limit=limits.max_rows
        ),
        row,
    )


def _scan_part(stream: IO[bytes], is_sheet: bool, limits: SheetLimits) -> None:
    """One part: the run of bytes without a ``<`` is followed exactly across chunks; inside
    a chunk, aligned windows are probed with ``bytes.find`` (memchr), so that any run of
    twice the window is caught at the speed of memory."""
    window = XML_BYTES_PER_CHAR * limits.max_cell_chars
    max_row_tags = _row_ceiling(limits)
    run = rows = 0
    tail = b""
    while chunk := stream.read(_CHUNK):
        if b"<!DOCTYPE" in tail + chunk[:16] or b"<!DOCTYPE" in chunk:
            # OOXML has no DTDs; one here can only mean entity expansion ("billion laughs").
            raise SheetError(
                _(
                    "文件异常：表格里含有 XML 实体声明（DOCTYPE），正常的 Excel 文件没有，"
                    "系统拒绝读取"
                )
            )
        tail = chunk[-16:]
        first, last = chunk.find(b"<"), chunk.rfind(b"<")
        run += len(chunk) if first < 0 else first
        too_long = run > window
        if first >= 0:
            starts = range(first, last - window, window)
            too_long = too_long or any(chunk.find(b"<", i, i + window) < 0 for i in starts)
            run = len(chunk) - last - 1
        if too_long:
            raise SheetError(
                _(
                    "表格里有超长的单元格（超过 {limit} 个字符；Excel 单元格最多 32767 个字符），"
                    "系统拒绝读取"
                ).format(limit=limits.max_cell_chars)
            )
        if is_sheet:
            rows += chunk.count(b"<row") + chunk.count(b":row ")
            if rows > max_row_tags:
                raise _too_many_rows(limits)


# --- rows ---------------------------------------------------------------------------------


def _guarded(items: Iterator[T], sheet: str) -> Iterator[T]:
    """Items of a parser's iterator; whatever the parser raises on a malformed file becomes
    a :class:`SheetError` (our own code between items is not covered)."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except SheetError:
            raise
        except Exception as exc:  # openpyxl and ElementTree raise many kinds on bad input
            log.info("unreadable sheet %r", sheet, exc_info=True)
            why = _("XML 格式错误") if isinstance(exc, ParseError) else _("内容无法读取")
            raise SheetError(
                _("工作表“{sheet}”已损坏（{why}），请在 Excel 中打开后重新保存再上传").format(
                    sheet=sheet, why=why
                )
            ) from None
        yield item


def _decode_csv(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        try:
            return content[3:].decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise SheetError(_("CSV 文件的编码无法识别，请用 UTF-8 或 GBK 保存")) from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK, which Excel in China writes.
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise SheetError(_("CSV 文件的编码无法识别，请用 UTF-8 或 GBK 保存")) from None


def _csv_rows(content: bytes, limits: SheetLimits) -> Rows:
    text = _decode_csv(content)
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    number = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # csv refuses fields over its own limit (131,072 characters) by itself.
            if "field larger than field limit" in str(exc):
                message = _cell_too_long(number + 1, None, None, limits)
                raise SheetError(message, number + 1) from None
            raise SheetError(
                _("CSV 文件第 {row} 行格式有误，无法读取（{why}），请检查后重新保存").format(
                    row=number + 1, why=str(exc)
                ),
                number + 1,
            ) from None
        number += 1
        if number > _row_ceiling(limits):  # a file of line breaks alone is no register
            raise _too_many_rows(limits, number)
        yield number, list(values[:MAX_COLUMNS])


class _XlsxBook:
    """An open workbook; the values Excel cached for formula cells are read from a second,
    ``data_only`` view, opened only when a sheet holds formulas."""

    def __init__(self, content: bytes, limits: SheetLimits) -> None:
        import openpyxl  # imported here: the web process that never imports need not load it

        self.content = content
        self.limits = limits
        try:
            self.book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=False)
        except Exception as exc:  # openpyxl raises many kinds on a malformed workbook part
            log.info("unreadable workbook", exc_info=True)
            if isinstance(exc, ParseError):
                raise SheetError(
                    _("Excel 文件已损坏（XML 格式错误），请在 Excel 中打开后重新保存再上传")
                ) from None
            raise SheetError(
                _("Excel 文件已损坏或不是 .xlsx 格式，请在 Excel 中重新保存")
            ) from None
        self.values_book: Any = None

    def close(self) -> None:
        self.book.close()
        if self.values_book is not None:
            self.values_book.close()

    @staticmethod
    def _rows(sheet: ReadOnlyWorksheet) -> Iterator[tuple[Any, ...]]:
        # The declared dimension is only a claim: read every row there is (openpyxl stops at
        # the declared last row), at least the first columns a register uses even if the
        # claim is narrower, and never rows wider than MAX_COLUMNS.
        width = min(max(sheet.max_column or 0, MIN_COLUMNS), MAX_COLUMNS)
        sheet.reset_dimensions()
        return iter(sheet.iter_rows(max_col=width, values_only=True))

    def sheets(self) -> Iterator[tuple[str, Rows]]:
        for sheet in self.book.worksheets:
            yield sheet.title, self._sheet_rows(sheet)

    def _sheet_rows(self, sheet: ReadOnlyWorksheet) -> Rows:
        cached: Iterator[tuple[int, tuple[Any, ...]]] | None = None
        ceiling = _row_ceiling(self.limits)
        for number, values in enumerate(_guarded(self._rows(sheet), sheet.title), start=1):
            if number > ceiling:
                # openpyxl fills a jump to row 1,000,000 with blank rows: stop counting early.
                raise _too_many_rows(self.limits, number)
            if values.count(None) == len(values):
                continue  # blank (cheaply: a sheet may hold many)
            row = list(values)
            if any(isinstance(v, str) and v.startswith("=") for v in row):
                # Formulas: take the values Excel calculated when it saved the file.
                if cached is None:
                    cached = self._cached_values(sheet.title)
                calc = next((vs for n, vs in cached if n == number), ())
                for i, v in enumerate(row):
                    if isinstance(v, str) and v.startswith("="):
                        got = calc[i] if i < len(calc) else None
                        row[i] = FormulaWithoutValue(v) if got is None else got
            yield number, row

    def _cached_values(self, title: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
        import openpyxl

        if self.values_book is None:
            self.values_book = openpyxl.load_workbook(
                io.BytesIO(self.content), read_only=True, data_only=True
            )
        sheet = self.values_book[title]
        return enumerate(_guarded(self._rows(sheet), title), start=1)


# --- the table ----------------------------------------------------------------------------


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


def _blank(values: list[object]) -> bool:
    return all(v is None or v == "" for v in values)


def _trimmed(values: list[object]) -> list[object]:
    """The row without its trailing empty cells, and with the apostrophe that
    :func:`fengchao.tabular.safe_cell` puts before text such as ``+86 137…`` taken off
    again, so that an error file the platform wrote reads back as the sheet it came from."""
    end = len(values)
    while end and (values[end - 1] is None or values[end - 1] == ""):
        end -= 1
    return [unneutralised(v) for v in values[:end]]


def _cell_too_long(row: int, column: int | None, length: int | None, limits: SheetLimits) -> str:
    if column is None or length is None:
        return _("第 {row} 行有一个单元格超过 {limit} 个字符，系统拒绝读取这个文件").format(
            row=row, limit=limits.max_cell_chars
        )
    return _(
        "第 {row} 行 {col} 列的单元格有 {n} 个字符，超过上限 {limit} 个字符，系统拒绝读取这个文件"
    ).format(row=row, col=column_letter(column), n=length, limit=limits.max_cell_chars)


def _check_cells(number: int, values: list[object], limits: SheetLimits) -> None:
    for column, value in enumerate(values):
        if isinstance(value, str) and len(value) > limits.max_cell_chars:
            raise SheetError(_cell_too_long(number, column, len(value), limits), number)


def _table(rows: Rows, title: str, aliases: dict[str, tuple[str, ...]], key: str,
           limits: SheetLimits) -> Table | None:  # fmt: skip
    """Stream ``rows``: find the header among the first rows, then keep the data rows up
    to the limit, only the columns up to the last recognised one."""
    head: list[tuple[int, list[object]]] = []
    for number, values in rows:
        if _blank(values):
            continue
        _check_cells(number, values, limits)
        head.append((number, values))
        if len(head) == HEADER_SCAN_ROWS:
            break
    found = _find_header(head, aliases, key)
    if found is None:
        return None
    position, headers, columns = found

    def data_rows() -> Iterable[tuple[int, list[object]]]:
        yield from head[position + 1 :]
        for number, values in rows:
            if not _blank(values):
                yield number, values

    data: list[tuple[int, list[object]]] = []
    for number, values in data_rows():
        kept = _trimmed(values)
        _check_cells(number, kept, limits)
        if len(data) == limits.max_rows:
            raise SheetError(
                _(
                    "数据超过上限 {limit} 行（读到表格第 {row} 行时），请拆成几个文件分别导入"
                ).format(limit=limits.max_rows, row=number),
                number,
            )
        data.append((number, kept))
    return Table(columns, head[position][0], headers, data, title, _trimmed(head[position][1]))


def read_table(
    content: bytes,
    filename: str,
    *,
    aliases: dict[str, tuple[str, ...]],
    key: str,
    limits: SheetLimits,
) -> Table:
    """Read the first sheet that has a header with the ``key`` column (e.g. 姓名)."""
    if len(content) > limits.max_bytes:
        raise SheetError(
            _("文件太大（{size} MB），上限是 {limit} MB；请拆成几个文件分别导入").format(
                size=_mb(len(content)), limit=limits.max_bytes // 1048576
            )
        )
    kind = _detect_kind(content, filename)
    if kind == "csv":
        table = _table(_csv_rows(content, limits), "", aliases, key, limits)
    else:
        check_xlsx(content, limits)
        book = _XlsxBook(content, limits)
        try:
            table = None
            for title, rows in book.sheets():
                table = _table(rows, title, aliases, key, limits)
                if table is not None:
                    break
        finally:
            book.close()
    if table is not None:
        return table
    names = "、".join(f"“{a[0]}”" for a in list(aliases.values())[:4])
    raise SheetError(
        _("找不到表头行：前 {n} 行里没有 {names} 等列名").format(n=HEADER_SCAN_ROWS, names=names)
    )
