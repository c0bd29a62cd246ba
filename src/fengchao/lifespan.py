"""The web process's start and stop: the start-up heap is frozen out of the garbage
collector's way, and the periodic jobs run (until `fengchao worker` exists)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fengchao.registry import jobs as registry_jobs


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    # Everything loaded at start (framework, models, templates) lives as long as the
    # process, yet each full collection walks it while every thread waits. During an
    # import, collections took 70-80 ms, and /healthz with every other request waited for
    # them; with the start-up heap frozen they take a few ms (benchmarks/import.py).
    gc.freeze()
    try:
        async with registry_jobs.scheduled():
            yield
    finally:
        gc.unfreeze()  # collectable again, for processes that build many apps (tests)
