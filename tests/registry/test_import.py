"""Importing the sheets communities keep: bad input, dry run, one transaction, idempotence."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.registry import imports as service
from fengchao.registry.models import Household, Person, Vehicle
from tests.conftest import Grid, shared_data

HEADER = ["姓名", "性别", "身份证号", "手机", "小区", "楼栋", "单元", "房号", "与户主关系"]


def xlsx(
    rows: list[list[object]], *, header: list[str] | None = HEADER, title: str | None = None
) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    if title:
        sheet.append([title])
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADER))
    if header:
        sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def run(
    session: Session,
    grid: Grid,
    content: bytes,
    filename: str = "居民.xlsx",
    dry_run: bool = True,
    **kw: bool,
) -> service.ImportReport:
    return service.import_residents(
        session=session,
        actor=SYSTEM_ACTOR,
        community_id=grid.community.id,
        content=content,
        filename=filename,
        dry_run=dry_run,
        **kw,
    )


def people(session: Session, grid: Grid) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Person).where(Person.community_id == grid.community.id)
        )
        or 0
    )


GOOD = [
    ["许国平", "女", "350181197310225607", "13757527960", "华润中央公园", "5", "1", "102", "户主"],
    ["许文彬", "男", "350181201105152831", "13675047690", "华润中央公园", "5", "1", "102", "子女"],
]


def only(report: service.ImportReport) -> list[tuple[int, str]]:
    return [(e.row, e.field) for e in report.errors]


def test_file_level_problems_are_reported_without_writing(session: Session, grid: Grid) -> None:
    before = people(session, grid)
    cases = {
        "empty": (b"", "空"),
        "pdf renamed": (b"%PDF-1.7\n...", "PDF"),
        "not a zip": (b"PK\x03\x04garbage", "损坏"),
        "no header": (xlsx([["a", "b"], ["c", "d"]], header=None), "表头"),
    }
    for name, (content, fragment) in cases.items():
        report = run(session, grid, content, dry_run=False)
        assert report.errors and report.errors[0].field == "file", name
        assert fragment in report.errors[0].message, (name, report.errors[0].message)
        assert not report.written
    assert people(session, grid) == before


def test_fifty_megabyte_file_is_refused_before_parsing(session: Session, grid: Grid) -> None:
    report = run(session, grid, b"x" * (50 * 1024 * 1024))
    assert report.errors[0].field == "file"
    assert "MB" in report.errors[0].message


def test_missing_required_column_is_named(session: Session, grid: Grid) -> None:
    report = run(session, grid, xlsx([["张三", "13800000009"]], header=["姓名", "手机"]))
    assert only(report) == [(1, "address")]
    assert "楼栋" in report.errors[0].message and "地址" in report.errors[0].message


def test_sheet_without_id_column_imports_and_says_what_that_means(
    session: Session, grid: Grid
) -> None:
    # The template says the ID number is optional; the importer agrees (it used to
    # refuse a sheet without the column while accepting empty ID cells).
    report = run(
        session, grid, xlsx([["张三", "5", "1", "102"]], header=["姓名", "楼栋", "单元", "房号"])
    )
    assert not report.errors and report.valid == 1
    assert any("身份证号" in w and "应录尽录" in w for w in report.warnings)


def test_shared_sample_finds_header_below_merged_title(session: Session, grid: Grid) -> None:
    content = shared_data("registry", "居民信息登记表-示例.xlsx").read_bytes()
    report = run(session, grid, content, create_missing=True)
    assert report.header_row == 2
    assert report.rows == 36
    rows = {(e.row, e.field) for e in report.errors}
    # The sample's documented mistakes, at the row numbers Excel shows.
    assert (5, "id_number") in rows and (9, "phone") in rows and (12, "id_number") in rows
    excel_number = next(e for e in report.errors if e.row == 5)
    assert "文本" in excel_number.message
    assert people(session, grid) == 2  # a dry run writes nothing


def test_gbk_csv_from_excel_is_read(session: Session, grid: Grid) -> None:
    content = shared_data("registry", "居民信息-GBK示例.csv").read_bytes()
    report = run(session, grid, content, filename="居民.csv", create_missing=True)
    assert report.rows == 12
    assert report.valid == 12, report.errors


def test_import_writes_and_reimport_changes_nothing(session: Session, grid: Grid) -> None:
    content = xlsx(GOOD)
    first = run(session, grid, content, dry_run=False)
    assert first.written and first.created == 2
    again = run(session, grid, content, dry_run=False)
    assert again.written and (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert people(session, grid) == 4


def test_reimport_with_a_changed_phone_updates_that_person(session: Session, grid: Grid) -> None:
    run(session, grid, xlsx(GOOD), dry_run=False)
    changed = [[*GOOD[0][:3], "13900000000", *GOOD[0][4:]], GOOD[1]]
    report = run(session, grid, xlsx(changed), dry_run=False)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    phone = session.scalar(select(Person.phone).where(Person.name == "许国平"))
    assert phone == "13900000000"


def test_id_numbers_are_encrypted_at_rest(session: Session, grid: Grid) -> None:
    run(session, grid, xlsx(GOOD), dry_run=False)
    raw = session.execute(text("select id_number_enc, id_mask from person")).all()
    stored = " ".join(str(v) for row in raw for v in row)
    assert "350181197310225607" not in stored
    assert "350***********5607" in stored


def test_room_that_does_not_exist(session: Session, grid: Grid) -> None:
    row = ["张伟", "男", "350181198001010017", "13800000009", "华润中央公园", "5", "3", "909", ""]
    report = run(session, grid, xlsx([row]), dry_run=False)
    assert only(report) == [(2, "unit")]  # building 5 has units 1 and 2
    assert "不存在" in report.errors[0].message and not report.written
    created = run(session, grid, xlsx([row]), dry_run=False, create_missing=True)
    assert created.written and created.new_households == 1
    assert (
        session.scalar(select(func.count()).select_from(Household).where(Household.room == "909"))
        == 1
    )


def test_unknown_compound_and_building(session: Session, grid: Grid) -> None:
    rows = [
        ["张伟", "男", "350181198001010017", "", "不存在小区", "5", "1", "101", ""],
        ["李娜", "女", "350181198001010025", "", "华润中央公园", "99", "1", "101", ""],
    ]
    report = run(session, grid, xlsx(rows))
    messages = [e.message for e in report.errors]
    assert "不存在小区" in messages[0] and "99" in messages[1]


def test_same_person_twice_in_the_file(session: Session, grid: Grid) -> None:
    report = run(session, grid, xlsx([GOOD[0], GOOD[1], GOOD[0]]), dry_run=False)
    assert only(report) == [(4, "id_number")]
    assert "第 2 行" in report.errors[0].message
    assert not report.written and people(session, grid) == 2


def test_person_registered_in_another_household(session: Session, grid: Grid) -> None:
    # 陈美玲 is registered in 6-1-101 by the fixture with this ID.
    row = ["陈美玲", "男", "350181198505051234", "", "华润中央公园", "5", "1", "101", ""]
    report = run(session, grid, xlsx([row]))
    assert only(report) == [(2, "id_number")]
    assert "6-1-101" in report.errors[0].message


def test_phone_with_spaces_and_plus86_is_accepted(session: Session, grid: Grid) -> None:
    row = [*GOOD[0][:3], "+86 137 5752 7960", *GOOD[0][4:]]
    report = run(session, grid, xlsx([row]), dry_run=False)
    assert report.written and not report.errors
    assert session.scalar(select(Person.phone).where(Person.name == "许国平")) == "13757527960"


def test_gender_contradicting_id_is_reported(session: Session, grid: Grid) -> None:
    row = [*GOOD[0][:1], "男", *GOOD[0][2:]]
    report = run(session, grid, xlsx([row]))
    assert only(report) == [(2, "gender")]


def test_formula_cells_use_cached_values_or_are_reported(session: Session, grid: Grid) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([*HEADER, "出生日期"])
    sheet.append(GOOD[0] + [None])
    sheet["D2"] = '=CONCATENATE("1375752","7960")'  # never calculated: no cached value
    sheet.append(GOOD[1] + [40678])  # a date that Excel kept as a serial number
    buffer = io.BytesIO()
    book.save(buffer)
    report = run(session, grid, buffer.getvalue())
    assert only(report) == [(2, "phone")]
    assert "公式" in report.errors[0].message
    # 40678 is 2011-05-15, the birth date inside the second row's ID number.
    assert report.valid == 1


def test_skip_invalid_imports_only_good_rows(session: Session, grid: Grid) -> None:
    bad = [*GOOD[1][:2], "350181201105152830", *GOOD[1][3:]]
    report = run(session, grid, xlsx([GOOD[0], bad]), dry_run=False)
    assert not report.written and people(session, grid) == 2
    report = run(session, grid, xlsx([GOOD[0], bad]), dry_run=False, skip_invalid=True)
    assert report.written and report.created == 1 and people(session, grid) == 3


def test_failure_in_the_middle_writes_nothing(
    session: Session, grid: Grid, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_execute = session.execute

    def failing_execute(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        if (
            getattr(statement, "is_dml", False)
            and getattr(statement, "table", None) is not None
            and statement.table.name == "person"
        ):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("disk full")
        return real_execute(statement, *args, **kwargs)

    many = [
        [f"测试{i}", "", "", "", "华润中央公园", "5", "2", f"{1000 + i}", ""] for i in range(2500)
    ]
    monkeypatch.setattr(session, "execute", failing_execute)
    with pytest.raises(RuntimeError):
        run(session, grid, xlsx(many), dry_run=False, create_missing=True)
    monkeypatch.undo()
    assert people(session, grid) == 2
    assert (
        session.scalar(select(func.count()).select_from(Household).where(Household.room == "1000"))
        == 0
    )


def test_vehicles_import(session: Session, grid: Grid) -> None:
    header = ["车牌号", "小区", "楼栋", "单元", "房号", "车主"]
    rows = [
        ["闽A·12345", "华润中央公园", "5", "1", "101", "林国平"],
        ["闽AD12345", "华润中央公园", "5", "1", "101", ""],
        ["闽AO1234", "华润中央公园", "5", "1", "101", ""],
    ]
    report = service.import_vehicles(
        session=session,
        actor=SYSTEM_ACTOR,
        community_id=grid.community.id,
        content=xlsx(rows, header=header),
        filename="车辆.xlsx",
        dry_run=False,
        skip_invalid=True,
    )
    assert only(report) == [(4, "plate")]
    assert "O" in report.errors[0].message
    plates = set(session.scalars(select(Vehicle.plate)))
    assert {"闽A12345", "闽AD12345"} <= plates


def test_cli_dry_run_json(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from fengchao import db, settings
    from fengchao.cli import app

    monkeypatch.setenv("FENGCHAO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    for cached in (settings.get_settings, db.get_engine, db.get_sessionmaker):
        cached.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["demo", "--no-serve"]).exit_code == 0
        sample = shared_data("registry", "居民信息登记表-示例.xlsx")
        result = runner.invoke(app, ["import", "residents", str(sample), "--dry-run", "--json"])
        payload = json.loads(result.stdout.strip().splitlines()[-1])
        assert set(payload) >= {"rows", "valid", "errors"}
        assert payload["rows"] == 36
        assert {"row": 9, "field": "phone"}.items() <= payload["errors"][1].items() or any(
            e["row"] == 9 and e["field"] == "phone" for e in payload["errors"]
        )
        assert result.exit_code == 1  # errors found
    finally:
        for cached in (settings.get_settings, db.get_engine, db.get_sessionmaker):
            cached.cache_clear()


def test_an_import_leaves_postgresql_with_statistics_of_what_it_wrote(
    session: Session, grid: Grid
) -> None:
    """Without them its planner took a community's 15,000 people for five rows, and a
    gate's lookup read them all for the minute before autovacuum came round."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite's planner needs no statistics")
    report = service.import_sheet(
        "residents", session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id,
        content=xlsx(GOOD), filename="居民.xlsx", dry_run=False,
    )  # fmt: skip
    assert not report.errors
    counted = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'person'"))
    assert counted is not None and counted >= people(session, grid)
