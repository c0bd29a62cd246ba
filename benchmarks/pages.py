"""Latency of the registry's pages on the full demo under load from a second process:
p50/p95 per page and overall, and how many answers were server errors (goal: none).
    python benchmarks/pages.py [--quick] [--clients 20] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import database, emit, postgres_available
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Building, Compound, Household, Person, Unit
from fengchao.testing import served_app

PASSWORD = "bench-password-1"


def page_kind(path: str) -> str:
    """/registry/people/123 → /registry/people; /registry/search?q=… → /registry/search;
    a search narrowed by filters counts apart (/registry/search+filters)."""
    path, _, query = path.partition("?")
    head, _, tail = path.rpartition("/")
    kind = head if tail.isdigit() else path
    filtered = any(f"{k}=" in query for k in ("health", "care", "residence", "building"))
    return kind + "+filters" if filtered else kind


def load(
    base: str, paths: dict[str, list[str]], seconds: float, clients: int
) -> dict[str, list[tuple[float, int]]]:
    """Logged-in clients requesting random pages of their role until the deadline: (ms,
    status) per kind. Client i is the role i % len(paths) (workers, building leads,
    guards, …)."""
    roles = list(paths)

    def logged_in(username: str) -> httpx.Client:
        client = httpx.Client(base_url=base, timeout=60)
        client.get("/login")
        login = client.post(
            "/login",
            data={
                "username": username,
                "password": PASSWORD,
                "csrf_token": client.cookies["fc_csrf"],
            },
        )
        assert login.status_code == 303, login.status_code
        return client

    # One after another, as staff arrive: parallel logins of one account are throttled.
    sessions = [logged_in(roles[i % len(roles)]) for i in range(clients)]
    deadline = time.monotonic() + seconds

    def client_loop(seed: int) -> list[tuple[str, float, int]]:
        rng = random.Random(seed)
        mine = paths[roles[seed % len(roles)]]
        out: list[tuple[str, float, int]] = []
        client = sessions[seed]
        while time.monotonic() < deadline:
            path = rng.choice(mine)
            started = time.perf_counter()
            status = client.get(path).status_code
            out.append((page_kind(path), (time.perf_counter() - started) * 1000, status))
        client.close()
        return out

    timings: dict[str, list[tuple[float, int]]] = {}
    with ThreadPoolExecutor(clients) as pool:
        for results in pool.map(client_loop, range(clients)):
            for kind, ms, status in results:
                timings.setdefault(kind, []).append((ms, status))
    return timings


def alone(base: str) -> dict[str, float]:
    """The completeness report and its export with nobody else on the server."""
    with httpx.Client(base_url=base, timeout=60) as client:
        client.get("/login")
        client.post(
            "/login",
            data={
                "username": "worker",
                "password": PASSWORD,
                "csrf_token": client.cookies["fc_csrf"],
            },
        )

        def timed(path: str, times: int) -> list[float]:
            out = []
            for _ in range(times):
                started = time.perf_counter()
                assert client.get(path).status_code == 200, path
                out.append((time.perf_counter() - started) * 1000)
            return out

        timed("/registry/completeness", 3)  # warm
        page = timed("/registry/completeness", 40)
        export = timed("/registry/completeness.xlsx", 5)
    figures = {
        "completeness_alone_p50_ms": round(statistics.median(page), 1),
        "completeness_alone_p95_ms": round(pct(page, 0.95), 1),
        "completeness_export_ms": round(statistics.median(export), 1),
    }
    for name, value in figures.items():
        print(f"{name:<28}{value:>9.1f}")
    return figures


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(kind: str, seconds: float, clients: int, workers: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-pages-"))
    with database(kind, folder) as engine:
        with Session(engine) as session:
            summary = build_demo(session)
            building5 = session.scalar(
                select(Building.id)
                .join(Compound, Compound.id == Building.compound_id)
                .where(Compound.name == "华润中央公园", Building.name == "5")
            )
            assert building5 is not None
            community = GridScope(ScopeLevel.community, summary.community_id)
            for username, role, scope in (
                ("worker", Role.community_worker, community),
                ("lead5", Role.building_lead, GridScope(ScopeLevel.building, building5)),
                ("guard", Role.guard, community),
            ):
                auth_service.create_user(
                    session=session, username=username, password=PASSWORD, role=role,
                    scope=scope,
                )  # fmt: skip
            session.commit()
            buildings = list(session.scalars(select(Building.id)))
            households = list(session.scalars(select(Household.id).limit(2000)))
            names = list(session.scalars(select(Person.name).limit(500)))
            people = list(session.scalars(select(Person.id).limit(2000)))
            rooms = [
                f"{b}-{u}-{r}"
                for b, u, r in session.execute(
                    select(Building.name, Unit.name, Household.room)
                    .join(Building, Building.id == Household.building_id)
                    .join(Unit, Unit.id == Household.unit_id)
                    .limit(500)
                )
            ]
        rng = random.Random(1)
        worker = ["/registry", "/registry/search?q=5-2-1302", "/registry/search?q=13800000000"]
        worker += ["/registry/completeness"] * 3 + ["/registry/overview"] * 3
        worker += [f"/registry/buildings/{b}" for b in rng.sample(buildings, 10)]
        worker += [f"/registry/households/{h}" for h in rng.sample(households, 20)]
        worker += [f"/registry/people/{p}" for p in rng.sample(people, 20)]
        worker += [f"/registry/search?q={n[:2]}" for n in rng.sample(names, 10)]
        worker += [
            "/registry/search?health=home_isolation",
            "/registry/search?care=elderly_alone",
            f"/registry/search?q={names[0][0]}&building={buildings[0]}",
            "/registry/search?residence=away&care=chronic_illness",
        ]
        lead = ["/registry/todo"] * 3 + [f"/registry/buildings/{building5}"]
        guard = [f"/registry/rooms?q={r}" for r in rng.sample(rooms, 20)]
        paths = {"worker": worker, "lead5": lead, "guard": guard}
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, folder, workers=workers) as base:
            solo = alone(base)
            timings = load(base, paths, seconds, clients)

    every = [ms for values in timings.values() for ms, _ in values]
    errors = sum(1 for values in timings.values() for _, status in values if status >= 500)
    other = sum(1 for values in timings.values() for _, s in values if s != 200 and s < 500)
    print(f"\n{kind}, {clients} clients for {seconds:.0f} s, {workers} server process(es)")
    print(f"{'page':<28}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'5xx':>6}")
    figures: dict[str, object] = {}
    for name, values in sorted(timings.items()):
        ms = [m for m, _ in values]
        p50, p95 = statistics.median(ms), pct(ms, 0.95)
        bad = sum(1 for _, status in values if status >= 500)
        print(f"{name:<28}{len(ms):>9}{p50:>9.1f}{p95:>9.1f}{bad:>6}")
        figures[f"{name.strip('/').replace('/', '_')}_p95_ms"] = round(p95, 1)
    p50, p95 = statistics.median(every), pct(every, 0.95)
    print(f"{'all':<28}{len(every):>9}{p50:>9.1f}{p95:>9.1f}{errors:>6}")
    return {
        "requests": len(every),
        "per_s": round(len(every) / seconds, 1),
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "errors_5xx": errors,
        "other_non_200": other,
        **solo,
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s of load instead of 60 s")
    parser.add_argument("--clients", type=int, default=20, help="concurrent logged-in clients")
    parser.add_argument("--workers", type=int, default=1, help="server processes (uvicorn)")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql", "both"), default="both",
        help="both: SQLite, then PostgreSQL when it is reachable",
    )  # fmt: skip
    args = parser.parse_args()
    seconds = 10.0 if args.quick else 60.0
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if args.database == "both" and not postgres_available():
        print("PostgreSQL unreachable: SQLite only")
        kinds = ["sqlite"]
    results = {kind: run(kind, seconds, args.clients, args.workers) for kind in kinds}
    emit({"clients": args.clients, "workers": args.workers, "seconds": seconds, **results})


if __name__ == "__main__":
    main()
