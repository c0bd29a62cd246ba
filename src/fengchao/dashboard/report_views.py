"""The daily report from a page: ``GET /dashboard/report?date=&format=pdf|xlsx`` answers
the file for download (community workers and administrators, within their scope)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from fengchao.auth.service import Permission, require
from fengchao.dashboard import report
from fengchao.web.deps import CurrentActor, DbSession, require_csrf

router = APIRouter(
    prefix="/dashboard", dependencies=[Depends(require_csrf)], include_in_schema=False
)

MEDIA = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/report")
def report_file(
    session: DbSession,
    actor: CurrentActor,
    date: Annotated[str | None, Query(max_length=20)] = None,
    format: Annotated[Literal["pdf", "xlsx"], Query()] = "pdf",
    community: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """The report of ``date`` (default: yesterday, local) as a PDF or a workbook."""
    require(actor, Permission.report_daily)
    found = report.community_for(session, actor, community)
    if date:
        day = report.parse_day(date)
    else:
        zone = ZoneInfo(found.timezone or "Asia/Shanghai")
        day = dt.datetime.now(zone).date() - dt.timedelta(days=1)
    with report.in_report_language():
        data = report.build_report_data(session, actor, found.id, day)
        if format == "pdf":
            from fengchao.dashboard.report_pdf import pdf_report

            content = pdf_report(data)
        else:
            from fengchao.dashboard.report_xlsx import xlsx_report

            content = xlsx_report(data)
    name = f"{found.name}-{report.file_stem(data)}.{format}"
    return Response(
        content,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )
