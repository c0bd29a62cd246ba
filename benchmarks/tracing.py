"""Contact tracing on a real-sized record: one case's contacts, and 100 cases on an outbreak
day, with the reference community (15,000 people) and a month of gate passages.

    python benchmarks/tracing.py            # 10 million events
    python benchmarks/tracing.py --quick    # 1 million events
    python benchmarks/tracing.py --keep DIR # build the data once, in DIR (SQLite) and the
                                            # PostgreSQL database fengchao_bench_N; reuse it

Each case: a random resident, a 14-day lookback, the default rules (household, co-passages
within ±5 minutes at the same gate, the building, household links of close contacts).
Prints a table per database and, as the last line, one JSON object; the top-level figures
are the slower database's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, make_url, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PG_URL, database, emit, postgres_available

from fengchao.access.models import AccessEvent
from fengchao.db import make_engine
from fengchao.migrate import upgrade
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Household, Person
from fengchao.tracing import service
from fengchao.tracing.contacts import Window

GATES = 8
BATCH = 20_000


COLUMNS = (
    "community_id", "compound_id", "gate_id", "direction", "method", "decision", "reasons",
    "person_id", "household_id", "building_id", "masked", "alert_level", "occurred_at",
    "server_time", "late", "clock_off",
)  # fmt: skip


def fill(session: Session, events: int, seed: int) -> tuple[int, list[int], dt.datetime]:
    """The demo community and ``events`` allowed or refused passages over 30 days, written
    in time order as gates write them. The access record's indexes are dropped while the
    rows go in and built again after (as a bulk load is done), rows are written through
    the driver (SQLite: ``executemany``; PostgreSQL: ``COPY``)."""
    build_demo(session)
    session.commit()
    people = session.execute(
        select(Person.id, Person.household_id, Household.building_id, Person.community_id).join(
            Household, Household.id == Person.household_id
        )
    ).all()
    community_id = people[0][3]
    rng = random.Random(seed)
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = end - dt.timedelta(days=30)
    span = int((end - start).total_seconds())
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    raw = connection.connection.driver_connection
    indexes = list(AccessEvent.__table__.indexes)  # type: ignore[attr-defined]
    for index in indexes:
        index.drop(connection)
    if sqlite:
        raw.execute("PRAGMA cache_size = -200000")  # type: ignore[union-attr]
        marks = ", ".join("?" for _ in COLUMNS)
        statement = f"INSERT INTO access_event ({', '.join(COLUMNS)}) VALUES ({marks})"
    batches = max(1, events // BATCH)
    written = 0
    for batch in range(batches):
        count = events // batches + (1 if batch < events % batches else 0)
        low = span * batch // batches
        high = span * (batch + 1) // batches
        rows = []
        for second in sorted(rng.randrange(low, high) for _ in range(count)):
            person, household, building, _c = people[rng.randrange(len(people))]
            at = start + dt.timedelta(seconds=second)
            when: object = f"{at:%Y-%m-%d %H:%M:%S}.000000" if sqlite else at
            rows.append(
                (
                    community_id, 1, 1 + rng.randrange(GATES),
                    "in" if rng.random() < 0.5 else "out", "face",
                    "allow" if rng.random() < 0.97 else "deny", "[]",
                    person, household, building, False, "normal", when, when, False, False,
                )
            )  # fmt: skip
        if sqlite:
            raw.executemany(statement, rows)  # type: ignore[union-attr]
        else:
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                names = ", ".join(COLUMNS)
                with cursor.copy(f"COPY access_event ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        written += len(rows)
        print(f"  {written:,} events", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    for index in indexes:
        index.create(connection)
    session.commit()
    return community_id, sorted(p[0] for p in people), end


def stored(session: Session) -> tuple[int, list[int], dt.datetime] | None:
    """What an earlier run with ``--keep`` stored (None when the database is empty)."""
    end = session.scalar(select(func.max(AccessEvent.occurred_at)))
    if end is None:
        return None
    people = session.execute(
        select(Person.id, Person.community_id)
        .where(Person.household_id.is_not(None))
        .order_by(Person.id)
    ).all()
    return people[0][1], [p[0] for p in people], end.replace(microsecond=0)


@contextmanager
def kept_database(kind: str, folder: Path, events: int) -> Iterator[Engine]:
    """A database that outlives the run, migrated when new: a SQLite file in ``folder``,
    or a PostgreSQL database of its own (created when missing)."""
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{folder / f'tracing-{events}.db'}")
    else:
        name = f"fengchao_bench_{events}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).scalar():
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        engine = create_engine(make_url(PG_URL).set(database=name))
    try:
        upgrade(engine, "head")
        yield engine
    finally:
        engine.dispose()


def run(kind: str, events: int, cases: int, seed: int, keep: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        opened = kept_database(kind, keep, events) if keep else database(kind, Path(folder))
        with opened as engine:
            return measure(engine, events, cases, seed)


def measure(engine: Engine, events: int, cases: int, seed: int) -> dict[str, float]:
    started = time.perf_counter()
    with Session(engine) as session:
        kept = stored(session)
    if kept is None:
        with Session(engine) as session:
            community_id, people, end = fill(session, events, seed)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # fresh statistics, as a running system has
            conn.commit()
    else:
        community_id, people, end = kept
    load_s = time.perf_counter() - started
    rng = random.Random(seed + 1)
    window = Window(end - dt.timedelta(days=14), end)
    timings, cpu, contacts = [], [], []
    with Session(engine) as session:
        for person in rng.sample(people, cases):
            t0, c0 = time.perf_counter(), time.process_time()
            found = service.trace(
                session, person_id=person, community_id=community_id, window=window
            )
            timings.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            contacts.append(len(found.contacts))
        session.rollback()
    batch = rng.sample(people, 100)
    t0, c0 = time.perf_counter(), time.process_time()
    with Session(engine) as session:
        for person in batch:
            service.trace(session, person_id=person, community_id=community_id, window=window)
    hundred_s = time.perf_counter() - t0
    hundred_cpu_s = time.process_time() - c0
    timings.sort()
    cpu.sort()
    return {
        # This process's CPU time per case (the database server's, for PostgreSQL, is not
        # in it): what a case costs when the machine is shared and wall time is not.
        "cpu_p50_ms": round(statistics.median(cpu), 1),
        "cpu_p95_ms": round(cpu[int(0.95 * (len(cpu) - 1))], 1),
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
        "max_ms": round(timings[-1], 1),
        "contacts_median": statistics.median(contacts),
        "cases_100_seconds": round(hundred_s, 2),
        "cases_100_cpu_seconds": round(hundred_cpu_s, 2),
        "load_seconds": round(load_s, 1),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 million events")
    parser.add_argument("--events", type=int, help="events to store (overrides the size)")
    parser.add_argument("--cases", type=int, default=40, help="cases timed one by one")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--keep", type=Path, help="keep the data (SQLite files here) for reuse")
    args = parser.parse_args()
    events = args.events or (1_000_000 if args.quick else 10_000_000)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL is not reachable: measuring SQLite only", file=sys.stderr)
        kinds = [k for k in kinds if k != "postgresql"]
    by_database = {}
    for kind in kinds:
        print(f"{kind}: storing {events:,} events …", file=sys.stderr)
        by_database[kind] = run(kind, events, args.cases, seed=20221111, keep=args.keep)
    header = ("database", "p50 ms", "p95 ms", "max ms", "contacts", "100 cases s")
    print(f"{header[0]:<12}" + "".join(f"{h:>12}" for h in header[1:]))
    for kind, f in by_database.items():
        cells = (f["p50_ms"], f["p95_ms"], f["max_ms"], f["contacts_median"])
        print(f"{kind:<12}" + "".join(f"{c:>12}" for c in (*cells, f["cases_100_seconds"])))
    slower = max(by_database.values(), key=lambda f: f["p95_ms"])
    emit(
        {
            "events": events,
            "people": 15665,
            "p50_ms": slower["p50_ms"],
            "p95_ms": slower["p95_ms"],
            "cases_100_seconds": max(f["cases_100_seconds"] for f in by_database.values()),
            "by_database": by_database,
        }
    )


if __name__ == "__main__":
    main()
