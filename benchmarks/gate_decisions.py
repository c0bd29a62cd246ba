"""Gate decisions per second the server sustains without vision (a person picked by hand and
plate text), from a load generator in another process than the server, on SQLite and
PostgreSQL: per_s, p50 and p99. Goal: ≥ 1,000 decisions/s with p99 ≤ 50 ms on 2 cores.

Every request is a device's POST /api/access/device/decisions with its key and its own
idempotency key: the whole path (key check, person or plate lookup, rules, alert level,
the access event committed before the answer), as a gate runs it. The server decides such
quick decisions in groups (``access.device_api.decide_group``: one write transaction and one
commit for every decision waiting), so the figures hold for many gates at once; one gate
alone waits only for its own decision.

    python benchmarks/gate_decisions.py [--quick] [--clients 16] [--seconds 20]
        [--workers 1] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import database, emit, postgres_available
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.access.models import AccessEvent
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.db import refresh_statistics
from fengchao.registry.models import (
    Building,
    Community,
    Compound,
    Household,
    Person,
    Relation,
    Street,
    Unit,
    Vehicle,
)
from fengchao.testing import served_app

PROVINCE_LETTERS = "ABCDEFGHJK"


def build(engine: Engine, households: int) -> dict[str, object]:
    """A community of ``households`` households of three, a vehicle for every third
    household, a pedestrian and a vehicle gate of its compound with a device each."""
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
        people: list[int] = []
        plates: list[str] = []
        per_building = 120
        for b in range(0, households, per_building):
            building = Building(community_id=community.id, compound_id=compound.id,
                                name=str(b // per_building + 1))  # fmt: skip
            session.add(building)
            session.flush()
            unit = Unit(community_id=community.id, building_id=building.id, name="1")
            session.add(unit)
            session.flush()
            homes = [
                Household(community_id=community.id, compound_id=compound.id,
                          building_id=building.id, unit_id=unit.id, room=str(100 + i))
                for i in range(min(per_building, households - b))
            ]  # fmt: skip
            session.add_all(homes)
            session.flush()
            members = []
            for n, home in enumerate(homes):
                for relation in (Relation.owner, Relation.family, Relation.family):
                    members.append(Person(community_id=community.id, household_id=home.id,
                                          name=f"住户{home.id}", relation=relation))  # fmt: skip
                if n % 3 == 0:
                    plate = f"闽{PROVINCE_LETTERS[home.id % 10]}{home.id:05d}"
                    plates.append(plate)
                    session.add(Vehicle(community_id=community.id, household_id=home.id,
                                        plate=plate))  # fmt: skip
            session.add_all(members)
            session.flush()
            people += [m.id for m in members]
        walk = access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=compound.id,
                                  name="东门", kind="pedestrian")  # fmt: skip
        drive = access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=compound.id,
                                   name="车库口", kind="vehicle")  # fmt: skip
        _d1, walk_key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                             gate_id=walk.id, name="东门平板")  # fmt: skip
        _d2, drive_key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                              gate_id=drive.id, name="车库相机")  # fmt: skip
        # Built in bulk, as an import builds it; the import then measures the tables at once
        # (PostgreSQL's planner without statistics read a whole community per lookup).
        refresh_statistics(session, "household", "person", "vehicle", "building", "unit")
        session.commit()
    return {"people": people, "plates": plates, "walk_key": walk_key, "drive_key": drive_key}


def load(base: str, world: dict[str, object], clients: int, seconds: float) -> dict[str, object]:
    """``clients`` devices sending decisions as fast as they are answered: 75 % a person
    picked at the pedestrian gate, 25 % a plate text at the vehicle gate.

    The devices are coroutines writing HTTP/1.1 on kept-alive connections: a load generator
    of threads and an HTTP library cost about as much CPU per request as the server, and on
    a 2-core machine that CPU would be taken from the server being measured."""
    people: list[int] = world["people"]  # type: ignore[assignment]
    plates: list[str] = world["plates"]  # type: ignore[assignment]
    host, port = base.removeprefix("http://").split(":")

    def request(rng: random.Random) -> tuple[bytes, str]:
        if rng.random() < 0.75:
            key, kind = world["walk_key"], "person"
            body = {"direction": rng.choice(("in", "out")), "method": "person",
                    "value": str(rng.choice(people)), "temperature": 36.5}  # fmt: skip
        else:
            key, kind = world["drive_key"], "plate"
            body = {"direction": rng.choice(("in", "out")), "method": "plate",
                    "value": rng.choice(plates)}  # fmt: skip
        data = json.dumps(body, ensure_ascii=False).encode()
        head = (
            f"POST /api/access/device/decisions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"X-Device-Key: {key}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n\r\n"
        )
        return head.encode() + data, kind

    async def device(seed: int, deadline: float, out: list[tuple[float, int, str]]) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                raw, kind = request(rng)
                started = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                out.append(((time.perf_counter() - started) * 1000, status, kind))
        finally:
            writer.close()

    async def everyone() -> tuple[list[tuple[float, int, str]], float]:
        out: list[tuple[float, int, str]] = []
        began = time.perf_counter()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(device(i, deadline, out) for i in range(clients)))
        return out, time.perf_counter() - began

    results, elapsed = asyncio.run(everyone())
    ok = sorted(ms for ms, status, _k in results if status == 200)
    errors = sum(1 for _ms, status, _k in results if status != 200)

    def pct(p: float) -> float:
        return round(ok[min(len(ok) - 1, int(p * len(ok)))], 2) if ok else 0.0

    return {
        "per_s": round(len(ok) / elapsed, 1),
        "p50_ms": round(statistics.median(ok), 2) if ok else 0.0,
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "decisions": len(ok),
        "errors": errors,
        "plate_share": round(sum(1 for r in results if r[2] == "plate") / max(1, len(results)), 2),
    }


def in_process(engine: Engine, world: dict[str, object], count: int = 300) -> float:
    """p50 ms of one decision called directly (no HTTP), each in its own unit of work: what
    the flow itself costs, apart from the web server and the load generator."""
    from sqlalchemy.orm import sessionmaker

    from fengchao.access import flows
    from fengchao.access.flows import PassageRequest, Sender
    from fengchao.db import finish

    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    people: list[int] = world["people"]  # type: ignore[assignment]
    rng = random.Random(5)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with sessions() as session:
            device = access.device_for_key(session=session, key=str(world["walk_key"]))
            assert device is not None
            flows.decide(
                session=session,
                request=PassageRequest(
                    device.gate_id,
                    "in",
                    "person",
                    value=str(rng.choice(people)),
                    temperature=36.5,
                    idempotency_key=uuid.uuid4().hex,
                ),
                sender=Sender.device(device),
            )
            finish(session)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def run(
    kind: str, households: int, clients: int, seconds: float, workers: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder, database(kind, Path(folder)) as engine:
        world = build(engine, households)
        with served_app(str(engine.url.render_as_string(hide_password=False)), Path(folder),
                        workers=workers) as base:  # fmt: skip
            load(base, world, clients, min(2.0, seconds / 4))  # warm-up
            figures = load(base, world, clients, seconds)
        figures["in_process_p50_ms"] = in_process(engine, world)
        with Session(engine) as session:
            figures["events_written"] = session.scalar(
                select(func.count()).select_from(AccessEvent)
            )
    figures["people"] = len(world["people"])  # type: ignore[arg-type]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    households = 500 if args.quick else 4883
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL not reachable: skipped", file=sys.stderr)
        kinds.remove("postgresql")
    by_database = {}
    print(f"{'database':<11} {'per_s':>8} {'p50_ms':>8} {'p95_ms':>8} {'p99_ms':>8} {'errors':>7} "
          f"{'in_process_p50_ms':>18}")  # fmt: skip
    for kind in kinds:
        figures = run(kind, households, args.clients, seconds, args.workers)
        by_database[kind] = figures
        print(f"{kind:<11} {figures['per_s']:>8} {figures['p50_ms']:>8} {figures['p95_ms']:>8} "
              f"{figures['p99_ms']:>8} {figures['errors']:>7} "
              f"{figures['in_process_p50_ms']:>18}")  # fmt: skip
    weaker = min(by_database, key=lambda k: by_database[k]["per_s"])  # type: ignore[arg-type,return-value]
    top = by_database[weaker]
    emit({
        "per_s": top["per_s"], "p50_ms": top["p50_ms"], "p99_ms": top["p99_ms"],
        "weaker_database": weaker, "clients": args.clients, "seconds": seconds,
        "workers": args.workers, "households": households, "by_database": by_database,
    })  # fmt: skip


if __name__ == "__main__":
    main()
