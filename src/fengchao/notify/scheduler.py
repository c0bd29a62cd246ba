"""Scheduled jobs: the registry of periodic work (one line a job), and leasing a due job
so that, of all the workers, exactly one runs it; a job whose worker was killed runs again
once its lease has run out.

A job is a function ``job(*, session) -> object`` (what it returns is shown on the outbox
page). It gets a session of its own; it calls ``db.begin_write(session)`` before changing
rows, and the worker commits when it returns (or rolls back when it raises).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fengchao.db import begin_write, finish
from fengchao.notify.models import ScheduledJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """A periodic job: ``target`` is "module:function", run every ``every`` seconds; a
    worker owns a run for ``lease`` seconds (longer than the job ever takes)."""

    target: str
    every: float
    lease: float = 600.0


# Every periodic job of the platform. Registering one is one line; `fengchao worker` (and
# the worker thread of `fengchao demo` and `serve --with-worker`) runs them.
SCHEDULED_JOBS: dict[str, JobSpec] = {
    "notify.purge": JobSpec("fengchao.notify.jobs:purge_old_notifications", every=3600),
    # Unconfirmed uploads hold a whole sheet of personal data: gone within minutes of expiry.
    "registry.purge_uploads": JobSpec("fengchao.registry.jobs:purge_uploads_job", every=300),
    "duty.late_check_ins": JobSpec("fengchao.duty.service:late_check_in_alerts", every=300),
    "gridwork.escalate": JobSpec("fengchao.gridwork.jobs:escalate_job", every=60),
    "access.purge_events": JobSpec("fengchao.access.jobs:purge_events_job", every=3600),
    # Yesterday's report to each community's group, soon after its local midnight.
    "dashboard.daily_report": JobSpec("fengchao.dashboard.report_jobs:daily_report_job", every=900),
    "gridwork.purge": JobSpec("fengchao.gridwork.jobs:purge_job", every=3600),
}


def job_function(spec: JobSpec) -> Callable[..., Any]:
    module_name, _sep, attribute = spec.target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    return function


def previous_run(*, session: Session, name: str) -> dt.datetime | None:
    """When the job ``name`` last finished a run (None before its first): a job that acts
    on what happened between two runs (a day that ended) reads it."""
    return session.scalar(select(ScheduledJob.last_finished_at).where(ScheduledJob.name == name))


def check_jobs(jobs: Mapping[str, JobSpec]) -> None:
    """Import every job's function: a misspelt target fails when the worker starts, not
    an hour later."""
    for name, spec in jobs.items():
        try:
            job_function(spec)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"scheduled job {name!r}: cannot load {spec.target!r}: {exc}") from exc


def ensure_jobs(*, session: Session, jobs: Mapping[str, JobSpec], now: dt.datetime) -> None:
    """A row for every registered job (a new one is due at once); intervals follow the
    registry. The caller commits."""
    begin_write(session)
    rows = {row.name: row for row in session.scalars(select(ScheduledJob))}
    for name, spec in jobs.items():
        row = rows.get(name)
        if row is not None:
            row.every_seconds = spec.every
            continue
        try:
            with session.begin_nested():
                session.add(ScheduledJob(name=name, every_seconds=spec.every, next_run_at=now))
        except IntegrityError:
            pass  # another worker added it meanwhile
    session.flush()


def claim_job(
    *, session: Session, jobs: Mapping[str, JobSpec], owner: str, now: dt.datetime
) -> str | None:
    """Lease one due job (none leased by a live worker) and return its name, or None.
    ``SKIP LOCKED`` on PostgreSQL: a job another worker is claiming is passed over. The
    caller commits."""
    due = select(ScheduledJob.name).where(
        ScheduledJob.name.in_(list(jobs)),
        ScheduledJob.next_run_at <= now,
        or_(ScheduledJob.lease_until.is_(None), ScheduledJob.lease_until < now),
    )
    if session.scalar(due.limit(1)) is None:  # nothing due: no write lock taken
        return None
    begin_write(session)
    row = session.scalars(
        select(ScheduledJob)
        .where(
            ScheduledJob.name.in_(list(jobs)),
            ScheduledJob.next_run_at <= now,
            or_(ScheduledJob.lease_until.is_(None), ScheduledJob.lease_until < now),
        )
        .order_by(ScheduledJob.next_run_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    row.lease_owner = owner
    row.lease_until = now + dt.timedelta(seconds=jobs[row.name].lease)
    row.last_started_at = now
    session.flush()
    return row.name


def finish_job(
    *,
    session: Session,
    name: str,
    owner: str,
    ok: bool,
    result: str,
    every: float,
    now: dt.datetime,
) -> bool:
    """Record a run and set the next one; False when the lease had been lost meanwhile
    (the run is still counted). The caller commits."""
    begin_write(session)
    row = session.get(ScheduledJob, name, with_for_update=True)
    if row is None:
        return False
    row.runs += 1
    row.failures += 0 if ok else 1
    row.last_ok, row.last_result = ok, result[:300]
    row.last_finished_at = now
    if row.lease_owner != owner:
        return False
    row.lease_owner = row.lease_until = None
    row.next_run_at = now + dt.timedelta(seconds=every)
    session.flush()
    return True


def run_job(spec: JobSpec, sessions: sessionmaker[Session]) -> tuple[bool, str]:
    """Run one job in a session of its own; (whether it succeeded, what it returned or
    the error)."""
    session = sessions()
    try:
        result = job_function(spec)(session=session)
        finish(session)
        return True, "" if result is None else str(result)
    except Exception as exc:
        session.rollback()
        log.exception("scheduled job %s failed", spec.target)
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        session.close()
