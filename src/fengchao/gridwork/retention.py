"""What grid work forgets and when (``gridwork`` settings): sweep visits and finished sweeps,
help requests some days after they were closed, resolved reports, and every report's photo
after a few weeks. Run by `fengchao purge` and the worker's hourly ``gridwork.purge``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from fengchao.db import begin_write, utcnow
from fengchao.gridwork.models import (
    HelpRequest,
    HelpStatus,
    ReportStatus,
    ResidentReport,
    Sweep,
    SweepTarget,
    SweepVisit,
)
from fengchao.settings import get_settings


def _count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def purge(
    *, session: Session, now: dt.datetime | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Delete what is past its keeping time in one write; with ``dry_run`` only count it.
    Returns counts by kind (``visits``, ``sweeps``, ``requests``, ``reports``, ``photos``).
    The caller commits."""
    now = now or utcnow()
    keep = get_settings().gridwork
    visit_cutoff = now - dt.timedelta(days=keep.visit_keep_days)
    closed_cutoff = now - dt.timedelta(days=keep.closed_keep_days)
    photo_cutoff = now - dt.timedelta(days=keep.photo_keep_days)
    # A sweep past its deadline goes with its checklist once its last visit is old too.
    recent_visit = (
        select(SweepTarget.id)
        .where(SweepTarget.sweep_id == Sweep.id, SweepTarget.last_visit_at >= visit_cutoff)
        .exists()
    )
    old_sweeps = select(Sweep.id).where(Sweep.deadline < visit_cutoff, ~recent_visit)
    old_visits = select(SweepVisit.id).where(
        or_(SweepVisit.recorded_at < visit_cutoff, SweepVisit.sweep_id.in_(old_sweeps))
    )
    old_requests = select(HelpRequest.id).where(
        HelpRequest.status.in_((HelpStatus.closed, HelpStatus.cancelled)),
        HelpRequest.closed_at < closed_cutoff,
    )
    old_reports = select(ResidentReport.id).where(
        ResidentReport.status == ReportStatus.resolved, ResidentReport.handled_at < closed_cutoff
    )
    old_photos = select(ResidentReport.id).where(
        ResidentReport.photo.is_not(None),
        ResidentReport.created_at < photo_cutoff,
        ResidentReport.id.not_in(old_reports),
    )
    if dry_run:
        queries = {
            "visits": old_visits,
            "sweeps": old_sweeps,
            "requests": old_requests,
            "reports": old_reports,
            "photos": old_photos,
        }
        return {kind: _count(session, query) for kind, query in queries.items()}
    begin_write(session)

    def gone(result: object) -> int:
        return int(getattr(result, "rowcount", 0) or 0)

    photos = gone(
        session.execute(
            update(ResidentReport)
            .where(ResidentReport.id.in_(old_photos))
            .values(photo=None)
            .execution_options(synchronize_session=False)
        )
    )
    reports = gone(
        session.execute(delete(ResidentReport).where(ResidentReport.id.in_(old_reports)))
    )
    # Events go with their request (ON DELETE CASCADE).
    requests = gone(session.execute(delete(HelpRequest).where(HelpRequest.id.in_(old_requests))))
    # A request raised from a visit outlives it; it only loses the link.
    visit_ids = list(session.scalars(old_visits))
    if visit_ids:
        session.execute(
            update(HelpRequest)
            .where(HelpRequest.visit_id.in_(visit_ids))
            .values(visit_id=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(SweepVisit).where(SweepVisit.id.in_(visit_ids)))
    sweep_ids = list(session.scalars(old_sweeps))
    if sweep_ids:
        session.execute(delete(SweepTarget).where(SweepTarget.sweep_id.in_(sweep_ids)))
        session.execute(delete(Sweep).where(Sweep.id.in_(sweep_ids)))
    return {
        "visits": len(visit_ids),
        "sweeps": len(sweep_ids),
        "requests": requests,
        "reports": reports,
        "photos": photos,
    }
