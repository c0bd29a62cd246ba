"""A closed-management day of grid work on the demo community (4,883 households, 45
buildings) against a served app: p50/p95 of recording a visit and of the lead's to-do page
(goals: p95 ≤ 100 ms and ≤ 150 ms), of raising a request, and server errors (goal: none).

What is modelled: one sweep of the whole community; 45 building leads at once, each in
their own building, door after door: a visit recorded (85 % visited, 12 % nobody home, 3 %
refused), the to-do page opened every fourth door, 300 help requests raised along the way (and
half as many again in the no-pause phase);
the escalation job running beside them every second in a process of its own (as
`fengchao worker` runs it), with a clock 45 minutes ahead so urgent requests do escalate.
Two phases on the same server: first a pause of ``--pace`` seconds (0.5-1.5 x) between doors
(a real door takes minutes), then the same number of doors with no pause at all (every lead
sends the next request as soon as the last is answered: the worst case, reported as
``*_no_pause``). The server runs as production runs it: on PostgreSQL with 2 worker
processes (docs/operations.md), on SQLite with 1 (``--workers`` to change it).

The leads are coroutines writing HTTP/1.1 by hand (``_common.RawHttp``), not threads of an
HTTP library: on a 2-core machine those cost the server CPU and add their own GIL waits
to the figures. Run it on a quiet machine, and compare with the one-lead-alone line.

    python benchmarks/gridwork.py [--quick] [--database sqlite|postgresql|both]
        [--pace 1.0] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RawHttp, database, emit, postgres_available
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import finish, make_engine, utcnow
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


async def logged_in(base: str, username: str) -> tuple[RawHttp, str]:
    client = RawHttp(base)
    await client.request("GET", "/login")
    status, _h, _b = await client.request(
        "POST", "/login",
        form={"username": username, "password": PASSWORD, "csrf_token": client.cookies["fc_csrf"]},
    )  # fmt: skip
    assert status == 303, status
    _s, _h, page = await client.request("GET", "/gridwork/todo")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.decode())
    assert found is not None
    return client, found[1]


def escalations(url: str, stop: object, out: object) -> None:
    """The escalation job every second until ``stop`` is set (in a process of its own);
    (runs, escalations, timings in ms) into the ``out`` queue."""
    engine = make_engine(url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    runs, moved, job_ms = 0, 0, []
    while not stop.wait(1.0):  # type: ignore[attr-defined]
        session = sessions()
        begun = time.perf_counter()
        try:
            result = jobs.escalate_job(session=session, now=utcnow() + dt.timedelta(minutes=45))
            finish(session)
        finally:
            session.close()
        job_ms.append((time.perf_counter() - begun) * 1000)
        moved += int(result.split()[0])
        runs += 1
    engine.dispose()
    out.put((runs, moved, job_ms))  # type: ignore[attr-defined]


Samples = dict[str, list[tuple[float, int]]]


async def lead_day(
    client: RawHttp, csrf: str, building: int, doors: list[int], sweep_id: int,
    place: tuple[int, list[str]], asks: int, pace: float, seed: int, out: Samples,
) -> None:  # fmt: skip
    """One lead walking ``doors``: a visit each, the to-do page every fourth, ``asks``
    help requests along the way."""
    rng = random.Random(seed)
    compound, addresses = place
    asking = set(rng.sample(range(len(doors)), min(asks, len(doors))))
    if pace:
        await asyncio.sleep(rng.uniform(0, pace))  # leads do not all start on the same second
    for index, target in enumerate(doors):
        if pace:
            await asyncio.sleep(rng.uniform(0.5 * pace, 1.5 * pace))  # to the next door
        outcome = rng.choices(("visited", "nobody_home", "refused"), (85, 12, 3))[0]
        form = {"outcome": outcome, "people_home": str(rng.randint(1, 4)), "note": "",
                "key": uuid.uuid4().hex, "csrf_token": csrf}  # fmt: skip
        begun = time.perf_counter()
        status, _h, _b = await client.request(
            "POST", f"/gridwork/sweeps/{sweep_id}/visit/{target}", form=form
        )
        out["visit"].append(((time.perf_counter() - begun) * 1000, status))
        if index % 4 == 0:
            begun = time.perf_counter()
            status, _h, _b = await client.request("GET", "/gridwork/todo")
            out["todo"].append(((time.perf_counter() - begun) * 1000, status))
        if index in asking:
            form = {"compound": str(compound), "address": rng.choice(addresses),
                    "category": rng.choice(CATEGORIES), "urgency": rng.choice(URGENCIES),
                    "details": "bench", "csrf_token": csrf}  # fmt: skip
            begun = time.perf_counter()
            status, _h, _b = await client.request("POST", "/gridwork/requests", form=form)
            out["request"].append(((time.perf_counter() - begun) * 1000, status))


def summary(samples: Samples, suffix: str) -> dict[str, object]:
    figures: dict[str, object] = {}
    print(f"{'what':<12}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for name, pairs in samples.items():
        values = [ms for ms, _s in pairs]
        if not values:
            continue
        p50, p95 = statistics.median(values), pct(values, 0.95)
        print(f"{name:<12}{len(values):>8}{p50:>9.1f}{p95:>9.1f}{max(values):>9.1f}")
        figures[f"{name}_p50_ms{suffix}"] = round(p50, 1)
        figures[f"{name}_p95_ms{suffix}"] = round(p95, 1)
    statuses = [s for pairs in samples.values() for _ms, s in pairs]
    figures[f"errors_5xx{suffix}"] = sum(1 for s in statuses if s >= 500)
    figures[f"other_non_2xx{suffix}"] = sum(1 for s in statuses if s not in (200, 303) and s < 500)
    return figures


async def alone(client: RawHttp, csrf: str, sweep_id: int, doors: list[int]) -> dict[str, float]:
    """One lead alone on the server: the service time without queueing behind others."""
    visits, todo = [], []
    for target in doors:
        form = {"outcome": "visited", "people_home": "2", "key": uuid.uuid4().hex,
                "csrf_token": csrf}  # fmt: skip
        begun = time.perf_counter()
        status, _h, _b = await client.request(
            "POST", f"/gridwork/sweeps/{sweep_id}/visit/{target}", form=form
        )
        assert status == 303, status
        visits.append((time.perf_counter() - begun) * 1000)
    for _ in range(20):
        begun = time.perf_counter()
        status, _h, _b = await client.request("GET", "/gridwork/todo")
        assert status == 200, status
        todo.append((time.perf_counter() - begun) * 1000)
    return {
        "visit_alone_p50_ms": round(statistics.median(visits), 1),
        "visit_alone_p95_ms": round(pct(visits, 0.95), 1),
        "todo_alone_p50_ms": round(statistics.median(todo), 1),
        "todo_alone_p95_ms": round(pct(todo, 0.95), 1),
    }


def run(kind: str, quick: bool, pace: float, workers: int | None) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-gridwork-"))
    workers = workers or (2 if kind == "postgresql" else 1)
    with database(kind, folder) as engine:
        started = time.perf_counter()
        sweep_id, targets, places = setup(engine)
        print(
            f"{kind}: demo, sweep and {len(targets)} leads in {time.perf_counter() - started:.0f} s"
        )
        per_lead = 12 if quick else max(len(t) for t in targets.values()) // 2
        requests_each = -(-REQUESTS // len(targets))
        url = engine.url.render_as_string(hide_password=False)
        engine.dispose()  # the job's process opens its own connections
        context = multiprocessing.get_context("fork")
        stop, out = context.Event(), context.Queue()
        job = context.Process(target=escalations, args=(url, stop, out), daemon=True)
        with served_app(url, folder, workers=workers) as base:

            async def day() -> dict[str, object]:
                # One after another, as the leads' first logins of the day would come: the
                # password hash is meant to be slow, and the login throttle counts by address.
                clients = {b: await logged_in(base, f"lead{b}") for b in targets}
                figures: dict[str, object] = {}
                for phase, (doors_from, phase_pace, suffix) in enumerate(
                    ((0, pace, ""), (per_lead, 0.0, "_no_pause"))
                ):
                    samples: Samples = {"visit": [], "todo": [], "request": []}
                    began = time.perf_counter()
                    await asyncio.gather(*(
                        lead_day(client, csrf, b, targets[b][doors_from : doors_from + per_lead],
                                 sweep_id, places[b], requests_each // (1 + phase),
                                 phase_pace, b * 10 + phase, samples)
                        for b, (client, csrf) in clients.items()
                    ))  # fmt: skip
                    seconds = time.perf_counter() - began
                    print(f"\n{kind}: {len(targets)} leads at once, a door every "
                          f"~{phase_pace:g} s each, {seconds:.1f} s, {workers} server "
                          f"process(es), load {os.getloadavg()[0]:.1f}")  # fmt: skip
                    figures.update(summary(samples, suffix))
                    figures[f"seconds{suffix}"] = round(seconds, 1)
                    figures[f"visits_per_s{suffix}"] = round(len(samples["visit"]) / seconds, 1)
                building = max(targets, key=lambda b: len(targets[b]))
                client, csrf = clients[building]
                doors = targets[building][2 * per_lead : 2 * per_lead + 40]
                # The full day has visited every door by now: a second call at the first ones.
                doors = doors or targets[building][:40]
                figures.update(await alone(client, csrf, sweep_id, doors))
                for client, _csrf in clients.values():
                    await client.close()
                return figures

            job.start()
            try:
                figures = asyncio.run(day())
            finally:
                stop.set()
                runs, escalated, job_ms = out.get(timeout=120)
                job.join(30)
        with Session(engine) as session:
            raised = len(list(session.scalars(select(HelpRequest.id))))
    print(f"escalation job: {runs} runs, {escalated} escalations, "
          f"p95 {pct(job_ms, 0.95):.1f} ms; requests in the database: {raised}")  # fmt: skip
    print(f"one lead alone: visit p50/p95 {figures['visit_alone_p50_ms']}/"
          f"{figures['visit_alone_p95_ms']} ms, to-do p50/p95 {figures['todo_alone_p50_ms']}/"
          f"{figures['todo_alone_p95_ms']} ms")  # fmt: skip
    return {
        "workers": workers,
        "help_requests": raised,
        "escalations": escalated,
        "escalation_job_p95_ms": round(pct(job_ms, 0.95), 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="12 doors per lead, not all")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument(
        "--pace", type=float, default=1.0,
        help="seconds between doors per lead (a real door takes minutes; 0: no pause at all)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=None,
        help="server processes (default as production: 2 on PostgreSQL, 1 on SQLite)",
    )  # fmt: skip
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL unreachable: SQLite only")
        kinds = ["sqlite"]
    results = {kind: run(kind, args.quick, args.pace, args.workers) for kind in kinds}
    emit({
        "leads": LEADS, "quick": args.quick, "pace_s": args.pace,
        "visit_p95_ms": max(r["visit_p95_ms"] for r in results.values()),  # type: ignore[type-var]
        "todo_p95_ms": max(r["todo_p95_ms"] for r in results.values()),  # type: ignore[type-var]
        **results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
