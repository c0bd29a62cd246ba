"""A simulated day at the reference sampling site: 4 stations register swabs (resident
codes, tubes of ten) against a served app as fast as it answers; registrations per second
and latency (goal p99 ≤ 50 ms). Then the coverage page of that round, which covers the
whole demo community (~15,000 people), read by a community worker: p95 (goal ≤ 200 ms).
    python benchmarks/sampling_day.py [--quick] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import database, emit, postgres_available
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.access import codes
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope, actor_for
from fengchao.db import finish
from fengchao.registry.demo import build_demo
from fengchao.registry.models import Person, ResidenceStatus
from fengchao.sampling import registration as service_reg
from fengchao.sampling import service
from fengchao.sampling.models import Swab
from fengchao.testing import served_app

PASSWORD = "bench-password-1"
STATIONS = 4
WARM_UP = 10  # registrations per station before the timed day (one tube each)
IN_PROCESS = 110  # registrations called directly after the day (the first tube warms up)


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


def replay(
    base: str,
    sessions: list[tuple[str, str]],
    round_id: int,
    shares: list[list[str]],
    prefix: str,
) -> tuple[list[tuple[float, int]], float]:
    """Each station sends its people's codes one after another, the next as soon as the
    last is answered; (ms, status) per registration and the wall time.

    The stations are coroutines writing HTTP/1.1 on kept-alive connections (as
    benchmarks/gate_decisions.py does): four threads of a sync HTTP library cost about as
    much CPU per request as the server, and on a 2-core machine they took it from the server
    being measured, and their GIL switches showed in its tail."""
    host, port = base.removeprefix("http://").split(":")

    async def station(number: int, out: list[tuple[float, int]]) -> None:
        cookie, csrf = sessions[number - 1]
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i, code in enumerate(shares[number - 1]):
                barcode = f"{prefix}{number}-{i // 10:05d}"
                body = json.dumps(
                    {"barcode": barcode, "key": uuid.uuid4().hex, "code": code,
                     "station": str(number)}
                ).encode()  # fmt: skip
                raw = (
                    f"POST /api/sampling/rounds/{round_id}/swabs HTTP/1.1\r\n"
                    f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nX-CSRF-Token: {csrf}\r\n"
                    f"Cookie: {cookie}\r\n\r\n"
                ).encode() + body
                started = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                out.append(((time.perf_counter() - started) * 1000, int(head[9:12])))
        finally:
            writer.close()

    async def everyone() -> tuple[list[tuple[float, int]], float]:
        out: list[tuple[float, int]] = []
        began = time.perf_counter()
        await asyncio.gather(*(station(n + 1, out) for n in range(len(shares))))
        return out, time.perf_counter() - began

    return asyncio.run(everyone())


def station_login(base: str, username: str) -> tuple[str, str]:
    """A station's login: the cookie header and the CSRF token its page would send."""
    client, csrf = logged_in(base, username)
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    client.close()
    return cookie, csrf


def in_process(engine: Engine, round_id: int, texts: list[str], token: str) -> dict[str, float]:
    """One registration called directly, as a request runs it (the login looked up, the
    swab registered, the unit of work finished), each in a session of its own: its time
    and its statements apart from the web server, the load generator and the other
    stations."""
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    count = [0]

    def counted(*_args: object) -> None:
        count[0] += 1

    event.listen(engine, "before_cursor_execute", counted)
    times, statements, cpu = [], [], []
    try:
        for i, code in enumerate(texts):
            count[0] = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            with sessions() as session:
                login = auth_service.login_for_token(session=session, token=token)
                assert login is not None
                service_reg.register_swab(
                    session=session, actor=login.actor, round_id=round_id,
                    barcode=f"IP-{i // 10:05d}", key=uuid.uuid4().hex, code=code, station="4",
                )  # fmt: skip
                finish(session)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            statements.append(count[0])
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    times, cpu = times[10:], cpu[10:]  # the first tube warms the caches
    return {
        "in_process_p50_ms": round(statistics.median(times), 2),
        "in_process_cpu_p50_ms": round(statistics.median(cpu), 2),
        "statements_per_registration": round(statistics.mean(statements[10:]), 2),
    }


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
                sampler = auth_service.create_user(
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
                    .limit(registrations + STATIONS * WARM_UP + IN_PROCESS)
                )
            )
            texts = [codes.personal_code(session, pid) for pid in people]
            expected = session.scalar(
                select(func.count(Person.id)).where(
                    Person.community_id == summary.community_id,
                    Person.residence_status == ResidenceStatus.living,
                )
            )
            token, _login = auth_service.start_session(session=session, user=sampler)
            session.commit()
            round_id = found.id
            print(
                f"{kind}: demo built and {len(texts)} codes sealed "
                f"in {time.perf_counter() - started:.1f} s"
            )
        url = engine.url.render_as_string(hide_password=False)
        warm, timed = texts[: STATIONS * WARM_UP], texts[STATIONS * WARM_UP :]
        timed, direct = timed[:registrations], timed[registrations:]
        with served_app(url, folder) as base:
            logins = [station_login(base, f"sampler{n + 1}") for n in range(STATIONS)]
            # One tube per station first, not timed: a server just started compiles its
            # statements and fills its caches; a site's server has been up since the morning.
            warm_out, _ = replay(
                base, logins, round_id, [warm[i::STATIONS] for i in range(STATIONS)], "W"
            )
            out, wall = replay(
                base, logins, round_id, [timed[i::STATIONS] for i in range(STATIONS)], "S"
            )
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
        direct_figures = in_process(engine, round_id, direct, token)
    ms = [m for m, _ in out]
    errors = sum(1 for _, s in out if s != 200)
    figures = {
        "registrations": len(out),
        "stored": stored,
        "non_200": errors + sum(1 for _, s in warm_out if s != 200),
        "per_s": round(len(out) / wall, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(pct(ms, 0.95), 1),
        "p99_ms": round(pct(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
        "warm_up_max_ms": round(max(m for m, _ in warm_out), 1),
        **direct_figures,
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
