"""A job for the scheduler tests: records when it ran, in which thread, taking a while."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session

RUNS: list[tuple[float, float, str]] = []
_LOCK = threading.Lock()


def record_run(*, session: Session) -> str:
    started = time.monotonic()
    time.sleep(0.25)
    with _LOCK:
        RUNS.append((started, time.monotonic(), threading.current_thread().name))
    return "recorded"


def fail(*, session: Session) -> None:
    raise RuntimeError("the job's own error")
