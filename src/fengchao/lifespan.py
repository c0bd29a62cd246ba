"""The web process's start and stop: the start-up heap is frozen out of the garbage
collector's way, and the face galleries are built in the background. (Periodic work runs
in `fengchao worker`, or its thread beside the server with `serve --with-worker` and
`demo`.)"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fengchao.db import get_sessionmaker
from fengchao.settings import get_settings


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    # Everything loaded at start (framework, models, templates) lives as long as the
    # process, yet each full collection walks it while every thread waits. During an
    # import, collections took 70-80 ms, and /healthz with every other request waited for
    # them; with the start-up heap frozen they take a few ms (benchmarks/import.py).
    gc.freeze()
    if get_settings().env != "test":  # tests build galleries where they need them
        from fengchao.access.faces import start_warming

        start_warming(getattr(_app.state, "sessionmaker", None) or get_sessionmaker())
    try:
        yield
    finally:
        gc.unfreeze()  # collectable again, for processes that build many apps (tests)
