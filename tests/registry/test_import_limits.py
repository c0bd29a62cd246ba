"""Hostile and broken uploads: bombs are refused from the zip directory or a quick scan,
with little memory; rows and cells are limited while streaming; every malformed file is a
clear file error on the page and in the API, never a 500."""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator

import openpyxl
import pytest
from sqlalchemy.orm import Session

from fengchao.registry import imports as service
from fengchao.registry.importer import RESIDENT_ALIASES
from fengchao.registry.sheets import SheetError, SheetLimits, read_table
from tests.conftest import Grid, Persona
from tests.registry import crafted
from tests.registry.test_import import GOOD, run, xlsx

LIMITS = SheetLimits(
    max_bytes=20 << 20,
    max_rows=100,
    max_uncompressed_bytes=128 << 20,
    max_compression_ratio=100,
    max_cell_chars=32_767,
)
MB = 1 << 20


def traced(work: Callable[[], service.ImportReport]) -> tuple[service.ImportReport, float]:
    """The report and the peak of Python memory allocated while making it, in MB."""
    tracemalloc.start()
    try:
        report = work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return report, peak / MB


def file_error(report: service.ImportReport) -> str:
    assert report.errors and report.errors[0].field == "file", report.errors[:3]
    assert not report.written and report.rows == 0
    return report.errors[0].message


