"""`fengchao worker`: delivers the outbox and runs the scheduled jobs, in its own process
(production) or as a thread beside the web server (`fengchao demo`, `serve --with-worker`).

Threads: the outbox loop claims due deliveries and hands each chat's batch to a sender
thread (chats are posted to side by side, one chat's messages in order); the job loop
leases due jobs and runs them; the heartbeat renews the worker's lease. Every database
write is a short transaction of its own; no transaction is open while a chat is posted to.

On SQLite one worker runs at a time: it must hold the lease row "worker", renewed every
third of ``notify.lease_seconds``. A second worker waits until the first stops or its
lease runs out (a killed worker) and then takes over. On PostgreSQL any number of workers
run side by side (``FOR UPDATE SKIP LOCKED``); each keeps a lease row of its own so the
outbox page can show who runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fengchao.db import begin_write, get_engine, session_scope, utcnow
from fengchao.notify import channels as chans
from fengchao.notify import outbox, scheduler
from fengchao.notify.models import WorkerLease
from fengchao.notify.service import WAKE
from fengchao.settings import get_settings
from fengchao.web.i18n import current_language

log = logging.getLogger("fengchao.worker")

SQLITE_LEASE = "worker"


@dataclass
class WorkerStats:
    """What a worker did since it started (for the benchmark and the log)."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    lost_leases: int = 0
    jobs_run: int = 0
    delivery_ms: list[float] = field(default_factory=list)


