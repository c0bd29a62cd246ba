"""The outbox delivered by `fengchao worker` (its own process, as in production) to a
local receiver of signed JSON webhooks:

1. throughput: a backlog of messages queued at once, drained: messages per second;
2. latency: messages queued one by one at a steady rate while the worker runs: time from
   the commit that queued a message to the receiver holding it (p50/p95);
3. faults: the same backlog with the receiver answering 500 to one request in three and
   dropping the connection of one in ten: messages per second, messages lost (must be 0),
   messages that reached the receiver more than once (the drops: the request arrived, the
   answer did not) and the resends the platform counted.

    python benchmarks/outbox.py [--quick] [--database sqlite|postgresql] [--workers N]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Keys of this run, before any settings are built: the worker process reads the addresses
# this process encrypted.
os.environ.setdefault("FENGCHAO_SECURITY__SECRET_KEY", secrets.token_urlsafe(48))
os.environ.setdefault(
    "FENGCHAO_SECURITY__DATA_KEY", base64.b64encode(secrets.token_bytes(32)).decode()
)

from _common import database, emit, postgres_available
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import ScopeLevel
from fengchao.notify import service
from fengchao.notify.models import Channel, ChannelKind, Delivery, DeliveryState
from fengchao.notify.receiver import ChatReceiver
from fengchao.registry.models import Building, Community, Compound, Street

FENGCHAO = str(Path(sys.executable).with_name("fengchao"))
SECRET = "benchmark-hook-secret"


def build(
    engine: Engine, receiver: ChatReceiver, chats: int, **faults: int
) -> tuple[int, list[int]]:
    """A community with one building per chat, each building's chat a webhook on the
    receiver; returns the community and the buildings."""
    with Session(engine) as s:
        street = Street(name=f"街道-{secrets.token_hex(3)}")
        s.add(street)
        s.flush()
        community = Community(street_id=street.id, name="宏侨社区")
        s.add(community)
        s.flush()
        compound = Compound(community_id=community.id, name="华润中央公园")
        s.add(compound)
        s.flush()
        buildings = []
        for n in range(chats):
            building = Building(community_id=community.id, compound_id=compound.id, name=str(n + 1))
            s.add(building)
            s.flush()
            url = receiver.add("webhook", secret=SECRET, **faults)
            s.add(
                Channel(
                    community_id=community.id,
                    node_level=ScopeLevel.building,
                    node_id=building.id,
                    name=f"{n + 1}号楼群",
                    kind=ChannelKind.webhook,
                    url_enc=get_cipher().encrypt(url),
                    url_hint=url[:60],
                    secret_enc=get_cipher().encrypt(SECRET),
                    rate_per_minute=6000,
                )
            )
            buildings.append(building.id)
        s.commit()
        return community.id, buildings


def queue(
    engine: Engine, community_id: int, buildings: list[int], n: int, tag: str
) -> dict[int, float]:
    """``n`` messages in one transaction, spread over the buildings; notification id →
    the time of the commit that queued it."""
    with Session(engine) as s:
        ids = [
            service.send(
                session=s,
                community_id=community_id,
                kind="benchmark",
                title=f"{tag} {i}",
                body="东门卡口测温异常，请跟进。" * 4,
                link="/registry",
                to=[f"group@building:{buildings[i % len(buildings)]}"],
            ).notification_id
            for i in range(n)
        ]
        s.commit()
    committed = time.time()
    return dict.fromkeys(ids, committed)


def undelivered(engine: Engine) -> int:
    with Session(engine) as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.state != DeliveryState.sent)
            )
            or 0
        )


@contextmanager
def workers(engine: Engine, folder: Path, count: int) -> Iterator[None]:
    env = {
        **os.environ,
        "FENGCHAO_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "FENGCHAO_DATA_DIR": str(folder),
        "FENGCHAO_NOTIFY__ALLOW_PRIVATE_NETWORKS": "true",
        "FENGCHAO_NOTIFY__POLL_SECONDS": "0.05",
        "FENGCHAO_NOTIFY__TIMEOUT_SECONDS": "2",
        "FENGCHAO_NOTIFY__LEASE_SECONDS": "10",
        "FENGCHAO_NOTIFY__RETRY_BASE_SECONDS": "0.2",
        "FENGCHAO_NOTIFY__RETRY_MAX_SECONDS": "2",
        "FENGCHAO_NOTIFY__MAX_ATTEMPTS": "12",
        "FENGCHAO_NOTIFY__PUBLIC_URL": "https://fengchao.example.org",
    }
    processes = [
        subprocess.Popen(
            [FENGCHAO, "worker"],
            env=env,
            cwd=folder,
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def drain(engine: Engine, limit_s: float) -> float:
    """Wait until every delivery is sent; the seconds it took."""
    started = time.perf_counter()
    while undelivered(engine):
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"not drained within {limit_s:.0f} s: {undelivered(engine)} left")
        time.sleep(0.02)
    return time.perf_counter() - started


def first_receipts(receiver: ChatReceiver) -> dict[str, float]:
    """Idempotency key → when the receiver first accepted it."""
    seen: dict[str, float] = {}
    for got in receiver.received:
        if got.verdict == "ok" and got.action == "ok":
            key = got.headers["idempotency-key"]
            seen[key] = min(seen.get(key, got.at), got.at)
    return seen


def keys_by_notification(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {
            key: note for key, note in s.execute(select(Delivery.key, Delivery.notification_id))
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    kind: str, messages: int, steady: int, rate: float, chats: int, count: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as engine:
        folder = Path(tmp)
        figures: dict[str, object] = {
            "database": kind,
            "workers": count,
            "chats": chats,
            "poll_s": 0.05,
        }
        # 1 and 2: a clean receiver.
        with ChatReceiver().running() as receiver:
            community, buildings = build(engine, receiver, chats)
            with workers(engine, folder, count):
                time.sleep(1.5)  # let the worker start (imports, migrations checked)
                queued = queue(engine, community, buildings, messages, "backlog")
                seconds = drain(engine, 600)
                figures["messages"] = messages
                figures["per_s"] = round(messages / seconds, 1)
                committed: dict[int, float] = {}
                for i in range(steady):
                    committed.update(queue(engine, community, buildings, 1, f"steady {i}"))
                    time.sleep(1 / rate)
                drain(engine, 120)
            keys = keys_by_notification(engine)
            receipts = first_receipts(receiver)
            latencies = [
                (receipts[key] - committed[note]) * 1000
                for key, note in keys.items()
                if note in committed and key in receipts
            ]
            figures["steady_messages"] = steady
            figures["steady_rate_per_s"] = rate
            figures["p50_delivery_ms"] = round(statistics.median(latencies), 1)
            figures["p95_delivery_ms"] = round(percentile(latencies, 0.95), 1)
            clean_lost = len(queued) + steady - len(receipts)
            clean_requests = len(receiver.received)
        # 3: a receiver failing one request in three and dropping one connection in ten.
        with ChatReceiver().running() as receiver:
            community, buildings = build(engine, receiver, chats, fail_every=3, drop_every=10)
            before = set(keys_by_notification(engine))
            with workers(engine, folder, count):
                time.sleep(1.5)
                queue(engine, community, buildings, messages, "faulty")
                seconds = drain(engine, 900)
            keys = set(keys_by_notification(engine)) - before
            arrived: dict[str, int] = {}
            for got in receiver.received:
                # Taken by the chat: answered, or dropped after it was read (the worst case).
                if got.verdict == "ok" and got.action in ("ok", "drop"):
                    key = got.headers["idempotency-key"]
                    arrived[key] = arrived.get(key, 0) + 1
            accepted = set(first_receipts(receiver))
            with Session(engine) as s:
                counted = s.scalar(
                    select(func.coalesce(func.sum(Delivery.redelivered), 0)).where(
                        Delivery.key.in_(keys)
                    )
                )
            figures["faulty_per_s"] = round(messages / seconds, 1)
            figures["faulty_requests"] = len(receiver.received)
            figures["faulty_failed_500"] = sum(1 for r in receiver.received if r.action == "500")
            figures["faulty_dropped"] = sum(1 for r in receiver.received if r.action == "drop")
            figures["lost"] = clean_lost + len(keys - accepted)
            figures["duplicated"] = sum(1 for n in arrived.values() if n > 1)
            figures["duplicates_counted"] = int(counted or 0)
            figures["duplicated_after_idempotency_key"] = sum(
                1 for n in receiver.keys.values() if n > 1
            )
            figures["clean_requests"] = clean_requests
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.database == "postgresql" and not postgres_available():
        raise SystemExit("PostgreSQL is not reachable")
    if args.database == "sqlite" and args.workers != 1:
        raise SystemExit("SQLite runs one worker at a time")
    if args.quick:
        messages, steady, rate, chats = 300, 60, 20.0, 4
    else:
        messages, steady, rate, chats = 3000, 300, 20.0, 10
    figures = run(args.database, messages, steady, rate, chats, args.workers)
    rows = [
        ("backlog drained (msg/s)", figures["per_s"]),
        (
            "delivery p50 / p95 at a steady rate (ms)",
            f"{figures['p50_delivery_ms']} / {figures['p95_delivery_ms']}",
        ),
        ("with 1/3 failing, 1/10 dropped (msg/s)", figures["faulty_per_s"]),
        (
            "requests (500s, drops)",
            f"{figures['faulty_requests']} "
            f"({figures['faulty_failed_500']}, {figures['faulty_dropped']})",
        ),
        ("lost", figures["lost"]),
        (
            "arrived twice / counted by the platform",
            f"{figures['duplicated']} / {figures['duplicates_counted']}",
        ),
        ("twice after the idempotency key", figures["duplicated_after_idempotency_key"]),
    ]
    print(
        f"outbox on {args.database}, {args.workers} worker(s), {figures['chats']} chats, "
        f"{figures['messages']} messages"
    )
    for label, value in rows:
        print(f"  {label:<45} {value}")
    emit(figures)


if __name__ == "__main__":
    main()
