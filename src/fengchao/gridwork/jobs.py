"""Scheduled work of grid work (run by `fengchao worker`, see
``notify.scheduler.SCHEDULED_JOBS``): escalating help requests nobody accepted in time, and
forgetting the public form's counters once their window is over, and (hourly) deleting
visits, finished requests and photos past their keeping time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from fengchao.db import begin_write, utcnow
from fengchao.gridwork import help as help_service
from fengchao.gridwork import retention, throttle


def escalate_job(*, session: Session, now: dt.datetime | None = None) -> str:
    """One pass: every overdue open request one level up the grid (the worker commits)."""
    now = now or utcnow()
    begin_write(session)
    purged = throttle.purge(session=session, now=now)
    moved = help_service.escalate_due(session=session, now=now)
    return f"{moved} request(s) escalated, {purged} counter(s) purged"


def purge_job(*, session: Session, now: dt.datetime | None = None) -> str:
    """Visits, finished requests, resolved reports and photos past their keeping time."""
    gone = retention.purge(session=session, now=now)
    return ", ".join(f"{n} {kind}" for kind, n in gone.items()) + " purged"