class Worker:
    """One worker. ``run()`` blocks until ``stop()`` (or, with ``once``, until nothing is
    due); ``clock`` replaces the wall clock in tests."""

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        public_url: str = "",
        jobs: Mapping[str, scheduler.JobSpec] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        self.settings = get_settings().notify
        self.engine = engine or get_engine()
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.public_url = self.settings.public_url or public_url
        self.jobs = dict(scheduler.SCHEDULED_JOBS if jobs is None else jobs)
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.exclusive = self.engine.dialect.name == "sqlite"
        self.lease_name = SQLITE_LEASE if self.exclusive else f"worker:{self.owner}"
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._holds_lease = threading.Event()
        self._busy: set[int] = set()
        self._busy_lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._waiting_logged = False

    # --- sessions and the lease --------------------------------------------------------

    def _session(self) -> AbstractContextManager[Session]:
        return session_scope(sessions=self.sessions)

    def _renew_lease(self) -> bool:
        """Take or renew this worker's lease; False when another live worker holds the
        one SQLite lease."""
        now = self.clock()
        until = now + dt.timedelta(seconds=self.settings.lease_seconds)
        try:
            with self._session() as session:
                begin_write(session)
                row = session.get(WorkerLease, self.lease_name)
                if row is None:
                    session.add(
                        WorkerLease(
                            name=self.lease_name,
                            owner=self.owner,
                            started_at=now,
                            expires_at=until,
                            detail={"pid": os.getpid(), "host": socket.gethostname()[:64]},
                        )
                    )
                elif row.owner == self.owner or row.expires_at < now:
                    if row.owner != self.owner:
                        log.warning("taking over the worker lease of %s (expired)", row.owner)
                        row.owner, row.started_at = self.owner, now
                        row.detail = {"pid": os.getpid(), "host": socket.gethostname()[:64]}
                    row.expires_at = until
                else:
                    if not self._waiting_logged:
                        log.warning(
                            "another worker (%s) holds the SQLite worker lease until %s; "
                            "waiting (SQLite runs one worker at a time)",
                            row.owner,
                            row.expires_at.isoformat(timespec="seconds"),
                        )
                        self._waiting_logged = True
                    return False
        except (IntegrityError, OperationalError):
            log.warning("could not renew the worker lease", exc_info=True)
            return False
        return True

    def _release_lease(self) -> None:
        try:
            with self._session() as session:
                begin_write(session)
                session.execute(
                    delete(WorkerLease).where(
                        WorkerLease.name == self.lease_name, WorkerLease.owner == self.owner
                    )
                )
        except OperationalError:
            log.warning("could not release the worker lease", exc_info=True)

    def _heartbeat(self) -> None:
        while not self._stop.is_set():
            if self._renew_lease():
                self._holds_lease.set()
            else:
                self._holds_lease.clear()
            self._stop.wait(self.settings.lease_seconds / 3)

    # --- the outbox ----------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = chans.http_client(self.settings.timeout_seconds)
            self._local.client = client
            self._clients.append(client)
        return client

    def _send_batch(self, claims: list[outbox.Claim]) -> None:
        """Post one chat's claimed deliveries in order and record each outcome."""
        token = current_language.set(get_settings().default_language)
        try:
            notifier = chans.notifier_for(claims[0].kind)
            for claim in claims:
                if not self._deliver(notifier, claim):
                    break  # not recorded: the rest stay claimed until their leases run out
        finally:
            current_language.reset(token)
            with self._busy_lock:
                self._busy.discard(claims[0].channel_id)
            WAKE.set()

    def _deliver(self, notifier: chans.Notifier, claim: outbox.Claim) -> bool:
        """Post one delivery and record what came of it; False when it could not be
        recorded."""
        started_at = self.clock()
        started = time.perf_counter()
        try:
            outcome = notifier.send(
                self._client(),
                claim.message,
                claim.config,
                now=started_at,
                allow_private=self.settings.allow_private_networks,
            )
        except Exception as exc:  # a notifier's bug must not lose the delivery
            log.exception("notifier %s failed", claim.kind)
            outcome = chans.Outcome(False, chans.FailureKind.robot_error, detail=repr(exc)[:200])
        took = chans.elapsed_ms(started)
        try:
            with self._session() as session:
                state = outbox.record(
                    session=session,
                    claim=claim,
                    owner=self.owner,
                    outcome=outcome,
                    started_at=started_at,
                    duration_ms=took,
                    now=self.clock(),
                )
        except Exception:
            # Not recorded: the lease runs out and the delivery is sent again, counted.
            log.exception("could not record delivery %s", claim.delivery_id)
            return False
        if state is None:
            self.stats.lost_leases += 1
        elif outcome.ok:
            self.stats.sent += 1
            self.stats.delivery_ms.append(took)
        else:
            self.stats.failed += 1
            if state == "dead":
                self.stats.dead += 1
            log.info("delivery %s failed: %s %s", claim.delivery_id, outcome.kind, outcome.detail)
        return True

    def outbox_round(self, pool: ThreadPoolExecutor) -> list[Future[None]]:
        """Claim what is due for chats not already being sent to; hand each chat's batch
        to a sender thread."""
        with self._busy_lock:
            busy = set(self._busy)
        with self._session() as session:
            claims = outbox.claim(
                session=session,
                owner=self.owner,
                now=self.clock(),
                public_url=self.public_url,
                skip_channels=busy,
            )
        batches: dict[int, list[outbox.Claim]] = {}
        for claim in claims:
            batches.setdefault(claim.channel_id, []).append(claim)
        self.stats.claimed += len(claims)
        futures = []
        for channel_id, batch in batches.items():
            with self._busy_lock:
                self._busy.add(channel_id)
            futures.append(pool.submit(self._send_batch, batch))
        return futures

    def _outbox_loop(self, once: bool) -> None:
        threads = self.settings.sender_threads
        pending: list[Future[None]] = []
        with ThreadPoolExecutor(threads, thread_name_prefix="fengchao-send") as pool:
            while not self._stop.is_set():
                pending = [f for f in pending if not f.done()]
                if not self._holds_lease.is_set():
                    if once:
                        return
                    self._holds_lease.wait(self.settings.poll_seconds)
                    continue
                try:
                    new = self.outbox_round(pool) if len(pending) < threads else []
                except OperationalError:
                    log.warning("outbox round failed; trying again", exc_info=True)
                    new = []
                pending += new
                if once and not pending and not new:
                    return
                if not new:
                    WAKE.wait(self.settings.poll_seconds)
                    WAKE.clear()

    # --- scheduled jobs --------------------------------------------------------------------

    def jobs_round(self) -> bool:
        """Run one due job if there is one; whether one ran."""
        with self._session() as session:
            name = scheduler.claim_job(
                session=session, jobs=self.jobs, owner=self.owner, now=self.clock()
            )
        if name is None:
            return False
        spec = self.jobs[name]
        ok, result = scheduler.run_job(spec, self.sessions)
        with self._session() as session:
            scheduler.finish_job(
                session=session,
                name=name,
                owner=self.owner,
                ok=ok,
                result=result,
                every=spec.every,
                now=self.clock(),
            )
        self.stats.jobs_run += 1
        return True

    def _jobs_loop(self, once: bool) -> None:
        while not self._stop.is_set():
            if not self._holds_lease.is_set():
                if once:
                    return
                self._holds_lease.wait(self.settings.poll_seconds)
                continue
            try:
                ran = self.jobs_round()
            except OperationalError:
                log.warning("jobs round failed; trying again", exc_info=True)
                ran = False
            if once and not ran:
                return
            if not ran:
                self._stop.wait(self.settings.poll_seconds)

    # --- running ------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> WorkerStats:
        """Work until :meth:`stop` (or, with ``once``, until nothing is due now)."""
        scheduler.check_jobs(self.jobs)
        with self._session() as session:
            scheduler.ensure_jobs(session=session, jobs=self.jobs, now=self.clock())
        if once:
            if self._renew_lease():
                self._holds_lease.set()
                self._jobs_loop(once=True)
                self._outbox_loop(once=True)
                self._release_lease()
            self._close_clients()
            return self.stats
        heartbeat = threading.Thread(target=self._heartbeat, name="fengchao-heartbeat", daemon=True)
        jobs = threading.Thread(
            target=self._jobs_loop, args=(False,), name="fengchao-jobs", daemon=True
        )
        heartbeat.start()
        jobs.start()
        log.info("worker %s started", self.owner)
        try:
            self._outbox_loop(once=False)
        finally:
            self._stop.set()
            WAKE.set()
            jobs.join(timeout=self.settings.lease_seconds)
            heartbeat.join(timeout=5)
            self._release_lease()
            self._close_clients()
            log.info("worker %s stopped", self.owner)
        return self.stats

    def stop(self) -> None:
        """Ask the worker to finish: no new claims; sends under way are completed."""
        self._stop.set()
        self._holds_lease.set()  # wake the loops that wait for the lease
        WAKE.set()

    def _close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def start_in_thread(
    *, public_url: str = "", engine: Engine | None = None
) -> tuple[Worker, threading.Thread]:
    """A worker running in a daemon thread of this process (the demo, `serve
    --with-worker`); call ``worker.stop()`` and join the thread to end it."""
    worker = Worker(engine=engine, public_url=public_url)
    thread = threading.Thread(target=worker.run, name="fengchao-worker", daemon=True)
    thread.start()
    return worker, thread