@pytest.fixture
def no_openpyxl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the workbook is handed to openpyxl at all."""

    def refuse(*_args: object, **_kw: object) -> None:
        raise AssertionError("openpyxl was asked to load the workbook")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)


def test_million_row_bomb_is_refused_from_its_zip_directory(
    session: Session, grid: Grid, no_openpyxl: None
) -> None:
    content = crafted.million_rows()
    assert len(content) < 200_000  # the bomb: ~143 KB
    report, peak_mb = traced(lambda: run(session, grid, content, dry_run=False))
    message = file_error(report)
    assert "压缩炸弹" in message and "压缩了 343 倍" in message, message
    assert peak_mb < 5, peak_mb  # today: 630 MB


def test_million_numbered_rows_are_refused_by_the_scan(
    session: Session, grid: Grid, no_openpyxl: None
) -> None:
    # Every row has its own number, so it zips only ~14x: the ratio passes, the row scan
    # (which counts row tags while unzipping) does not.
    content = crafted.million_rows(numbered=True)
    report, peak_mb = traced(lambda: run(session, grid, content))
    assert "上限是 100000 行" in file_error(report)
    assert peak_mb < 10, peak_mb


def test_huge_single_cell_is_refused_by_its_declared_size(
    session: Session, grid: Grid, no_openpyxl: None
) -> None:
    content = crafted.huge_cell(300)
    assert len(content) < 400_000  # the issue's: 306 KB
    report, peak_mb = traced(lambda: run(session, grid, content))
    assert "解压后有 300.0 MB，超过上限 128.0 MB" in file_error(report)
    assert peak_mb < 2, peak_mb  # today: 776 MB


def test_long_cell_within_the_size_limits_is_refused_before_parsing(no_openpyxl: None) -> None:
    # 2 MB of text that hardly compresses: declared size and ratio are fine, yet no
    # legitimate cell is that long, so the scan refuses it before a parser holds it whole.
    text = os.urandom(1536 * 1024).hex().encode()[: 2 * MB]
    content = crafted.with_sheet_xml(
        crafted.sheet_xml([crafted.header_row(), b'<row r="2"><c r="A2" t="inlineStr"><is><t>',
                           text, b"</t></is></c></row>"])
    )  # fmt: skip
    tracemalloc.start()
    try:
        with pytest.raises(SheetError) as refused:
            read_table(content, "a.xlsx", aliases=RESIDENT_ALIASES, key="name", limits=LIMITS)
        peak_mb = tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()
    assert "超长的单元格" in refused.value.message
    assert peak_mb < 2 * len(content) / MB + 4, peak_mb


def test_cell_over_excels_limit_is_refused_while_streaming(session: Session, grid: Grid) -> None:
    row = crafted.person_row(2, name="名" * 40_000)
    report = run(
        session, grid, crafted.with_sheet_xml(crafted.sheet_xml([crafted.header_row(), row]))
    )
    assert report.errors[0].row == 2
    assert "第 2 行 A 列的单元格有 40000 个字符，超过上限 32767 个字符" in file_error(report)


def _people_rows(count: int) -> Iterator[bytes]:
    yield crafted.header_row()
    for number in range(2, count + 2):
        yield crafted.person_row(number, room=str(100 + number))


def test_rows_are_limited_while_streaming() -> None:
    content = crafted.with_sheet_xml(crafted.sheet_xml(_people_rows(150)))
    with pytest.raises(SheetError) as refused:
        read_table(content, "a.xlsx", aliases=RESIDENT_ALIASES, key="name", limits=LIMITS)
    # Refused at the 101st data row: the count of all rows was never needed.
    assert refused.value.row == 102
    assert "数据超过上限 100 行（读到表格第 102 行时）" in refused.value.message


def test_declared_width_of_16384_columns_does_not_pad_every_row(
    session: Session, grid: Grid
) -> None:
    # openpyxl pads each row to the declared width: today 2,000 rows of 16,384 values.
    content = crafted.with_sheet_xml(crafted.sheet_xml(_people_rows(2000), dimension="A1:XFD2001"))
    report, peak_mb = traced(lambda: run(session, grid, content))
    assert report.rows == 2000 and report.errors[0].field == "room"  # rooms 102-2101
    assert peak_mb < 30, peak_mb  # today: 250 MB


def test_a_too_small_declared_dimension_loses_no_rows_or_columns(
    session: Session, grid: Grid
) -> None:
    # Some writers declare A1:A1 for any sheet; openpyxl would read just that one cell.
    content = crafted.with_sheet_xml(crafted.sheet_xml(_people_rows(50), dimension="A1:A1"))
    report = run(session, grid, content)
    assert report.rows == 50 and {e.field for e in report.errors} == {"room"}


def test_row_numbered_far_below_is_refused_without_walking_every_blank_row(
    session: Session, grid: Grid
) -> None:
    rows = [crafted.header_row(), crafted.person_row(2), crafted.person_row(1_048_576)]
    content = crafted.with_sheet_xml(crafted.sheet_xml(rows))
    report, peak_mb = traced(lambda: run(session, grid, content))
    assert "表格有超过 200020 行，上限是 100000 行" in file_error(report)
    assert peak_mb < 10, peak_mb


def test_csv_rows_and_cells_are_limited_while_streaming() -> None:
    def read(text: str) -> SheetError:
        with pytest.raises(SheetError) as refused:
            read_table(text.encode(), "a.csv", aliases=RESIDENT_ALIASES, key="name", limits=LIMITS)
        return refused.value

    header = "姓名,身份证号,楼栋,单元,房号\n"
    many = read(header + "".join(f"张{i},,5,1,{i}\n" for i in range(150)))
    assert many.row == 102 and "数据超过上限 100 行" in many.message
    blank = read(header + "\n" * 1000 + "张三,,5,1,101\n")
    assert "表格有超过 220 行" in blank.message
    long = read(header + "张三,,5,1,101\n" + "李" * 40_000 + ",,5,1,102\n")
    assert long.row == 3 and "第 3 行 A 列的单元格有 40000 个字符" in long.message
    # Over csv's own field limit (131,072): a file error as well, not a csv.Error.
    huge = read(header + "张三,,5,1,101\n" + "李" * 200_000 + ",,5,1,102\n")
    assert huge.row == 3 and "超过 32767 个字符" in huge.message
    # A NUL far into the file (PostgreSQL could not store it) makes it no CSV at all.
    nul = read(header + "张三,,5,1,101\n" * 1000 + "李\0四,,5,1,102\n")
    assert "不是 Excel（.xlsx）或 CSV 表格" in nul.message


def _encrypted_entries() -> bytes:
    """A workbook whose parts are marked as encrypted with zip's own password (bit 0 of the
    general-purpose flags in each central directory header)."""
    content = bytearray(xlsx(GOOD))
    start = content.find(b"PK\x01\x02")
    while start >= 0:
        content[start + 8] |= 0x1
        start = content.find(b"PK\x01\x02", start + 4)
    return bytes(content)


def _word_document() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("[Content_Types].xml", "<Types/>")
        target.writestr("word/document.xml", "<document/>")
    return out.getvalue()


BROKEN_ROW = b'<row r="2"><c r="A2" t="inlineStr"><is><t>oops</is></c></row>'
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
)


def malformed_files() -> dict[str, tuple[bytes, str]]:
    good = xlsx(GOOD)
    sheet_root = crafted.SHEET_OPEN[crafted.SHEET_OPEN.index(b"<worksheet") :]
    return {
        "broken sheet XML": (
            crafted.with_sheet_xml(crafted.sheet_xml([crafted.header_row(), BROKEN_ROW])),
            "XML 格式错误",
        ),
        "broken XML after the dimension": (
            crafted.with_sheet_xml(
                crafted.sheet_xml([crafted.header_row(), BROKEN_ROW], dimension="A1:F2")
            ),
            "工作表“Sheet”已损坏（XML 格式错误）",
        ),
        "zip without a workbook": (
            crafted.with_sheet_xml(crafted.sheet_xml([]), drop=("xl/workbook.xml",)),
            "里面没有 Excel 工作簿",
        ),
        "word document": (_word_document(), "Word 文档"),
        "password-protected workbook": (crafted.encrypted_workbook(), "设置了打开密码"),
        "encrypted zip entries": (_encrypted_entries(), "加密"),
        "truncated zip": (good[: len(good) // 2], "不完整"),
        "entity expansion": (
            crafted.with_sheet_xml(
                [
                    LAUGHS,
                    sheet_root,
                    b"<sheetData>",
                    crafted.header_row(),
                    b'<row r="2"><c r="A2" t="inlineStr"><is><t>&lol2;</t></is></c></row>',
                    b"</sheetData></worksheet>",
                ]
            ),
            "DOCTYPE",
        ),
    }


@pytest.mark.parametrize("case", list(malformed_files()))
def test_malformed_file_is_a_clear_file_error(session: Session, grid: Grid, case: str) -> None:
    content, fragment = malformed_files()[case]
    message = file_error(run(session, grid, content, dry_run=False))
    assert fragment in message, message


def test_malformed_xml_on_the_page_and_in_the_api(login_as, grid: Grid, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    content = crafted.with_sheet_xml(crafted.sheet_xml([crafted.header_row(), BROKEN_ROW]))
    browser = login_as(worker)
    page = browser.post("/registry/import", files={"file": ("居民.xlsx", content)})
    assert page.status_code in (200, 422)
    assert "XML 格式错误" in page.text and "居民.xlsx" in page.text
    api = browser.post("/api/registry/import/residents", files={"file": ("居民.xlsx", content)})
    assert api.status_code == 200
    error = api.json()["errors"][0]
    assert error["field"] == "file" and "XML 格式错误" in error["message"]
