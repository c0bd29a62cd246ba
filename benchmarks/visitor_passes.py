"""Visitor passes: verifications per second and their p99 (the signature alone, and the
whole check against the database as the gate does it), and form submissions per second
end to end (a served app, real HTTP, CSRF, the form token, the rate counters, the insert).
    python benchmarks/visitor_passes.py [--quick] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The benchmark sends forms as fast as it can from one address: no fill time, no limits.
os.environ.setdefault("FENGCHAO_VISITORS__MIN_FILL_SECONDS", "0")
os.environ.setdefault("FENGCHAO_VISITORS__PER_ADDRESS_PER_HOUR", "100000000")

import httpx
from _common import database, emit, postgres_available
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.registry.models import Building, Community, Compound, Household, Street, Unit
from fengchao.registry.validation import id_check_char
from fengchao.testing import served_app
from fengchao.visitors import gate as pass_gate
from fengchao.visitors import service, tokens


def build(session: Session) -> tuple[int, str]:
    street = Street(name="宏路街道")
    session.add(street)
    session.flush()
    community = Community(street_id=street.id, name="宏侨社区")
    session.add(community)
    session.flush()
    park = Compound(community_id=community.id, name="华润中央公园")
    session.add(park)
    session.flush()
    building = Building(community_id=community.id, compound_id=park.id, name="5")
    session.add(building)
    session.flush()
    unit = Unit(community_id=community.id, building_id=building.id, name="1")
    session.add(unit)
    session.flush()
    session.add(Household(community_id=community.id, compound_id=park.id,
                          building_id=building.id, unit_id=unit.id, room="101"))  # fmt: skip
    gate = access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=park.id,
                              name="东门", kind="pedestrian")  # fmt: skip
    _gate, poster = service.poster_for_gate(session=session, actor=SYSTEM_ACTOR, gate_id=gate.id)
    session.commit()
    return gate.id, poster.token


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def id_number(n: int) -> str:
    first = f"35018119850505{n % 1000:03d}"
    return first + id_check_char(first)


def measure(kind: str, quick: bool) -> dict[str, float]:
    passes = 200 if quick else 2000
    checks = 2000 if quick else 20000
    forms = 60 if quick else 600
    with tempfile.TemporaryDirectory() as folder, database(kind, Path(folder)) as engine:
        with Session(engine, expire_on_commit=False) as session:
            gate_id, poster_token = build(session)
            texts = []
            for n in range(passes):
                row, _link = service.issue(
                    session=session, actor=SYSTEM_ACTOR, gate_id=gate_id, name=f"访客{n}",
                    phone=f"139{n:08d}", host_room="5-1-101", hours=4, entries=1,
                )  # fmt: skip
                texts.append(service.token_for(row))
            session.commit()
            # The signature alone (what a gate could do offline).
            sig_ms = []
            for i in range(checks):
                started = time.perf_counter()
                tokens.unseal(texts[i % passes])
                sig_ms.append((time.perf_counter() - started) * 1000)
            # The gate's whole check: signature, community, gate, window, the row.
            gate = session.get(access.Gate, gate_id)
            now = dt.datetime.now(dt.UTC)
            db_ms = []
            for i in range(checks // 4):
                started = time.perf_counter()
                outcome = pass_gate.identify_pass(
                    session, gate=gate, value=texts[i % passes], direction="in", now=now
                )
                db_ms.append((time.perf_counter() - started) * 1000)
                assert outcome.refusal is None, outcome.refusal
        with served_app(engine.url.render_as_string(hide_password=False), Path(folder)) as base:
            with httpx.Client(base_url=base) as client:
                page = client.get(f"/v/{poster_token}")
                csrf = client.cookies.get("fc_csrf") or ""
            token_re = re.compile(r'name="form_token" value="([^"]+)"')

            def submit(n: int) -> int:
                with httpx.Client(base_url=base, cookies={"fc_csrf": csrf}) as c:
                    form_page = c.get(f"/v/{poster_token}")
                    match = token_re.search(form_page.text)
                    data = {
                        "csrf_token": csrf, "form_token": match.group(1) if match else "",
                        "name": f"访客{n}", "phone": f"137{n:08d}", "id_number": id_number(n),
                        "host_room": "5-1-101", "purpose": "探望", "stay_hours": "2",
                        "party_size": "1", "health_code": "green",
                    }  # fmt: skip
                    answer = c.post(f"/v/{poster_token}", data=data)
                    if answer.status_code != 303 and n == 0:
                        print(
                            answer.status_code,
                            re.findall(r"(?:alert|field-error)[^>]*>([^<]+)", answer.text),
                        )
                    return answer.status_code

            assert page.status_code == 200
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(submit, range(forms)))
            elapsed = time.perf_counter() - started
    ok = sum(1 for s in statuses if s == 303)
    return {
        "verify_p50_ms": round(statistics.median(sig_ms), 4),
        "verify_p99_ms": round(percentile(sig_ms, 0.99), 4),
        "verify_per_s": round(len(sig_ms) / (sum(sig_ms) / 1000)),
        "verify_db_p50_ms": round(statistics.median(db_ms), 3),
        "verify_db_p99_ms": round(percentile(db_ms, 0.99), 3),
        "verify_db_per_s": round(len(db_ms) / (sum(db_ms) / 1000)),
        "submit_per_s": round(ok / elapsed, 1),
        "submit_ok": ok,
        "submit_sent": len(statuses),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    if args.database == "postgresql" and not postgres_available():
        print("PostgreSQL is not reachable", file=sys.stderr)
        return 2
    figures = measure(args.database, args.quick)
    print(f"visitor passes on {args.database} ({'quick' if args.quick else 'full'})")
    print(f"{'figure':<20}{'value':>12}")
    for key, value in figures.items():
        print(f"{key:<20}{value:>12}")
    emit({"database": args.database, "quick": args.quick, **figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
