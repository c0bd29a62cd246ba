"""``fengchao report daily``: the daily report of a community as one XLSX and one PDF."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from fengchao.auth.service import Refusal
from fengchao.dashboard import report
from fengchao.db import get_engine, session_scope
from fengchao.migrate import upgrade
from fengchao.registry.models import Community

report_app = typer.Typer(help="Reports (日报).", no_args_is_help=True)
errors = Console(stderr=True)


def write_files(data: report.ReportData, out: Path) -> tuple[Path, Path]:
    """Write ``data`` as ``daily-report-DAY.xlsx`` and ``.pdf`` into ``out``."""
    from fengchao.dashboard.report_pdf import write_pdf
    from fengchao.dashboard.report_xlsx import write_xlsx

    stem = report.file_stem(data)
    return write_xlsx(data, out / f"{stem}.xlsx"), write_pdf(data, out / f"{stem}.pdf")


@report_app.command("daily")
def daily(
    date: Annotated[str, typer.Option("--date", help="The local day, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the two files into.")],
    community: Annotated[
        str | None,
        typer.Option(help="Community name or id (needed when the database holds several)."),
    ] = None,
) -> None:
    """Write the daily report (XLSX with a sheet per section, PDF with the charts) into OUT
    and print the two paths."""
    try:
        day = report.parse_day(date)
    except Refusal as refused:
        errors.print(f"[red]--date: {refused.message}[/red]")
        raise typer.Exit(2) from None
    if out.exists() and not out.is_dir():
        errors.print(f"[red]--out: {out} is not a folder[/red]")
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    upgrade(get_engine())
    with session_scope() as session:
        query = select(Community).order_by(Community.id)
        if community and community.isdigit():
            query = query.where(Community.id == int(community))
        elif community:
            query = query.where(Community.name == community)
        found = list(session.scalars(query.limit(2)))
        if not found:
            where = f" named {community!r}" if community else ""
            errors.print(f"[red]--community: no community{where} in the database[/red]")
            raise typer.Exit(2)
        if len(found) > 1 and not community:
            errors.print("[red]--community: the database holds several; name one[/red]")
            raise typer.Exit(2)
        started = dt.datetime.now(dt.UTC)
        data = report.build_report_data(
            session, report.report_actor(found[0].id), found[0].id, day, now=started
        )
        xlsx, pdf = write_files(data, out)
    print(xlsx)
    print(pdf)
