"""A closed-management day of grid work on the demo community (4,883 households, 45
buildings) against a served app: one sweep of the whole community, 45 building leads
recording visits concurrently (each their own building, door after door, opening their to-do
page every few doors), 300 help requests raised by the leads along the way, and the
escalation job running beside them with a clock 45 minutes ahead (so urgent requests do
escalate during the run). Figures: p50/p95 of recording a visit and of the lead's to-do
page, and of raising a request; server errors (goal: none).
    python benchmarks/gridwork.py [--quick] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import database, emit, postgres_available
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import finish, utcnow
from fengchao.gridwork import jobs, sweeps
from fengchao.gridwork.models import HelpRequest, SweepTarget
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Building, Compound, Household, Unit
from fengchao.testing import served_app

PASSWORD = "bench-password-1"
LEADS = 45
REQUESTS = 300
CATEGORIES = ("medicine", "food", "medical_visit", "elderly_alone", "other")
URGENCIES = ("urgent", "normal", "low")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def setup(engine: object) -> tuple[int, dict[int, list[int]], dict[int, tuple[int, list[str]]]]:
    """The demo, one sweep over the community, a lead account per building; (sweep id,
    targets per building, (compound id, addresses) per building)."""
    with Session(engine) as session:  # type: ignore[call-overload]
        summary = build_demo(session)
        community = GridScope(ScopeLevel.community, summary.community_id)
        worker = auth_service.create_user(
            session=session, username="worker", password=PASSWORD,
            role=Role.community_worker, scope=community,
        )  # fmt: skip
        buildings = list(
            session.scalars(
                select(Building.id).where(Building.community_id == summary.community_id)
            )
        )
        for building in buildings:
            auth_service.create_user(
                session=session, username=f"lead{building}", password=PASSWORD,
                role=Role.building_lead, scope=GridScope(ScopeLevel.building, building),
            )  # fmt: skip
        sweep = sweeps.create(
            session=session, actor=auth_service.actor_for(worker, session),
            title="封闭管理扫楼清户", level=ScopeLevel.community, node_id=summary.community_id,
            deadline=utcnow() + dt.timedelta(days=2),
        )  # fmt: skip
        session.commit()
        targets: dict[int, list[int]] = {}
        for target_id, building in session.execute(
            select(SweepTarget.id, SweepTarget.building_id)
            .where(SweepTarget.sweep_id == sweep.id)
            .order_by(SweepTarget.id)
        ):
            targets.setdefault(building, []).append(target_id)
        places: dict[int, tuple[int, list[str]]] = {}
        for building, compound, bname, uname, room in session.execute(
            select(Household.building_id, Household.compound_id, Building.name, Unit.name,
                   Household.room)
            .join(Building, Building.id == Household.building_id)
            .join(Unit, Unit.id == Household.unit_id)
            .join(Compound, Compound.id == Household.compound_id)
        ):  # fmt: skip
            places.setdefault(building, (compound, []))[1].append(f"{bname}-{uname}-{room}")
        return sweep.id, targets, places


def logged_in(base: str, username: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=120)
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": client.cookies["fc_csrf"]},
    )
    assert response.status_code == 303, response.status_code
    page = client.get("/gridwork/todo")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return client, found[1]


def measure_alone(
    clients: dict[int, tuple[httpx.Client, str]],
    sweep_id: int,
    targets: dict[int, list[int]],
    done: int,
) -> dict[str, float]:
    """One lead alone on the server: the service time without queueing behind others."""
    building = max(targets, key=lambda b: len(targets[b]))
    client, csrf = clients[building]
    visits, todo = [], []
    for target in targets[building][done : done + 40]:
        data = {"outcome": "visited", "people_home": "2", "key": uuid.uuid4().hex,
                "csrf_token": csrf}  # fmt: skip
        begun = time.perf_counter()
        assert (
            client.post(f"/gridwork/sweeps/{sweep_id}/visit/{target}", data=data).status_code == 303
        )
        visits.append((time.perf_counter() - begun) * 1000)
    for _ in range(20):
        begun = time.perf_counter()
        assert client.get("/gridwork/todo").status_code == 200
        todo.append((time.perf_counter() - begun) * 1000)
    return {
        "visit_alone_p95_ms": round(pct(visits, 0.95), 1),
        "todo_alone_p95_ms": round(pct(todo, 0.95), 1),
    }


def run(kind: str, quick: bool, pace: float, workers: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-gridwork-"))
    with database(kind, folder) as engine:
        started = time.perf_counter()
        sweep_id, targets, places = setup(engine)
        print(
            f"{kind}: demo, sweep and {len(targets)} leads in {time.perf_counter() - started:.0f} s"
        )
        per_lead = 12 if quick else max(len(t) for t in targets.values())
        requests_each = -(-REQUESTS // len(targets))
        url = engine.url.render_as_string(hide_password=False)
        timings: dict[str, list[float]] = {"visit": [], "todo": [], "request": []}
        statuses: list[int] = []
        lock = threading.Lock()
        stop = threading.Event()
        escalated = [0, 0]  # escalations, job runs
        job_ms: list[float] = []

        def escalations() -> None:
            sessions = sessionmaker(bind=engine, expire_on_commit=False)
            while not stop.wait(1.0):
                session = sessions()
                begun = time.perf_counter()
                try:
                    result = jobs.escalate_job(
                        session=session, now=utcnow() + dt.timedelta(minutes=45)
                    )
                    finish(session)
                finally:
                    session.close()
                job_ms.append((time.perf_counter() - begun) * 1000)
                escalated[0] += int(result.split()[0])
                escalated[1] += 1

        with served_app(url, folder, workers=workers) as base:
            clients = {b: logged_in(base, f"lead{b}") for b in targets}

            def lead(building: int) -> None:
                client, csrf = clients[building]
                rng = random.Random(building)
                mine = targets[building][:per_lead]
                compound, addresses = places[building]
                asks = set(rng.sample(range(len(mine)), min(requests_each, len(mine))))
                time.sleep(rng.uniform(0, pace))  # leads do not all start on the same second
                for index, target in enumerate(mine):
                    if pace:
                        time.sleep(rng.uniform(0.5 * pace, 1.5 * pace))  # to the next door
                    outcome = rng.choices(("visited", "nobody_home", "refused"), (85, 12, 3))[0]
                    data = {"outcome": outcome, "people_home": str(rng.randint(1, 4)),
                            "note": "", "key": uuid.uuid4().hex, "csrf_token": csrf}  # fmt: skip
                    begun = time.perf_counter()
                    response = client.post(f"/gridwork/sweeps/{sweep_id}/visit/{target}", data=data)
                    visit_ms = (time.perf_counter() - begun) * 1000
                    samples = [("visit", visit_ms, response.status_code)]
                    if index % 4 == 0:
                        begun = time.perf_counter()
                        status = client.get("/gridwork/todo").status_code
                        samples.append(("todo", (time.perf_counter() - begun) * 1000, status))
                    if index in asks:
                        form = {"compound": str(compound), "address": rng.choice(addresses),
                                "category": rng.choice(CATEGORIES),
                                "urgency": rng.choice(URGENCIES), "details": "bench",
                                "csrf_token": csrf}  # fmt: skip
                        begun = time.perf_counter()
                        status = client.post("/gridwork/requests", data=form).status_code
                        samples.append(("request", (time.perf_counter() - begun) * 1000, status))
                    with lock:
                        for name, ms, status in samples:
                            timings[name].append(ms)
                            statuses.append(status)

            job = threading.Thread(target=escalations, daemon=True)
            job.start()
            began = time.perf_counter()
            with ThreadPoolExecutor(len(targets)) as pool:
                list(pool.map(lead, list(targets)))
            seconds = time.perf_counter() - began
            stop.set()
            job.join()
            alone = measure_alone(clients, sweep_id, targets, per_lead)
            for client, _csrf in clients.values():
                client.close()
        with Session(engine) as session:
            raised = len(list(session.scalars(select(HelpRequest.id))))

    errors = sum(1 for s in statuses if s >= 500)
    unexpected = sum(1 for s in statuses if s not in (200, 303) and s < 500)
    print(f"\n{kind}: {len(targets)} leads concurrently, a door every ~{pace:g} s each, "
          f"{seconds:.1f} s, {workers} server process(es)")  # fmt: skip
    print(f"{'what':<12}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    figures: dict[str, object] = {}
    for name, values in timings.items():
        p50, p95 = statistics.median(values), pct(values, 0.95)
        print(f"{name:<12}{len(values):>8}{p50:>9.1f}{p95:>9.1f}{max(values):>9.1f}")
        figures[f"{name}_p50_ms"] = round(p50, 1)
        figures[f"{name}_p95_ms"] = round(p95, 1)
    print(f"escalation job: {escalated[1]} runs, {escalated[0]} escalations, "
          f"p95 {pct(job_ms, 0.95):.1f} ms; requests in the database: {raised}; "
          f"5xx: {errors}, other non-2xx/3xx: {unexpected}")  # fmt: skip
    print(f"one lead alone: visit p95 {alone['visit_alone_p95_ms']} ms, "
          f"to-do p95 {alone['todo_alone_p95_ms']} ms")  # fmt: skip
    return {
        "visits": len(timings["visit"]),
        "visits_per_s": round(len(timings["visit"]) / seconds, 1),
        "help_requests": raised,
        "escalations": escalated[0],
        "escalation_job_p95_ms": round(pct(job_ms, 0.95), 1),
        "errors_5xx": errors,
        "other_non_2xx": unexpected,
        "seconds": round(seconds, 1),
        **figures,
        **alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="12 doors per lead, not all")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument(
        "--pace", type=float, default=1.0,
        help="seconds between doors per lead (a real door takes minutes; 0: no pause at all)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="server processes (uvicorn)")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL unreachable: SQLite only")
        kinds = ["sqlite"]
    results = {kind: run(kind, args.quick, args.pace, args.workers) for kind in kinds}
    first = results[kinds[0]]
    emit({
        "leads": LEADS, "quick": args.quick, "pace_s": args.pace, "workers": args.workers,
        "visit_p95_ms": first["visit_p95_ms"], "todo_p95_ms": first["todo_p95_ms"],
        **results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
