"""Contact tracing on a real-sized record: one case's contacts, and 100 cases on an outbreak
day, with the reference community (15,000 people) and a street office's month of gate
passages (10 million events).

    python benchmarks/tracing.py            # 10 million events
    python benchmarks/tracing.py --quick    # 1 million events
    python benchmarks/tracing.py --keep DIR # build the data once, in DIR (SQLite) and a
                                            # PostgreSQL database of its own; reuse it
    python benchmarks/tracing.py --generator uniform   # the earlier, unrealistic month

Each case: a random resident of the reference community, a 14-day lookback, the default
rules (household, co-passages within ±5 minutes at the same gate, the building, household
links of close contacts). Prints a table per database and, as the last line, one JSON
object; the top-level figures are the slower database's.

The month (``--generator street``, the default) is a street office's, as the issue says:

- The reference community (the demo registry: 4 compounds, 15,665 people) is one of the
  street's communities. Each compound has its own pedestrian gates, one per 2,500
  residents or part of it (the large estate 4, each smaller compound 1: 7 gates). People
  pass their own compound's gates; 8 % of trips also go in and out of another compound
  of their community (cross traffic: visiting, shopping).
- People make trips (out, later back in): each person has a daily rate (15 % mostly at
  home, 0.3 trips a day; 45 % 1.6; 40 % 3.3; about 4.2 passages a person a day), each day
  a Poisson number of trips, leaving at a time drawn from a daily profile in local time
  (morning and evening peaks, almost nothing at night), back after an errand, half a day
  or a working day. 3 % of attempts are refused, as before.
- The rest of the 10 million events are the street's other communities (the same
  layout, their own compounds, gates and people, ids of their own; they are not in this
  registry), so the record is a street office's size while the traced community's gates
  carry what its people really pass. With fewer events (``--quick``) the month is shortened
  to the days the reference community alone fills, at the same density.

What changed, and why: the earlier generator (``--generator uniform``, kept to compare)
sent all 10 million events through 8 gates of one compound, each by one of the 15,665
people drawn uniformly at any second of the day: 21 passages a person a day and about 290
people at a gate within ±5 minutes of any passage, night and day. A case then co-passed
with the whole population (15,660 contacts of 15,665). A street office's month is many
compounds, each with its own gates and its own people, with daily peaks; the new month keeps
the peaks (so a case in the large estate still meets thousands of people at a morning gate:
it is not made easier than reality) but no longer funnels the street through one gate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

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


Person_ = tuple[int, int, int, int, int]  # person, household, building, compound, community


def fill(
    session: Session, events: int, seed: int, generator: str
) -> tuple[int, list[int], dt.datetime, int]:
    """The demo community and ``events`` allowed or refused passages (see the module's
    docstring for the two generators), written in time order as gates write them. The
    access record's indexes are dropped while the rows go in and built again after (as a
    bulk load is done), rows are written through the driver (SQLite: ``executemany``;
    PostgreSQL: ``COPY``). Returns the community, its people, the end of the month and the
    number of events written."""
    build_demo(session)
    session.commit()
    people: list[Person_] = [
        tuple(row)  # type: ignore[misc]
        for row in session.execute(
            select(
                Person.id,
                Person.household_id,
                Household.building_id,
                Household.compound_id,
                Person.community_id,
            )
            .join(Household, Household.id == Person.household_id)
            .order_by(Person.id)
        )
    ]
    community_id = people[0][4]
    rng = random.Random(seed)
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
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
    batches = uniform_month(people, events, rng, end) if generator == "uniform" else None
    if batches is None:
        batches = street_month(people, events, rng, end)
    written = 0
    for moments in batches:
        moments = moments[: events - written]
        if not moments:
            break
        rows = []
        for at, person, gate, direction, allowed in moments:
            pid, household, building, compound, community = person
            when: object = f"{at:%Y-%m-%d %H:%M:%S}.000000" if sqlite else at
            rows.append(
                (
                    community, compound, gate, direction, "face",
                    "allow" if allowed else "deny", "[]",
                    pid, household, building, False, "normal", when, when, False, False,
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
    return community_id, [p[0] for p in people], end, written


Moment = tuple[dt.datetime, Person_, int, str, bool]  # when, who, gate, direction, allowed


def uniform_month(
    people: list[Person_], events: int, rng: random.Random, end: dt.datetime
) -> Iterator[list[Moment]]:
    """The earlier generator: ``events`` passages over 30 days, each by a person drawn
    uniformly, at a uniformly drawn second, through one of 8 gates of one compound."""
    start = end - dt.timedelta(days=30)
    span = int((end - start).total_seconds())
    batches = max(1, events // BATCH)
    for batch in range(batches):
        count = events // batches + (1 if batch < events % batches else 0)
        low = span * batch // batches
        high = span * (batch + 1) // batches
        moments = []
        for second in sorted(rng.randrange(low, high) for _ in range(count)):
            person = people[rng.randrange(len(people))]
            pid, household, building, _compound, community = person
            gate = 1 + rng.randrange(GATES)
            direction = "in" if rng.random() < 0.5 else "out"
            at = start + dt.timedelta(seconds=second)
            moments.append((at, (pid, household, building, 1, community), gate, direction,
                            rng.random() < 0.97))  # fmt: skip
        yield moments


# Trips leaving in each local hour (relative weights): morning and evening peaks.
DEPARTURES = (0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 2, 6, 7, 5, 4, 4, 4, 3, 3, 3, 4, 5, 5, 5, 3, 2, 1, 0.5)
# (share of people, trips a day): mostly at home, regular, active.
HABITS = ((0.15, 0.3), (0.45, 1.6), (0.40, 3.3))
PEOPLE_PER_GATE = 2500
CROSS = 0.08  # share of trips that also pass through another compound of the community
REFUSED = 0.03
OTHERS_ID = 10_000_000  # ids of the other communities' people, gates, homes start here


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def street_month(
    people: list[Person_], events: int, rng: random.Random, end: dt.datetime
) -> Iterator[list[Moment]]:
    """A street office's month (see the module's docstring): the reference community's
    people through their own compounds' gates, and copies of its layout as the street's
    other communities until a little over ``events`` passages; one batch per day, in time
    order."""
    local = ZoneInfo("Asia/Shanghai")
    per_person_day = 2 * (1 + CROSS) * sum(share * trips for share, trips in HABITS)
    community_day = per_person_day * len(people)
    days = max(1, min(30, round(events / community_day)))
    # 3 % more than asked on average (``fill`` stops at ``events``: the month's last
    # minutes are cut, so the record holds the number of events asked for, not about it).
    copies = max(1.0, 1.03 * events / (community_day * days))
    population = list(people)
    for copy in range(1, math.ceil(copies)):
        share = min(1.0, copies - copy)
        base = OTHERS_ID * (copy + 1)
        population.extend(
            (base + pid, base + household, base + building, base + compound, base + community)
            for pid, household, building, compound, community in people[
                : round(share * len(people))
            ]
        )
    residents: dict[int, int] = {}
    for person in population:
        residents[person[3]] = residents.get(person[3], 0) + 1
    gates: dict[int, list[int]] = {}  # compound -> its gates
    for compound, count in sorted(residents.items()):
        first = compound * 10
        gates[compound] = [first + g for g in range(max(1, math.ceil(count / PEOPLE_PER_GATE)))]
    neighbours: dict[int, list[int]] = {}  # community -> its compounds
    for person in population:
        compounds = neighbours.setdefault(person[4], [])
        if person[3] not in compounds:
            compounds.append(person[3])
    habits = [
        rng.choices([t for _s, t in HABITS], weights=[s for s, _t in HABITS])[0] for _ in population
    ]
    hours = list(range(24))
    today = end.astimezone(local).date()
    for day_index in range(days, 0, -1):
        day = today - dt.timedelta(days=day_index - 1)
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=local).astimezone(dt.UTC)
        moments: list[Moment] = []

        def add(
            second: int,
            person: Person_,
            gate: int,
            direction: str,
            midnight: dt.datetime = midnight,
            moments: list[Moment] = moments,
        ) -> None:
            at = midnight + dt.timedelta(seconds=second)
            moments.append((at, person, gate, direction, rng.random() >= REFUSED))

        for person, rate in zip(population, habits, strict=True):
            compound, community = person[3], person[4]
            for _trip in range(_poisson(rng, rate)):
                hour = rng.choices(hours, weights=DEPARTURES)[0]
                leave = hour * 3600 + rng.randrange(3600)
                kind = rng.random()
                away = (
                    rng.randrange(600, 3600) if kind < 0.5  # an errand
                    else rng.randrange(7200, 18000) if kind < 0.75  # half a day
                    else rng.randrange(28800, 36000)  # a working day
                )  # fmt: skip
                back = min(leave + away, 86399)
                own = gates[compound]
                add(leave, person, own[rng.randrange(len(own))], "out")
                add(back, person, own[rng.randrange(len(own))], "in")
                others = [c for c in neighbours[community] if c != compound]
                if others and rng.random() < CROSS:
                    there = gates[others[rng.randrange(len(others))]]
                    gate = there[rng.randrange(len(there))]
                    arrive = leave + rng.randrange(0, max(1, back - leave))
                    add(arrive, person, gate, "in")
                    add(min(arrive + rng.randrange(300, 3600), 86399), person, gate, "out")
        moments.sort(key=lambda m: m[0])
        moments = [m for m in moments if m[0] <= end]
        for low in range(0, len(moments), BATCH * 5):
            yield moments[low : low + BATCH * 5]


def stored(session: Session) -> tuple[int, list[int], dt.datetime, int] | None:
    """What an earlier run with ``--keep`` stored (None when the database is empty)."""
    end = session.scalar(select(func.max(AccessEvent.occurred_at)))
    if end is None:
        return None
    people = session.execute(
        select(Person.id, Person.community_id)
        .where(Person.household_id.is_not(None))
        .order_by(Person.id)
    ).all()
    events = session.scalar(select(func.count()).select_from(AccessEvent)) or 0
    return people[0][1], [p[0] for p in people], end.replace(microsecond=0), events


@contextmanager
def kept_database(kind: str, folder: Path, name: str, postgres_url: str) -> Iterator[Engine]:
    """A database that outlives the run, migrated when new: a SQLite file in ``folder``,
    or the PostgreSQL database ``postgres_url`` names with ``_`` and ``name`` appended
    (created when missing)."""
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{folder / f'tracing-{name}.db'}")
    else:
        url = make_url(postgres_url)
        database_name = f"{url.database}_{name}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database_name,)
            ).scalar():
                conn.exec_driver_sql(f"CREATE DATABASE {database_name}")
        admin.dispose()
        engine = create_engine(url.set(database=database_name))
    try:
        upgrade(engine, "head")
        yield engine
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Plan:
    events: int
    cases: int
    seed: int
    generator: str
    keep: Path | None
    postgres_url: str


def run(kind: str, plan: Plan) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        name = f"{plan.generator}_{plan.events}"
        opened = (
            kept_database(kind, plan.keep, name, plan.postgres_url)
            if plan.keep
            else database(kind, Path(folder), plan.postgres_url)
        )
        with opened as engine:
            return measure(engine, plan)


def measure(engine: Engine, plan: Plan) -> dict[str, float]:
    started = time.perf_counter()
    with Session(engine) as session:
        kept = stored(session)
    if kept is None:
        with Session(engine) as session:
            community_id, people, end, written = fill(
                session, plan.events, plan.seed, plan.generator
            )
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # fresh statistics, as a running system has
            conn.commit()
    else:
        community_id, people, end, written = kept
    cases, seed = plan.cases, plan.seed
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
        "events_stored": written,
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
    parser.add_argument(
        "--generator",
        choices=["street", "uniform"],
        default="street",
        help="the month's passages: a street office's (default) or the earlier uniform one",
    )
    parser.add_argument(
        "--postgres-url",
        default=PG_URL,
        help="PostgreSQL server and database (with --keep, the kept database's name is this "
        "database's name followed by the generator and the size)",
    )
    args = parser.parse_args()
    events = args.events or (1_000_000 if args.quick else 10_000_000)
    plan = Plan(events, args.cases, 20221111, args.generator, args.keep, args.postgres_url)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available(args.postgres_url):
        print("PostgreSQL is not reachable: measuring SQLite only", file=sys.stderr)
        kinds = [k for k in kinds if k != "postgresql"]
    by_database = {}
    for kind in kinds:
        print(f"{kind}: storing {events:,} events ({args.generator}) …", file=sys.stderr)
        by_database[kind] = run(kind, plan)
    header = ("database", "p50 ms", "p95 ms", "max ms", "contacts", "100 cases s")
    print(f"{header[0]:<12}" + "".join(f"{h:>12}" for h in header[1:]))
    for kind, f in by_database.items():
        cells = (f["p50_ms"], f["p95_ms"], f["max_ms"], f["contacts_median"])
        print(f"{kind:<12}" + "".join(f"{c:>12}" for c in (*cells, f["cases_100_seconds"])))
    slower = max(by_database.values(), key=lambda f: f["p95_ms"])
    emit(
        {
            "events": events,
            "generator": args.generator,
            "people": 15665,
            "p50_ms": slower["p50_ms"],
            "p95_ms": slower["p95_ms"],
            "cases_100_seconds": max(f["cases_100_seconds"] for f in by_database.values()),
            "by_database": by_database,
        }
    )


if __name__ == "__main__":
    main()
