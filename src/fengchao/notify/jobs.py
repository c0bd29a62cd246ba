"""Scheduled work of the notify slice: removing notifications past their keeping time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.orm import Session

from fengchao.db import begin_write, utcnow
from fengchao.notify.models import DeliveryAttempt, Notification, WorkerLease
from fengchao.settings import get_settings


def purge_old_notifications(*, session: Session, now: dt.datetime | None = None) -> str:
    """Delete notifications older than ``notify.keep_days`` with their recipients, inbox
    entries, deliveries and attempts (the database cascades), test-message attempts of the
    same age, and worker leases that ended a day ago."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=get_settings().notify.keep_days)
    begin_write(session)
    gone = session.execute(delete(Notification).where(Notification.created_at < cutoff))
    session.execute(
        delete(DeliveryAttempt).where(
            DeliveryAttempt.delivery_id.is_(None), DeliveryAttempt.at < cutoff
        )
    )
    session.execute(delete(WorkerLease).where(WorkerLease.expires_at < now - dt.timedelta(days=1)))
    return f"{getattr(gone, 'rowcount', 0)} notifications removed"
