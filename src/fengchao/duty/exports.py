"""Exports of duty: the week's roster as XLSX with a sheet per post (the way shift leads
print it) and a volunteer's shifts as an iCalendar file for their phone's calendar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from icalendar import Calendar, Event

from fengchao.duty.models import Volunteer
from fengchao.duty.service import RosterView, ShiftView, hole_text
from fengchao.tabular import Sheet, xlsx_bytes
from fengchao.web.i18n import _

WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def roster_xlsx(view: RosterView) -> bytes:
    """One sheet per post: a row per shift with its lead, people and any hole."""
    sheets = []
    used: set[str] = set()
    for post in view.posts:
        rows = []
        for day in view.days:
            for cell in view.cells.get((post.id, day), []):
                rows.append(
                    [
                        day.isoformat(),
                        _(WEEKDAYS[day.weekday()]),
                        cell.shift.name,
                        f"{cell.start:%H:%M}–{cell.end:%H:%M}",
                        cell.lead.name if cell.lead else "",
                        "、".join(v.name for v in cell.people),
                        cell.shift.min_people,
                        cell.missing,
                        hole_text(cell.shift.hole) if cell.missing else "",
                    ]
                )
        # Sheet titles: at most 31 characters, unique, none of []:*?/\
        title = "".join(c for c in post.name if c not in "[]:*?/\\")[:28] or f"post{post.id}"
        while title in used:
            title = f"{title[:25]}-{post.id}"
        used.add(title)
        sheets.append(
            Sheet(
                title=title,
                header=[
                    _("日期"),
                    _("星期"),
                    _("班次"),
                    _("时间"),
                    _("带班"),
                    _("值班人员"),
                    _("需要人数"),
                    _("缺口"),
                    _("缺口原因"),
                ],
                rows=rows,
                widths={"A": 12, "D": 13, "F": 30, "I": 40},
            )
        )
    if not sheets:
        sheets.append(Sheet(title=_("排班"), header=[_("本周还没有岗位")]))
    return xlsx_bytes(sheets)


def volunteer_ics(volunteer: Volunteer, shifts: Sequence[ShiftView]) -> bytes:
    """The volunteer's shifts as VEVENTs (local times with the community's zone)."""
    calendar = Calendar()
    calendar.add("prodid", "-//Fengchao//duty//ZH")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{volunteer.name} 值班")
    for view in shifts:
        event = Event()
        event.add("uid", f"duty-shift-{view.shift.id}-volunteer-{volunteer.id}@fengchao")
        event.add("summary", f"{view.shift.post.name} {view.shift.name}")
        event.add("dtstart", view.shift.starts_at.astimezone(dt.UTC))
        event.add("dtend", view.shift.ends_at.astimezone(dt.UTC))
        event.add("dtstamp", dt.datetime.now(dt.UTC))
        if view.shift.post.place:
            event.add("location", view.shift.post.place)
        calendar.add_component(event)
    return bytes(calendar.to_ical())
