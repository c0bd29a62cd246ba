"""The daily report on the full demo with a month of gate passages (goal ≤ 10 s): gathering
the figures from the slices' services and writing the XLSX and the PDF, as
`fengchao report daily` does.

    python benchmarks/report.py            # 1 million events, SQLite and PostgreSQL
    python benchmarks/report.py --quick    # 100,000 events, SQLite

Prints a table per database and, as the last line, one JSON object; `report_seconds` is
the slower database's median.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import database, emit, postgres_available

from fengchao.access.models import AccessEvent, Gate
from fengchao.dashboard import report
from fengchao.dashboard.report_pdf import write_pdf
from fengchao.dashboard.report_xlsx import write_xlsx
from fengchao.duty import service as duty
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Household, Person

BATCH = 20_000
ZONE = ZoneInfo("Asia/Shanghai")


def fill(session: Session, events: int, seed: int) -> tuple[int, dt.date]:
    """The demo community and ``events`` passages at its gates over the 30 days before
    today, busier by day than by night; answers the community and yesterday (local)."""
    build_demo(session)
    session.commit()
    people = session.execute(
        select(Person.id, Person.household_id, Household.building_id, Person.community_id).join(
            Household, Household.id == Person.household_id
        )
    ).all()
    community_id = people[0][3]
    gates = session.execute(select(Gate.id, Gate.compound_id)).all()
    rng = random.Random(seed)
    today = dt.datetime.now(ZONE).date()
    start = dt.datetime.combine(today - dt.timedelta(days=30), dt.time(), ZONE)
    written = 0
    while written < events:
        rows = []
        for _ in range(min(BATCH, events - written)):
            person, household, building, _c = people[rng.randrange(len(people))]
            gate, compound = gates[rng.randrange(len(gates))]
            hour = min(23, max(0, int(rng.gauss(13, 4.5))))
            at = start + dt.timedelta(
                days=rng.randrange(30), hours=hour, seconds=rng.randrange(3600)
            )
            rows.append(
                {
                    "community_id": community_id,
                    "compound_id": compound,
                    "gate_id": gate,
                    "direction": "in" if rng.random() < 0.5 else "out",
                    "method": rng.choice(("face", "face", "code", "plate")),
                    "decision": "allow" if rng.random() < 0.97 else "deny",
                    "reasons": [],
                    "person_id": person,
                    "household_id": household,
                    "building_id": building,
                    "masked": False,
                    "alert_level": "normal",
                    "occurred_at": at.astimezone(dt.UTC),
                    "server_time": at.astimezone(dt.UTC),
                    "late": False,
                    "clock_off": False,
                }
            )
        session.execute(insert(AccessEvent), rows)
        session.commit()
        written += len(rows)
        print(f"  {written:,} events", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    yesterday = today - dt.timedelta(days=1)
    # The rosters of the weeks the report reads (computed before they started).
    actor = report.report_actor(community_id)
    for monday in sorted(
        {duty.monday_of(yesterday - dt.timedelta(days=1)), duty.monday_of(yesterday)}
    ):
        week = dt.datetime.combine(monday, dt.time(), ZONE) - dt.timedelta(hours=1)
        duty.compute_roster(
            session=session,
            actor=actor,
            community_id=community_id,
            monday=monday,
            time_limit=5,
            now=week.astimezone(dt.UTC),
        )
        session.commit()
    return community_id, yesterday


def report_seconds(session: Session, community_id: int, day: dt.date, folder: Path) -> float:
    """One daily report, gathered and written as `fengchao report daily` does."""
    started = time.perf_counter()
    data = report.build_report_data(session, report.report_actor(community_id), community_id, day)
    stem = report.file_stem(data)
    write_xlsx(data, folder / f"{stem}.xlsx")
    write_pdf(data, folder / f"{stem}.pdf")
    seconds = time.perf_counter() - started
    session.rollback()  # the audit rows the reads queued
    return seconds


def run(kind: str, events: int, runs: int, seed: int, out: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder, database(kind, Path(folder)) as engine:
        started = time.perf_counter()
        with Session(engine) as session:
            community_id, day = fill(session, events, seed)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        load_s = time.perf_counter() - started
        timings = []
        for _ in range(runs):
            with Session(engine) as session:
                timings.append(report_seconds(session, community_id, day, out or Path(folder)))
    return {
        "report_seconds": round(statistics.median(timings), 2),
        "first_seconds": round(timings[0], 2),
        "max_seconds": round(max(timings), 2),
        "load_seconds": round(load_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 events, SQLite only")
    parser.add_argument("--events", type=int, help="events to store (overrides the size)")
    parser.add_argument("--runs", type=int, default=3, help="reports timed")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--out", type=Path, help="keep the report's files in this folder")
    args = parser.parse_args()
    events = args.events or (100_000 if args.quick else 1_000_000)
    choice = args.database or ("sqlite" if args.quick else "both")
    kinds = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL is not reachable: measuring SQLite only", file=sys.stderr)
        kinds = [k for k in kinds if k != "postgresql"]
    by_database = {}
    for kind in kinds:
        print(f"{kind}: the demo and {events:,} events …", file=sys.stderr)
        by_database[kind] = run(kind, events, args.runs, seed=20221129, out=args.out)
    header = ("database", "median s", "first s", "max s", "load s")
    print(f"{header[0]:<12}" + "".join(f"{h:>12}" for h in header[1:]))
    for kind, f in by_database.items():
        cells = (f["report_seconds"], f["first_seconds"], f["max_seconds"], f["load_seconds"])
        print(f"{kind:<12}" + "".join(f"{c:>12}" for c in cells))
    emit(
        {
            "events": events,
            "report_seconds": max(f["report_seconds"] for f in by_database.values()),
            "by_database": by_database,
        }
    )


if __name__ == "__main__":
    main()
