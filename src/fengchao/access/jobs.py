"""Scheduled work of the access slice: access events past their keeping time deleted."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fengchao.access.models import AccessEvent
from fengchao.db import begin_write
from fengchao.settings import get_settings

log = logging.getLogger(__name__)
BATCH = 20_000


def purge_events_job(*, session: Session) -> int:
    """Delete up to one batch of events older than ``access.event_keep_days`` (by server
    time) in the worker's transaction; a backlog goes at the next hourly runs, so no run
    holds the write lock for long."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=get_settings().access.event_keep_days)
    begin_write(session)
    ids = list(
        session.scalars(select(AccessEvent.id).where(AccessEvent.server_time < cutoff).limit(BATCH))
    )
    if ids:
        session.execute(delete(AccessEvent).where(AccessEvent.id.in_(ids)))
        log.info("purged %d access event(s) past their keeping time", len(ids))
    return len(ids)
