"""Latency of the grid browser and search pages on the full demo, under load from a second
process: p50/p95 per page.
    python benchmarks/pages.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import emit
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import make_engine
from fengchao.migrate import upgrade
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Building, Household, Person

PASSWORD = "bench-password-1"


def load(base: str, paths: list[str], seconds: float, concurrency: int) -> dict[str, list[float]]:
    """Requests from this (second) process; the server runs in its own process."""
    timings: dict[str, list[float]] = {}
    deadline = time.monotonic() + seconds

    def worker(seed: int) -> list[tuple[str, float]]:
        rng = random.Random(seed)
        out: list[tuple[str, float]] = []
        with httpx.Client(base_url=base, timeout=30) as client:
            page = client.get("/login")
            csrf = client.cookies.get("fc_csrf")
            client.post(
                "/login",
                data={"username": "worker", "password": PASSWORD, "csrf_token": csrf or ""},
            )
            assert page.status_code == 200
            while time.monotonic() < deadline:
                path = rng.choice(paths)
                started = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (path, response.status_code)
                out.append(
                    (
                        path.split("?")[0].rsplit("/", 1)[0]
                        if "/people/" in path or "/households/" in path or "/buildings/" in path
                        else path.split("?")[0],
                        elapsed,
                    )
                )
        return out

    with ThreadPoolExecutor(concurrency) as pool:
        for results in pool.map(worker, range(concurrency)):
            for key, ms in results:
                timings.setdefault(key, []).append(ms)
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s of load instead of 60 s")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-pages-"))
    url = f"sqlite:///{folder / 'pages.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        summary = build_demo(session)
        auth_service.create_user(
            session=session,
            username="worker",
            password=PASSWORD,
            role=Role.community_worker,
            scope=GridScope(ScopeLevel.community, summary.community_id),
        )
        session.commit()
        buildings = list(session.scalars(select(Building.id)))
        households = list(session.scalars(select(Household.id).limit(2000)))
        names = list(session.scalars(select(Person.name).limit(500)))
        people = list(session.scalars(select(Person.id).limit(2000)))
    engine.dispose()
    rng = random.Random(1)
    paths = ["/registry"]
    paths += [f"/registry/buildings/{b}" for b in rng.sample(buildings, 10)]
    paths += [f"/registry/households/{h}" for h in rng.sample(households, 20)]
    paths += [f"/registry/people/{p}" for p in rng.sample(people, 20)]
    paths += [f"/registry/search?q={n[:2]}" for n in rng.sample(names, 10)]
    paths += ["/registry/search?q=5-2-1302", "/registry/search?q=13800000000"]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FENGCHAO_DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fengchao.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        seconds = 10.0 if args.quick else 60.0
        timings = load(base, paths, seconds, concurrency=4)
    finally:
        server.terminate()
        server.wait(timeout=10)

    every = [ms for values in timings.values() for ms in values]
    print(f"{'page':<28}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}")
    figures: dict[str, object] = {}
    for key, values in sorted(timings.items()):
        print(
            f"{key:<28}{len(values):>9}{statistics.median(values):>9.1f}{pct(values, 0.95):>9.1f}"
        )
        slug = key.strip("/").replace("/", "_") or "root"
        figures[f"{slug}_p95_ms"] = round(pct(values, 0.95), 1)
    total_s = seconds
    print(f"{'all':<28}{len(every):>9}{statistics.median(every):>9.1f}{pct(every, 0.95):>9.1f}")
    emit(
        {
            "requests": len(every),
            "per_s": round(len(every) / total_s, 1),
            "concurrency": 4,
            "p50_ms": round(statistics.median(every), 1),
            "p95_ms": round(pct(every, 0.95), 1),
            **figures,
        }
    )


if __name__ == "__main__":
    main()
