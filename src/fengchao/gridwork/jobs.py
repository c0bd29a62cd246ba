"""Scheduled work of grid work (run by `fengchao worker`, see
``notify.scheduler.SCHEDULED_JOBS``): escalating help requests nobody accepted in time, and
forgetting the public form's counters once their window is over, and (hourly) deleting
visits, finished requests and photos past their keeping time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from fengchao.db import finish, utcnow
from fengchao.gridwork import help as help_service
from fengchao.gridwork import retention, throttle

# Requests escalated per write transaction: each one writes its event and messages, so a
# backlog (a worker that was down) goes in short writes that visits can get in between.
ESCALATE_BATCH = 5  # about 7 ms each on SQLite: a batch holds the write lock ~35 ms


def escalate_job(*, session: Session, now: dt.datetime | None = None) -> str:
    """One pass: every overdue open request one level up the grid, committed a batch at a
    time (the worker commits the last); the form's finished counters forgotten."""
    now = now or utcnow()
    moved = 0
    while True:
        batch = help_service.escalate_due(session=session, now=now, limit=ESCALATE_BATCH)
        moved += batch
        if batch < ESCALATE_BATCH:
            break
        finish(session)
    purged = throttle.purge(session=session, now=now)
    return f"{moved} request(s) escalated, {purged} counter(s) purged"


def purge_job(*, session: Session, now: dt.datetime | None = None) -> str:
    """Visits, finished requests, resolved reports and photos past their keeping time."""
    gone = retention.purge(session=session, now=now)
    return ", ".join(f"{n} {kind}" for kind, n in gone.items()) + " purged"
