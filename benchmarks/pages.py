"""Latency of the grid browser and search pages on the full demo, under load from a second
process: p50/p95 per page.
    python benchmarks/pages.py [--quick] [--database sqlite|postgresql]
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
from _common import database, emit
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Building, Household, Person
from fengchao.testing import served_app

PASSWORD = "bench-password-1"
CONCURRENCY = 4


def page_kind(path: str) -> str:
    """/registry/people/123 → /registry/people; query strings dropped."""
    path = path.split("?")[0]
    head, _, tail = path.rpartition("/")
    return head if tail.isdigit() else path


def load(base: str, paths: list[str], seconds: float) -> dict[str, list[float]]:
    """Logged-in clients requesting random pages until the deadline; ms per page kind."""
    deadline = time.monotonic() + seconds

    def client_loop(seed: int) -> list[tuple[str, float]]:
        rng = random.Random(seed)
        out: list[tuple[str, float]] = []
        with httpx.Client(base_url=base, timeout=30) as client:
            client.get("/login")
            login = client.post(
                "/login",
                data={
                    "username": "worker",
                    "password": PASSWORD,
                    "csrf_token": client.cookies.get("fc_csrf"),
                },
            )
            assert login.status_code == 303, login.status_code
            while time.monotonic() < deadline:
                path = rng.choice(paths)
                started = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (path, response.status_code)
                out.append((page_kind(path), elapsed))
        return out

    timings: dict[str, list[float]] = {}
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for results in pool.map(client_loop, range(CONCURRENCY)):
            for kind, ms in results:
                timings.setdefault(kind, []).append(ms)
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s of load instead of 60 s")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    seconds = 10.0 if args.quick else 60.0
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-pages-"))
    with database(args.database, folder) as engine:
        with Session(engine) as session:
            summary = build_demo(session)
            auth_service.create_user(
                session=session, username="worker", password=PASSWORD,
                role=Role.community_worker,
                scope=GridScope(ScopeLevel.community, summary.community_id),
            )  # fmt: skip
            session.commit()
            buildings = list(session.scalars(select(Building.id)))
            households = list(session.scalars(select(Household.id).limit(2000)))
            names = list(session.scalars(select(Person.name).limit(500)))
            people = list(session.scalars(select(Person.id).limit(2000)))
        rng = random.Random(1)
        paths = ["/registry", "/registry/search?q=5-2-1302", "/registry/search?q=13800000000"]
        paths += [f"/registry/buildings/{b}" for b in rng.sample(buildings, 10)]
        paths += [f"/registry/households/{h}" for h in rng.sample(households, 20)]
        paths += [f"/registry/people/{p}" for p in rng.sample(people, 20)]
        paths += [f"/registry/search?q={n[:2]}" for n in rng.sample(names, 10)]
        with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
            timings = load(base, paths, seconds)

    every = [ms for values in timings.values() for ms in values]
    print(f"{'page':<28}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}")
    figures: dict[str, object] = {}
    for kind, values in sorted(timings.items()):
        p50, p95 = statistics.median(values), pct(values, 0.95)
        print(f"{kind:<28}{len(values):>9}{p50:>9.1f}{p95:>9.1f}")
        figures[f"{kind.strip('/').replace('/', '_')}_p95_ms"] = round(p95, 1)
    print(f"{'all':<28}{len(every):>9}{statistics.median(every):>9.1f}{pct(every, 0.95):>9.1f}")
    emit(
        {
            "database": args.database,
            "requests": len(every),
            "per_s": round(len(every) / seconds, 1),
            "concurrency": CONCURRENCY,
            "p50_ms": round(statistics.median(every), 1),
            "p95_ms": round(pct(every, 0.95), 1),
            **figures,
        }
    )


if __name__ == "__main__":
    main()
