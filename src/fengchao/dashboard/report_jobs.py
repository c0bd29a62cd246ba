"""The scheduled daily report: after local midnight, each community's report of the day
that ended is announced to its group chats and community workers through the
notifications slice, with its headline figures and a link to the PDF and the workbook
(robots carry text and links, not files)."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.dashboard import report
from fengchao.dashboard.report_pdf import change, number
from fengchao.notify import service as notify
from fengchao.registry.models import Community
from fengchao.web.i18n import _

log = logging.getLogger(__name__)

KIND = "report.daily"


def report_key(community_id: int, day: dt.date) -> str:
    return f"{KIND}:{community_id}:{day.isoformat()}"


def summary(data: report.ReportData) -> str:
    """The chat message: each section's first figures with the change from the day before
    (counts only: nothing in it names a person)."""
    lines = [f"**{data.title}**"]
    for section in data.sections:
        shown = [
            f"{f.label} {number(f.today, f.unit)}{'' if f.unit == '%' else f.unit}"
            + (f"（{change(f)}）" if f.change is not None else "")
            for f in section.figures[:3]
        ]
        lines.append(f"{section.title}：" + "，".join(shown))
    return "\n".join(lines)


JOB = "dashboard.daily_report"


def daily_report_job(*, session: Session) -> str:
    """The scheduled job: the reports of the days that ended since its previous run. Its
    first run only arms it (a worker started in the afternoon posts no report of a day it
    did not see end); a worker that was down over midnight posts on its way back."""
    from fengchao.notify.scheduler import previous_run

    since = previous_run(session=session, name=JOB)
    if since is None:
        return "armed: the next day that ends is reported"
    return post_daily_reports(session=session, since=since)


def post_daily_reports(
    *, session: Session, now: dt.datetime | None = None, since: dt.datetime | None = None
) -> str:
    """For each community, queue the report of the local day before ``now`` once (the
    notification's key makes a second run a no-op); with ``since``, only where that day
    ended after ``since``."""
    now = now or dt.datetime.now(dt.UTC)
    posted = 0
    communities = list(session.scalars(select(Community).order_by(Community.id)))
    for community in communities:
        zone = ZoneInfo(community.timezone or "Asia/Shanghai")
        today = now.astimezone(zone).date()
        midnight = dt.datetime.combine(today, dt.time(), zone)
        if since is not None and since >= midnight:
            continue  # the day ended before the previous run, which dealt with it
        day = today - dt.timedelta(days=1)
        key = report_key(community.id, day)
        if notify.sent_before(session=session, key=key):
            continue
        with report.in_report_language():
            data = report.build_report_data(
                session, report.report_actor(community.id), community.id, day, now=now
            )
            title = data.title
            body = summary(data)
            link = f"/dashboard/report?date={day.isoformat()}&community={community.id}"
            body += "\n" + _("PDF 与 Excel 文件：见链接（登录后下载）")
        notify.send(
            session=session,
            community_id=community.id,
            kind=KIND,
            title=title,
            body=body,
            link=link,
            to=[
                notify.Recipient.group(ScopeLevel.community, community.id),
                notify.Recipient.at(Role.community_worker, ScopeLevel.community, community.id),
            ],
            key=key,
            source="dashboard",
            now=now,
        )
        posted += 1
    return f"{posted} daily reports posted"
