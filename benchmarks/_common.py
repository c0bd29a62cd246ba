"""Helpers shared by the benchmark scripts: databases, peak memory, the JSON last line."""

from __future__ import annotations

import json
import resource
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine

from fengchao.db import make_engine
from fengchao.migrate import upgrade

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def database(kind: str, folder: Path) -> Iterator[Engine]:
    """A freshly migrated SQLite file or PostgreSQL schema, removed afterwards."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:6]}.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    schema = f"fc_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


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
