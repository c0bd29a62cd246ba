"""Helpers shared by the benchmark scripts: databases, peak memory, the JSON last line."""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine

from fengchao.testing import throwaway_database

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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
