"""Finishing an import: the check page names every row and what will happen to it, the
error file is the sheet's own rows with their problems — fixed, it uploads again — and it
stays downloadable for a while after the import, which says what it skipped."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import openpyxl
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.auth.crypto import get_cipher
from fengchao.registry import uploads
from fengchao.registry.models import ImportUpload, Person
from tests.conftest import Browser, Grid, Live, Persona, build_grid, shared_data
from tests.registry.test_import import GOOD, HEADER, xlsx

SAMPLE_HEADER = [
    "序号", "姓名", "性别", "身份证号码", "联系电话", "小区", "楼栋", "单元", "房号",
    "与户主关系", "备注",
]  # fmt: skip


def check(browser: Browser | TestClient, content: bytes, **data: str) -> tuple[str, str]:
    """Upload a sheet on the wizard's first step: (the check page, the upload's token)."""
    kw = {"files": {"file": ("居民.xlsx", content)}, "data": data}
    page = browser.post("/registry/import", **kw)  # type: ignore[arg-type]
    assert page.status_code == 200, page.text  # type: ignore[attr-defined]
    found = re.search(r"/registry/import/([\w-]+)/(confirm|errors\.xlsx)", page.text)  # type: ignore[attr-defined]
    return page.text, found[1] if found else ""  # type: ignore[attr-defined]


def sheet_rows(content: bytes) -> list[list[object]]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]


def sample() -> bytes:
    return shared_data("registry", "居民信息登记表-示例.xlsx").read_bytes()


def test_check_page_names_each_problem_row_with_all_its_problems(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona
) -> None:
    page, _token = check(login_as(worker), sample(), create_missing="true")
    # Each row with problems by its row number and the name the sheet gives.
    for row, name in ((5, "许文彬"), (9, "黄婷婷"), (12, "吴志强")):
        assert re.search(rf"第 {row} 行</b>\s*<span class=\"row-name\">{name}</span>", page), name
    assert "有问题的行" in page and "下载需修改的行" in page
    # What confirming does, in words: 33 people are new, none registered yet.
    assert "确认导入：新增 33 人" in page
    assert "我知道有问题的 3 行会被跳过" in page


def test_check_page_lists_changes_and_does_not_offer_an_empty_import(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    _page, token = check(browser, xlsx(GOOD))
    assert browser.post(f"/registry/import/{token}/confirm").status_code == 200
    again, token = check(browser, xlsx(GOOD))
    assert "表格里的 2 人都已登记，信息没有变化，不需要导入" in again
    assert "/confirm" not in again and not token
    assert not session.scalars(select(ImportUpload).where(ImportUpload.imported_at.is_(None))).all()
    moved = [*GOOD[0][:3], "13900000000", *GOOD[0][4:]]
    page, token = check(browser, xlsx([moved, GOOD[1]]))
    assert "确认导入：更新 1 人，1 人无变化" in page
    assert "手机</span> 13757527960 → <b>13900000000</b>" in page
    assert "350181197310225607" not in page


def test_error_file_is_the_sheet_rows_with_a_problem_column(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    _page, token = check(browser, sample(), create_missing="true")
    download = browser.get(f"/registry/import/{token}/errors.xlsx")
    assert download.status_code == 200  # type: ignore[attr-defined]
    content = download.content  # type: ignore[attr-defined]
    rows = sheet_rows(content)
    assert rows[0] == [*SAMPLE_HEADER, "问题"]
    assert [r[:2] for r in rows[1:]] == [[3, "许文彬"], [7, "黄婷婷"], [10, "吴志强"]]
    # The cells as the sheet holds them: the ID Excel made a number stays that number.
    assert rows[1][3] == 3.50181201105152e17 and rows[2][4] == "1385901"
    assert rows[1][11].startswith("第 5 行：身份证号：身份证号被 Excel 存成了数字")
    assert rows[2][11] == "第 9 行：手机：手机号应为11位，这里是7位"
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.worksheets[0]["D2"].number_format == "@"  # retyped IDs stay text


def test_fixed_error_file_uploads_again_and_imports(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    _page, token = check(browser, sample(), create_missing="true")
    browser.post(f"/registry/import/{token}/confirm", data={"skip_invalid": "true"})
    errors = browser.get(f"/registry/import/{token}/errors.xlsx").content  # type: ignore[attr-defined]
    book = openpyxl.load_workbook(io.BytesIO(errors))
    sheet = book.worksheets[0]
    sheet["D2"] = "350181201105152831"
    sheet["E3"] = "13859010000"
    sheet["D4"] = "350181197910117802"
    fixed = io.BytesIO()
    book.save(fixed)
    page, token = check(browser, fixed.getvalue(), create_missing="true")
    assert "确认导入：新增 3 人" in page and "有问题的行</h2>" not in page
    done = browser.post(f"/registry/import/{token}/confirm")
    assert "导入完成" in done.text  # type: ignore[attr-defined]
    assert (
        session.scalar(
            select(Person.phone).where(Person.name == "黄婷婷", Person.id_last4 == "1361")
        )
        == "13859010000"
    )


def test_a_neutralised_cell_reads_back_as_written(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    # "+86 …" is written as "'+86 …" so that no spreadsheet runs it; read back, it is the
    # phone it was.
    row = [
        "许国平",
        "女",
        "350181197310225600",
        "+86 137 5752 7960",
        "华润中央公园",
        "5",
        "1",
        "102",
        "",
    ]
    browser = login_as(worker)
    _page, token = check(browser, xlsx([row]))
    rows = sheet_rows(browser.get(f"/registry/import/{token}/errors.xlsx").content)  # type: ignore[attr-defined]
    assert rows[1][3] == "'+86 137 5752 7960"
    book = openpyxl.load_workbook(
        io.BytesIO(browser.get(f"/registry/import/{token}/errors.xlsx").content)
    )  # type: ignore[attr-defined]
    book.worksheets[0]["C2"] = "350181197310225607"
    fixed = io.BytesIO()
    book.save(fixed)
    page, token = check(browser, fixed.getvalue())
    assert "确认导入：新增 1 人" in page
    browser.post(f"/registry/import/{token}/confirm")
    assert session.scalar(select(Person.phone).where(Person.name == "许国平")) == "13757527960"


def test_error_file_stays_after_the_import_sealed_and_goes_with_the_purge(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    _page, token = check(browser, sample(), create_missing="true")
    done = browser.post(f"/registry/import/{token}/confirm", data={"skip_invalid": "true"})
    assert "有问题的 3 行没有导入" in done.text  # type: ignore[attr-defined]
    assert f"/registry/import/{token}/errors.xlsx" in done.text  # type: ignore[attr-defined]
    kept = browser.get(f"/registry/import/{token}/errors.xlsx")
    assert kept.status_code == 200  # type: ignore[attr-defined]
    assert [r[1] for r in sheet_rows(kept.content)[1:]] == ["许文彬", "黄婷婷", "吴志强"]  # type: ignore[attr-defined]
    raw = bytes(
        session.execute(
            text("select error_file from import_upload where token = :t"), {"t": token}
        ).scalar_one()
    )
    assert b"PK\x03\x04" not in raw and "许文彬".encode() not in raw
    assert get_cipher().decrypt_bytes(raw, context=b"import_errors:" + token.encode())[:2] == b"PK"
    # A replayed confirm still points at it.
    replay = browser.post(f"/registry/import/{token}/confirm")
    assert "已经导入过" in replay.text and "errors.xlsx" in replay.text  # type: ignore[attr-defined]
    # After the time an unconfirmed sheet may wait, it is gone.
    row = session.scalars(select(ImportUpload).where(ImportUpload.token == token)).one()
    assert row.imported_at is not None
    row.imported_at = row.imported_at - uploads.keep() - dt.timedelta(minutes=1)
    session.flush()
    late = browser.get(f"/registry/import/{token}/errors.xlsx")
    assert late.status_code == 410 and "已经导入" in late.text  # type: ignore[attr-defined]
    assert uploads.purge_expired_uploads(session=session) == 1
    session.refresh(row)
    assert row.error_file is None and row.content == b""


def test_import_without_problems_keeps_no_error_file(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    _page, token = check(browser, xlsx(GOOD))
    done = browser.post(f"/registry/import/{token}/confirm")
    assert "没有导入的行" not in done.text  # type: ignore[attr-defined]
    row = session.scalars(select(ImportUpload).where(ImportUpload.token == token)).one()
    assert row.error_file is None
    assert browser.get(f"/registry/import/{token}/errors.xlsx").status_code == 410  # type: ignore[attr-defined]


def test_api_says_what_is_new_changed_and_skipped(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    bad = [*GOOD[1][:3], "12345", *GOOD[1][4:]]
    url = "/api/registry/import/residents"
    checked = browser.post(url, files={"file": ("a.xlsx", xlsx([GOOD[0], bad]))}).json()  # type: ignore[attr-defined]
    assert (checked["new"], checked["changed"], checked["problem_rows"]) == (1, 0, 1)
    assert checked["errors"][0] | {"message": ""} == {
        "row": 3,
        "field": "phone",
        "name": "许文彬",
        "message": "",
    }
    written = browser.post(
        url,
        params={"dry_run": "false", "skip_invalid": "true"},
        files={"file": ("a.xlsx", xlsx([GOOD[0], bad]))},
    ).json()  # type: ignore[attr-defined]
    assert written["written"] and written["created"] == 1 and written["skipped"] == 1


def test_vehicle_template_and_both_links_on_the_import_page(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    page = browser.get("/registry/import").text  # type: ignore[attr-defined]
    assert "/registry/import/template.xlsx" in page
    assert "/registry/import/vehicle-template.xlsx" in page
    template = browser.get("/registry/import/vehicle-template.xlsx")
    assert template.status_code == 200  # type: ignore[attr-defined]
    book = openpyxl.load_workbook(io.BytesIO(template.content))  # type: ignore[attr-defined]
    assert book.sheetnames == ["车辆信息", "填写说明"]
    assert [c.value for c in book["车辆信息"][1]] == [
        "车牌号", "小区", "楼栋", "单元", "房号", "车主", "备注",
    ]  # fmt: skip
    notes = " ".join(str(r[0]) for r in book["填写说明"].iter_rows(values_only=True))
    assert "必填列：车牌号和地址" in notes and "选填列：小区、车主、备注" in notes
    # The template as downloaded is recognised; its example row is refused, not imported.
    report = browser.post(
        "/api/registry/import/vehicles",
        params={"dry_run": "false", "skip_invalid": "true"},
        files={"file": ("车辆.xlsx", template.content)},  # type: ignore[attr-defined]
    ).json()  # type: ignore[attr-defined]
    assert report["rows"] == 1 and report["skipped"] == 1 and report["created"] == 0
    assert "示例行" in report["errors"][0]["message"]


def test_resident_template_notes_say_one_thing_about_each_column() -> None:
    from fengchao.registry import exports

    book = openpyxl.load_workbook(io.BytesIO(exports.resident_template_xlsx()))
    notes = [str(r[0]) for r in book["填写说明"].iter_rows(values_only=True)]
    required = next(n for n in notes if n.startswith("必填列"))
    optional = next(n for n in notes if n.startswith("选填列"))
    assert "身份证号" not in required and "身份证号" in optional
    assert any("身份证号可以不填" in n and "无身份证号" in n for n in notes)
    headers = [c.value for c in book["居民信息"][1]]
    for column in headers:
        assert column in required + optional or column in ("楼栋", "单元", "房号"), column


def test_cli_json_keeps_its_keys_and_writes_the_error_file(
    cli_engine: Engine, tmp_path: Path
) -> None:
    from fengchao.cli import app

    with Session(cli_engine) as session:
        build_grid(session)
        session.commit()
    bad = [*GOOD[1][:3], "12345", *GOOD[1][4:]]
    sheet = tmp_path / "居民.xlsx"
    sheet.write_bytes(xlsx([GOOD[0], bad]))
    out = tmp_path / "fix.xlsx"
    args = ["import", "residents", str(sheet), "--dry-run", "--json", "--errors-file", str(out)]
    result = CliRunner().invoke(app, args)
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"rows", "valid", "errors", "created", "updated", "unchanged", "written"} <= set(payload)
    assert (payload["new"], payload["changed"], payload["problem_rows"]) == (1, 0, 1)
    assert {"row": 3, "field": "phone"}.items() <= payload["errors"][0].items()
    assert sheet_rows(out.read_bytes())[0] == [*HEADER, "问题"]
    result = CliRunner().invoke(app, ["import", "residents", str(sheet), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 row(s) with problems" in " ".join(result.output.split())


def test_error_file_after_import_as_production_runs_it(live: Live) -> None:
    """Served without overrides: the error file is committed with the import and read by
    a later request."""
    browser = live.client("worker")
    form = browser.get("/registry/import").text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    moved = [["王芳", "", "", "", "华润中央公园", "5", "2", "102", ""]]
    bad = [["李四", "", "", "12345", "华润中央公园", "5", "2", "102", ""]]
    page = browser.post(
        "/registry/import",
        files={"file": ("居民.xlsx", xlsx(moved + bad))},
        headers={"X-CSRF-Token": csrf},
    )
    token = re.search(r"/registry/import/([\w-]+)/confirm", page.text)
    assert token, page.text
    done = browser.post(
        f"/registry/import/{token[1]}/confirm",
        data={"skip_invalid": "true"},
        headers={"X-CSRF-Token": csrf},
    )
    assert "有问题的 1 行没有导入" in done.text
    errors = browser.get(f"/registry/import/{token[1]}/errors.xlsx")
    assert errors.status_code == 200
    assert [r[0] for r in sheet_rows(errors.content)] == ["姓名", "李四"]
