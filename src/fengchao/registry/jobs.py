"""Scheduled work of the registry — purging expired uploads — and, until `fengchao worker`
with durable jobs exists, the small periodic runner that the web process starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool

from fengchao.db import session_scope
from fengchao.registry import uploads
from fengchao.settings import get_settings

log = logging.getLogger(__name__)


def purge_uploads() -> int:
    """One purge of expired uploads, in its own short transaction."""
    with session_scope(write=True) as session:
        purged = uploads.purge_expired_uploads(session=session)
    if purged:
        log.info("purged %d expired upload(s)", purged)
    return purged


async def run_every(seconds: float, job: Callable[[], object]) -> None:
    """Call ``job`` in a worker thread every ``seconds``, for ever; a failed run is logged
    and the next one comes on time (a database that is briefly away must not end it)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(job)
        except Exception:
            log.exception("scheduled job %s failed", getattr(job, "__name__", job))


@asynccontextmanager
async def scheduled() -> AsyncIterator[None]:
    """While inside, the upload purge runs every ``purge_interval_seconds`` (the web
    process's lifespan enters this)."""
    interval = get_settings().imports.purge_interval_seconds
    task = asyncio.create_task(run_every(interval, purge_uploads)) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
