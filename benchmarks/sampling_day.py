"""A simulated day at the reference sampling site: 4 stations register swabs (resident
codes, tubes of ten) against a served app as fast as it answers; registrations per second
and latency (goal p99 ≤ 50 ms). Then the coverage page of that round, which covers the
whole demo community (~15,000 people), read by a community worker: p95 (goal ≤ 200 ms).
    python benchmarks/sampling_day.py [--quick] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import database, emit, postgres_available
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope, actor_for
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Person, ResidenceStatus
from fengchao.sampling import service
from fengchao.sampling.models import Swab
from fengchao.testing import served_app

PASSWORD = "bench-password-1"
STATIONS = 4


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def logged_in(base: str, username: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=60)
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": client.cookies["fc_csrf"]},
    )
    assert response.status_code == 303, response.status_code
    page = client.get("/sampling").text
    csrf = page.split('"X-CSRF-Token": "')[1].split('"')[0]
    return client, csrf


def station(
    base: str,
    username: str,
    round_id: int,
    number: int,
    people: list[str],
    out: list[tuple[float, int]],
) -> None:
    client, csrf = logged_in(base, username)
    headers = {"X-CSRF-Token": csrf}
    for i, code in enumerate(people):
        barcode = f"S{number}-{i // 10:05d}"
        body = {"barcode": barcode, "key": uuid.uuid4().hex, "code": code, "station": str(number)}
        started = time.perf_counter()
        response = client.post(f"/api/sampling/rounds/{round_id}/swabs", json=body, headers=headers)
        out.append(((time.perf_counter() - started) * 1000, response.status_code))
    client.close()


def run(kind: str, registrations: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-sampling-"))
    with database(kind, folder) as engine:
        with Session(engine, expire_on_commit=False) as session:
            started = time.perf_counter()
            summary = build_demo(session)
            community = GridScope(ScopeLevel.community, summary.community_id)
            worker = auth_service.create_user(
                session=session, username="worker", password=PASSWORD,
                role=Role.community_worker, scope=community,
            )  # fmt: skip
            for n in range(1, STATIONS + 1):
                auth_service.create_user(
                    session=session, username=f"sampler{n}", password=PASSWORD,
                    role=Role.sampler, scope=community,
                )  # fmt: skip
            actor = actor_for(worker, session)
            site = service.create_site(
                session=session, actor=actor, community_id=summary.community_id, name="采样点"
            )
            found = service.create_round(
                session=session, actor=actor, site_id=site.id, name="全员", day=dt.date.today()
            )
            people = list(
                session.scalars(
                    select(Person.id)
                    .where(Person.residence_status == ResidenceStatus.living)
                    .order_by(Person.id)
                    .limit(registrations)
                )
            )
            texts = [codes.personal_code(session, pid) for pid in people]
            expected = session.scalar(
                select(func.count(Person.id)).where(
                    Person.community_id == summary.community_id,
                    Person.residence_status == ResidenceStatus.living,
                )
            )
            session.commit()
            round_id = found.id
            print(
                f"{kind}: demo built and {len(texts)} codes sealed "
                f"in {time.perf_counter() - started:.1f} s"
            )
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, folder) as base:
            out: list[tuple[float, int]] = []
            share = [texts[i::STATIONS] for i in range(STATIONS)]
            threads = [
                threading.Thread(
                    target=station, args=(base, f"sampler{n + 1}", round_id, n + 1, share[n], out)
                )
                for n in range(STATIONS)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            client, _csrf = logged_in(base, "worker")
            page = f"/sampling/rounds/{round_id}/coverage"
            for _ in range(3):
                assert client.get(page).status_code == 200
            coverage_ms = []
            for _ in range(40):
                t0 = time.perf_counter()
                assert client.get(page).status_code == 200
                coverage_ms.append((time.perf_counter() - t0) * 1000)
            building_ms = []
            for _ in range(10):
                t0 = time.perf_counter()
                assert client.get(f"{page}?building=1").status_code == 200
                building_ms.append((time.perf_counter() - t0) * 1000)
            client.close()
        with Session(engine) as session:
            stored = session.scalar(select(func.count(Swab.id)).where(Swab.round_id == round_id))
    ms = [m for m, _ in out]
    errors = sum(1 for _, s in out if s != 200)
    figures = {
        "registrations": len(out),
        "stored": stored,
        "non_200": errors,
        "per_s": round(len(out) / wall, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(pct(ms, 0.95), 1),
        "p99_ms": round(pct(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
        "round_people": expected,
        "coverage_p50_ms": round(statistics.median(coverage_ms), 1),
        "coverage_p95_ms": round(pct(coverage_ms, 0.95), 1),
        "coverage_building_p95_ms": round(pct(building_ms, 0.95), 1),
    }
    print(f"\n{kind}: {STATIONS} stations, {len(out)} registrations in {wall:.1f} s")
    for name, value in figures.items():
        print(f"  {name:<26}{value:>10}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="400 registrations instead of 2,400")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql", "both"), default="sqlite",
        help="both: SQLite, then PostgreSQL when it is reachable",
    )  # fmt: skip
    args = parser.parse_args()
    registrations = 400 if args.quick else 2400
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in kinds and not postgres_available():
        print("PostgreSQL unreachable: SQLite only")
        kinds = ["sqlite"]
    results = {kind: run(kind, registrations) for kind in kinds}
    first = results[kinds[0]]
    emit(
        {
            "per_s": first["per_s"],
            "p99_ms": first["p99_ms"],
            "coverage_p95_ms": first["coverage_p95_ms"],
            **results,
        }
    )


if __name__ == "__main__":
    main()
