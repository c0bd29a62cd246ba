"""The worker as a process: killed in the middle of a delivery (sent at most twice, the
second counted, nothing lost), one worker at a time on SQLite, two racing on PostgreSQL,
scheduled jobs leased so that one worker runs each, and taken up after a killed worker's
lease runs out."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from fengchao.notify import scheduler, service
from fengchao.notify.jobs import purge_old_notifications
from fengchao.notify.models import Delivery, InboxItem, Notification, ScheduledJob, WorkerLease
from fengchao.notify.receiver import ChatReceiver
from fengchao.notify.scheduler import JobSpec
from fengchao.notify.worker import Worker
from tests.notify import jobs_for_tests
from tests.notify.conftest import World

FENGCHAO = str(Path(sys.executable).with_name("fengchao"))


def queue(world: World, n: int, title: str = "东门测温异常") -> None:
    with world.session() as s:
        for i in range(n):
            service.send(
                session=s,
                community_id=world.grid.community.id,
                kind="fever",
                title=f"{title} {i}",
                to=[f"group@building:{world.grid.b5.id}"],
            )
        s.commit()


@contextmanager
def worker_process(world: World, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`fengchao worker` in a process of its own, with short leases."""
    env = {
        **os.environ,
        "FENGCHAO_DATABASE_URL": world.engine.url.render_as_string(hide_password=False),
        "FENGCHAO_DATA_DIR": str(folder),
        "FENGCHAO_NOTIFY__ALLOW_PRIVATE_NETWORKS": "true",
        "FENGCHAO_NOTIFY__LEASE_SECONDS": "3",
        "FENGCHAO_NOTIFY__TIMEOUT_SECONDS": "1",
        "FENGCHAO_NOTIFY__POLL_SECONDS": "0.1",
        "FENGCHAO_NOTIFY__PUBLIC_URL": "https://fengchao.example.org",
    }
    process = subprocess.Popen([FENGCHAO, "worker"], env=env, cwd=folder, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def wait_for(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_worker_killed_mid_delivery_sends_at_most_twice_and_counts_it(
    world: World, receiver: ChatReceiver, tmp_path: Path
) -> None:
    url = receiver.add("dingtalk", secret="SECkill", script=["hold"])
    world.add_channel(url, "dingtalk", secret="SECkill")
    queue(world, 3)
    with worker_process(world, tmp_path) as first:
        assert receiver.holding.wait(30), "the worker never posted"
        first.send_signal(signal.SIGKILL)  # mid-delivery: the chat has the request, no answer
        first.wait(timeout=10)
    receiver.release()
    stuck = [d for d in world.deliveries() if d.state == "sending"]
    assert len(stuck) == 3  # claimed together, none recorded
    assert [d.uncertain for d in stuck] == [True, False, False]  # only the first was in flight
    with worker_process(world, tmp_path) as second:
        wait_for(lambda: all(d.state == "sent" for d in world.deliveries()))
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    deliveries = world.deliveries()
    received = receiver.of(url)
    assert all(r.verdict == "ok" for r in received)
    titles = [r.json["markdown"]["title"] for r in received]
    for i in range(3):  # every message arrived; none more than twice
        assert 1 <= titles.count(f"【通知】东门测温异常 {i}") <= 2
    assert len(received) == 3 + sum(d.redelivered for d in deliveries)  # each duplicate counted
    assert sum(d.redelivered for d in deliveries) == 1
    with world.session() as s:
        # The stopped worker let its lease go; on PostgreSQL the killed one's own row stays
        # until it has expired a day (the purge job), harmless meanwhile.
        leases = s.scalars(select(WorkerLease)).all()
        assert len(leases) == (0 if world.engine.dialect.name == "sqlite" else 1)


def test_sqlite_runs_one_worker_at_a_time(world: World) -> None:
    first, second = world.worker(owner="first"), world.worker(owner="second")
    assert first._renew_lease()
    if world.engine.dialect.name != "sqlite":
        assert second._renew_lease()  # PostgreSQL: side by side, a lease row each
        return
    assert not second._renew_lease()  # waits while the first is alive
    world.clock.advance(6)  # the first stopped renewing (killed): its lease runs out
    assert second._renew_lease()
    assert not first._renew_lease()
    second._release_lease()
    assert first._renew_lease()


def test_workers_racing_deliver_each_message_once_and_run_each_job_alone(
    world: World, receiver: ChatReceiver
) -> None:
    urls = [receiver.add("webhook", secret="k") for _ in range(4)]
    for i, url in enumerate(urls):
        world.add_channel(url, "webhook", secret="k", rate_per_minute=6000, name=f"群{i}")
    queue(world, 60)  # 240 deliveries
    jobs_for_tests.RUNS.clear()
    jobs = {"test.record": JobSpec("tests.notify.jobs_for_tests:record_run", every=0.05, lease=30)}
    engines = [create_engine(world.engine.url) for _ in range(2)]
    workers = [
        Worker(engine=engine, jobs=jobs, owner=f"racer-{i}") for i, engine in enumerate(engines)
    ]
    threads = [threading.Thread(target=w.run, name=f"racer-{i}") for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(d.state == "sent" for d in world.deliveries()), 60)
        wait_for(lambda: len(jobs_for_tests.RUNS) >= 6, 30)
    finally:
        for w in workers:
            w.stop()
        for thread in threads:
            thread.join(timeout=30)
        for engine in engines:
            engine.dispose()
    assert sum(len(receiver.of(url)) for url in urls) == 240  # no request twice
    assert len(receiver.keys) == 240 and set(receiver.keys.values()) == {1}
    assert sum(d.redelivered for d in world.deliveries()) == 0
    runs = sorted(jobs_for_tests.RUNS)
    for (_s1, end, _t1), (start, _e2, _t2) in itertools.pairwise(runs):
        assert start >= end  # never two runs of the job at once
    if world.engine.dialect.name != "sqlite":
        assert sum(w.stats.sent > 0 for w in workers) == 2  # both took part


def test_job_of_a_killed_worker_runs_again_after_its_lease(world: World) -> None:
    jobs = {"test.record": JobSpec("tests.notify.jobs_for_tests:record_run", every=60, lease=5)}
    with world.session() as s:
        scheduler.ensure_jobs(session=s, jobs=jobs, now=world.clock())
        assert scheduler.claim_job(session=s, jobs=jobs, owner="killed", now=world.clock())
        s.commit()
    jobs_for_tests.RUNS.clear()
    worker = world.worker()
    worker.jobs = jobs
    assert not worker.jobs_round()  # leased by the killed worker
    world.clock.advance(6)
    assert worker.jobs_round()
    assert len(jobs_for_tests.RUNS) == 1
    with world.session() as s:
        row = s.get(ScheduledJob, "test.record")
        assert row is not None and row.runs == 1 and row.last_ok and row.lease_owner is None
        assert row.next_run_at == world.clock() + dt.timedelta(seconds=60)
    assert not worker.jobs_round()  # not due again for a minute


def test_failing_job_is_recorded_and_scheduled_again(world: World) -> None:
    jobs = {"test.fail": JobSpec("tests.notify.jobs_for_tests:fail", every=30)}
    worker = world.worker()
    worker.jobs = jobs
    with world.session() as s:
        scheduler.ensure_jobs(session=s, jobs=jobs, now=world.clock())
        s.commit()
    assert worker.jobs_round()
    with world.session() as s:
        row = s.get(ScheduledJob, "test.fail")
        assert row is not None and row.last_ok is False and row.failures == 1
        assert "the job's own error" in (row.last_result or "")


def test_misspelt_job_fails_at_start() -> None:
    with pytest.raises(ValueError, match="scheduled job 'x'"):
        scheduler.check_jobs({"x": JobSpec("fengchao.notify.jobs:no_such_function", every=1)})
    scheduler.check_jobs(scheduler.SCHEDULED_JOBS)


def test_purge_removes_old_notifications_with_everything_hanging_on_them(
    world: World, receiver: ChatReceiver
) -> None:
    world.add_channel(receiver.add("wecom"), "wecom")
    with world.session() as s:
        for age_days in (100, 1):
            service.send(
                session=s,
                community_id=world.grid.community.id,
                kind="fever",
                title=f"{age_days} 天前",
                to=[
                    f"group@building:{world.grid.b5.id}",
                    f"building_lead@building:{world.grid.b5.id}",
                ],
                now=world.clock() - dt.timedelta(days=age_days),
            )
        s.commit()
    with world.session() as s:
        result = purge_old_notifications(session=s, now=world.clock())
        s.commit()
    assert result == "1 notifications removed"
    with Session(world.engine) as s:
        assert [n.title for n in s.scalars(select(Notification))] == ["1 天前"]
        assert len(s.scalars(select(Delivery)).all()) == 1
        assert len(s.scalars(select(InboxItem)).all()) == 1


def test_in_process_worker_delivers_what_a_request_queued(
    world: World, receiver: ChatReceiver
) -> None:
    from fastapi.testclient import TestClient

    from fengchao.app import create_app
    from fengchao.notify.worker import start_in_thread
    from tests.conftest import PASSWORD

    url = receiver.add("feishu", secret="fs")
    world.add_channel(url, "feishu", secret="fs", level="community", node=world.grid.community.id)
    runner, thread = start_in_thread(engine=world.engine, public_url="http://127.0.0.1:8000")
    try:
        client = TestClient(create_app(engine=world.engine), follow_redirects=False)
        client.get("/login")
        client.post(
            "/login",
            data={
                "username": world.personas["worker"].user.username,
                "password": PASSWORD,
                "csrf_token": client.cookies.get("fc_csrf") or "",
            },
        )
        page = client.get("/notify/compose")
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        answer = client.post(
            "/notify/compose",
            data={
                "csrf_token": csrf,
                "node": f"community:{world.grid.community.id}",
                "roles": ["building_lead"],
                "groups": "true",
                "title": "今晚全员核酸",
                "body": "请各楼栋长通知到户。",
                "urgency": "urgent",
            },
        )
        assert answer.status_code == 303, answer.text
        wait_for(lambda: len(receiver.of(url)) == 1, 15)
    finally:
        runner.stop()
        thread.join(timeout=15)
    [got] = receiver.of(url)
    assert got.verdict == "ok" and "今晚全员核酸" in got.text
