"""Helpers shared by the benchmark scripts: databases, peak memory, the JSON last line."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine

from fengchao.testing import throwaway_database

# FENGCHAO_BENCH_POSTGRES_URL points the benchmarks at another database (one's own on a
# shared machine); each run still makes and drops a schema of its own in it.
PG_URL = os.environ.get(
    "FENGCHAO_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def database(kind: str, folder: Path) -> Iterator[Engine]:
    """A freshly migrated "sqlite" file or "postgresql" schema, removed afterwards."""
    with throwaway_database("sqlite" if kind == "sqlite" else PG_URL, folder) as engine:
        yield engine


def postgres_available() -> bool:
    try:
        with create_engine(PG_URL).connect() as conn:
            conn.exec_driver_sql("select 1")
        return True
    except Exception:
        return False


def emit(figures: dict[str, object]) -> None:
    """The last line of every benchmark: one JSON object with every figure."""
    sys.stdout.write(json.dumps(figures, ensure_ascii=False) + "\n")


def throughput(
    work: Callable[[Any], object], items: list[Any], workers: int, seconds: float
) -> float:
    """Items per second through ``work`` in a pool of worker processes (one per core)."""
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(work, items[:workers])  # load the models in every worker first
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += len(pool.map(work, items, chunksize=1))
        return done / (time.perf_counter() - start)
