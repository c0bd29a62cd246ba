"""Hostile and broken spreadsheets, built the way an attacker would: a real workbook whose
sheet XML is replaced, streamed through zipfile so that even a 300 MB part costs the test
little memory."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator

import openpyxl

SHEET = "xl/worksheets/sheet1.xml"
SHEET_OPEN = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)
HEADER = ("姓名", "身份证号", "小区", "楼栋", "单元", "房号")


def _inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def header_row(number: int = 1) -> bytes:
    cells = "".join(_inline(f"{chr(65 + i)}{number}", h) for i, h in enumerate(HEADER))
    return f'<row r="{number}">{cells}</row>'.encode()


def person_row(number: int, name: str = "张三", room: str = "101") -> bytes:
    values = (name, "", "华润中央公园", "5", "1", room)
    cells = "".join(_inline(f"{chr(65 + i)}{number}", v) for i, v in enumerate(values) if v)
    return f'<row r="{number}">{cells}</row>'.encode()


def with_sheet_xml(parts: Iterable[bytes], *, drop: tuple[str, ...] = ()) -> bytes:
    """A workbook made by openpyxl whose first sheet's XML is ``parts`` (streamed)."""
    book = openpyxl.Workbook()
    book.active.append(["x"])
    buffer = io.BytesIO()
    book.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename in drop:
                continue
            if info.filename == SHEET:
                with target.open(SHEET, "w", force_zip64=False) as stream:
                    for part in parts:
                        stream.write(part)
            else:
                target.writestr(info, source.read(info))
    return out.getvalue()


def sheet_xml(rows: Iterable[bytes], *, dimension: str | None = None) -> Iterator[bytes]:
    yield SHEET_OPEN
    if dimension:
        yield f'<dimension ref="{dimension}"/>'.encode()
    yield b"<sheetData>"
    yield from rows
    yield b"</sheetData></worksheet>"


def million_rows(*, numbered: bool = False) -> bytes:
    """A million rows: about 100 KB zipped as the issue's bomb (identical rows, which need
    no row numbers), or a few MB when every row carries its own number."""

    def rows() -> Iterator[bytes]:
        yield header_row()
        plain = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>' * 10_000
        for start in range(2, 1_000_002, 10_000):
            yield (
                b"".join(
                    f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>x</t></is></c></row>'.encode()
                    for n in range(start, start + 10_000)
                )
                if numbered
                else plain
            )

    return with_sheet_xml(sheet_xml(rows()))


def huge_cell(megabytes: int) -> bytes:
    """One cell of ``megabytes`` MB of the same letter: a few hundred KB zipped."""

    def rows() -> Iterator[bytes]:
        yield header_row()
        yield b'<row r="2"><c r="A2" t="inlineStr"><is><t>'
        block = b"a" * (1 << 20)
        for _ in range(megabytes):
            yield block
        yield b"</t></is></c></row>"

    return with_sheet_xml(sheet_xml(rows()))


def encrypted_workbook() -> bytes:
    """What Excel writes for a workbook with an opening password: an OLE compound file
    whose directory holds the EncryptionInfo and EncryptedPackage streams."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)

    def entry(name: str) -> bytes:
        raw = (name + "\0").encode("utf-16-le")
        return raw.ljust(64, b"\0") + len(raw).to_bytes(2, "little") + bytes(62)

    directory = b"".join(entry(n) for n in ("Root Entry", "EncryptionInfo", "EncryptedPackage"))
    return header + directory.ljust(512, b"\0") + bytes(4096)
