"""Scheduled work of the registry: purging expired uploads (run by `fengchao worker`, see
``notify.scheduler.SCHEDULED_JOBS``, and by `fengchao purge` for cron)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from fengchao.db import begin_write, session_scope
from fengchao.registry import uploads

log = logging.getLogger(__name__)


def purge_uploads_job(*, session: Session) -> int:
    """One purge of expired uploads (the worker commits)."""
    begin_write(session)
    purged = uploads.purge_expired_uploads(session=session)
    if purged:
        log.info("purged %d expired upload(s)", purged)
    return purged


def purge_uploads() -> int:
    """The same, in its own short transaction (the command line)."""
    with session_scope(write=True) as session:
        return purge_uploads_job(session=session)
