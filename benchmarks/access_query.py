"""Reading the access record with many events stored: one person's 14-day timeline and one
gate's busiest hour of a day (goal ≤ 100 ms each), on SQLite and PostgreSQL, through the
same service functions the pages and the API use (scope filter included).

10 million events (the --quick run: 1 million) over 60 days, 12 gates, 15,000 people.

    python benchmarks/access_query.py [--quick] [--events N] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import database, emit, postgres_available
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from fengchao.access import records
from fengchao.access import service as access
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, Actor, GridScope
from fengchao.registry.models import Community, Compound, Street

GATES = 12
PEOPLE = 15_000
DAYS = 60
END = dt.datetime(2026, 11, 29, 16, 0, tzinfo=dt.UTC)  # midnight in Shanghai
COLUMNS = (
    "community_id", "compound_id", "gate_id", "direction", "method", "decision", "reasons",
    "person_id", "household_id", "building_id", "masked", "alert_level", "occurred_at",
    "server_time", "late", "clock_off",
)  # fmt: skip


def grid(engine: Engine) -> tuple[int, list[int]]:
    with Session(engine, expire_on_commit=False) as session:
        street = Street(name="宏路街道")
        session.add(street)
        session.flush()
        community = Community(street_id=street.id, name="宏侨社区")
        session.add(community)
        session.flush()
        compound = Compound(community_id=community.id, name="华润中央公园")
        session.add(compound)
        session.flush()
        gates = [
            access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=compound.id,
                               name=f"门{i}", kind="both").id
            for i in range(GATES)
        ]  # fmt: skip
        session.commit()
        return community.id, gates


def rows(count: int, community_id: int, gates: list[int], seed: int = 7):  # type: ignore[no-untyped-def]
    """Events in time order, busier by day than by night, a few gates busier than others."""
    rng = random.Random(seed)
    span = DAYS * 86400
    start = END - dt.timedelta(days=DAYS)
    weights = [1 + 3 * (i < 3) for i in range(len(gates))]
    step = span / count
    for n in range(count):
        second = n * step
        moment = start + dt.timedelta(seconds=second)
        person = rng.randrange(1, PEOPLE + 1)
        yield (
            community_id, 1, rng.choices(gates, weights)[0], rng.choice(("in", "out")),
            "face", "allow" if rng.random() < 0.95 else "deny", '["resident"]', person,
            person // 3 + 1, person // 350 + 1, False, "normal", moment, moment, False, False,
        )  # fmt: skip


def load_sqlite(engine: Engine, count: int, community_id: int, gates: list[int]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        marks = ",".join("?" * len(COLUMNS))
        sql = f"INSERT INTO access_event ({','.join(COLUMNS)}) VALUES ({marks})"
        batch = []
        for row in rows(count, community_id, gates):
            r = list(row)
            # SQLAlchemy's SQLite storage format for a UTC timestamp.
            r[12] = r[13] = row[12].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            batch.append(r)
            if len(batch) == 50_000:
                cursor.executemany(sql, batch)
                batch.clear()
        cursor.executemany(sql, batch)
        cursor.execute("COMMIT")
        cursor.execute("ANALYZE")
    finally:
        raw.close()


def load_postgres(engine: Engine, count: int, community_id: int, gates: list[int]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY access_event ({','.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            buffer = io.StringIO()
            for n, row in enumerate(rows(count, community_id, gates), start=1):
                r = list(row)
                r[12] = r[13] = row[12].isoformat()
                r[10] = r[14] = r[15] = "f"
                buffer.write("\t".join(str(v) for v in r) + "\n")
                if n % 50_000 == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        raw.commit()
        # What autovacuum does after a bulk load: statistics, and the visibility map that
        # lets PostgreSQL count a gate's hour from the (gate, time) index alone.
        driver = raw.driver_connection
        driver.autocommit = True  # type: ignore[union-attr]
        driver.execute("VACUUM ANALYZE access_event")  # type: ignore[union-attr]
        driver.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def run(kind: str, count: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder, database(kind, Path(folder)) as engine:
        community_id, gates = grid(engine)
        started = time.perf_counter()
        (load_sqlite if kind == "sqlite" else load_postgres)(engine, count, community_id, gates)
        load_s = time.perf_counter() - started
        worker = Actor(1, "worker", "worker", Role.community_worker,
                       GridScope(ScopeLevel.community, community_id), community_id)  # fmt: skip
        rng = random.Random(1)
        with Session(engine) as session:
            stored = session.execute(text("select count(*) from access_event")).scalar()

            def timeline() -> None:
                found = records.timeline(session=session, actor=worker,
                                         person_id=rng.randrange(1, PEOPLE + 1), now=END,
                                         days=14)  # fmt: skip
                assert found.rows is not None

            def gate_hour() -> None:
                day = (END - dt.timedelta(days=rng.randrange(1, DAYS))).date()
                records.busiest_hour(session=session, actor=worker, gate_id=gates[0], day=day)

            def day_counts() -> None:
                day = (END - dt.timedelta(days=rng.randrange(1, DAYS))).date()
                records.hourly_counts(session=session, actor=worker, day=day, gate_id=gates[0])

            timed(timeline, 3)
            timed(gate_hour, 2)
            t_line = timed(timeline, repeat)
            t_hour = timed(gate_hour, repeat)
            t_day = timed(day_counts, max(3, repeat // 3))
            session.rollback()

    def p95(values: list[float]) -> float:
        return round(sorted(values)[min(len(values) - 1, int(0.95 * len(values)))], 2)

    return {
        "timeline_ms": round(statistics.median(t_line), 2),
        "timeline_p95_ms": p95(t_line),
        "gate_hour_ms": round(statistics.median(t_hour), 2),
        "gate_hour_p95_ms": p95(t_hour),
        "gate_day_counts_ms": round(statistics.median(t_day), 2),
        "events": stored,
        "load_s": round(load_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    count = args.events or (1_000_000 if args.quick else 10_000_000)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL not reachable: skipped", file=sys.stderr)
        kinds.remove("postgresql")
    by_database: dict[str, dict[str, object]] = {}
    print(f"{'database':<11} {'events':>10} {'timeline_ms':>12} {'gate_hour_ms':>13} "
          f"{'day_counts_ms':>14} {'load_s':>7}")  # fmt: skip
    for kind in kinds:
        f = run(kind, count, args.repeat)
        by_database[kind] = f
        print(f"{kind:<11} {f['events']:>10} {f['timeline_ms']:>12} {f['gate_hour_ms']:>13} "
              f"{f['gate_day_counts_ms']:>14} {f['load_s']:>7}")  # fmt: skip

    def slowest(key: str) -> float:
        return max(float(by_database[k][key]) for k in by_database)  # type: ignore[arg-type]

    emit({
        "timeline_ms": slowest("timeline_ms"), "gate_hour_ms": slowest("gate_hour_ms"),
        "events": count, "by_database": by_database,
    })  # fmt: skip
    json.dumps(by_database)


if __name__ == "__main__":
    main()
