"""Engine, sessions, the declarative base and shared column types."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from fengchao.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no time zones, so values are normalised on the way in and tagged on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# A connection carrying this execution option opens its transactions for writing: on SQLite
# that is BEGIN IMMEDIATE, which waits (busy_timeout) for the one write lock at the start.
WRITE_OPTION = "fengchao_write"
_AT_COMMIT = "fengchao_at_commit"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
    dbapi_connection.isolation_level = None


SQLITE_BUSY_TIMEOUT_MS = 10_000
# How often a writer of this process looks again for the write lock that another process
# (the worker, a second server) holds.
SQLITE_WRITE_POLL_S = 0.001


def _sqlite_begin(conn: Connection) -> None:
    # Reads take a deferred transaction (a snapshot, no lock), so pages are served side by
    # side. A deferred transaction that later writes fails at once with "database is
    # locked" under concurrency (SQLite does not wait when upgrading a read), so writers
    # say so first: see begin_write().
    if conn.get_execution_options().get(WRITE_OPTION):
        _begin_immediate(conn)
    else:
        conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Connection) -> None:
    """BEGIN IMMEDIATE, looking again every :data:`SQLITE_WRITE_POLL_S` for a write lock
    that another process holds. SQLite's own busy handler sleeps in growing steps (1, 2, 5,
    10 … 100 ms) and is not woken when the lock is freed: a visit waiting on the worker's
    escalation batch slept up to 50 ms past its end, holding this process's write lock
    (and so every other writer of the process) all that time."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    break
            time.sleep(SQLITE_WRITE_POLL_S)
        # Once more through SQLAlchemy, which raises its own OperationalError (callers
        # such as the worker catch that one) if the lock is still held or the error stays.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _private_sqlite_file(path: Path) -> None:
    """The data folder 0700 and the database file 0600: they hold personal data. SQLite
    gives its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout, private files
    and deferred transactions unless a session asks to write (:func:`begin_write`)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            _private_sqlite_file(Path(path))
        # Connections are cheap but each new one runs the pragmas: keep enough for the
        # server's thread pool.
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, pool_size=20, max_overflow=40
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling breaks SAVEPOINT, so SQLAlchemy emits BEGIN.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _writing(session: Session) -> bool:
    if not session.in_transaction():
        return False
    return bool(session.connection().get_execution_options().get(WRITE_OPTION))


# SQLite has one write lock, and a writer waiting for it sleeps in growing steps (1, 2, 5,
# 10 … 100 ms) rather than being woken: twenty requests writing their audit rows at once
# spent most of their time asleep. Writers of one process therefore queue on a plain lock
# first, and meet SQLite's lock only across processes (:func:`_begin_immediate`). Two engines
# on one file (a test's and the app's) share the lock of its URL.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_HOLDS_WRITE_LOCK = "fengchao_holds_write_lock"
WRITE_LOCK_TIMEOUT_S = 30.0


class DatabaseBusy(RuntimeError):
    """Another writer kept the database for longer than we wait."""


# The lock of each engine, found without rendering its URL at every write (a gate's
# decision is one write).
_ENGINE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def _write_lock(engine: Engine) -> threading.Lock:
    lock = _ENGINE_WRITE_LOCKS.get(engine)
    if lock is not None:
        return lock
    key = str(engine.url)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(key, threading.Lock())
        _ENGINE_WRITE_LOCKS[engine] = lock
    return lock


def begin_write(session: Session) -> None:
    """Declare that this unit of work will change rows; call it before reading the rows it
    changes. On SQLite the transaction becomes BEGIN IMMEDIATE (a read transaction open so
    far is committed first; rows added but not yet flushed are kept for the new one), taken
    in turn with the process's other writers. Elsewhere a no-op."""
    if not _is_sqlite(session) or _writing(session):
        return
    if session.in_transaction():
        if session.dirty or session.deleted:
            raise RuntimeError("rows were changed before begin_write(); call it first")
        # End the read transaction. Committed, not rolled back: statements already run in
        # it (an UPDATE that got the lock) are kept. Rows only added are held back, or the
        # commit would write them outside the write lock.
        pending, at_commit = list(session.new), session.info.pop(_AT_COMMIT, [])
        for row in pending:
            session.expunge(row)
        session.commit()
        session.add_all(pending)
        session.info[_AT_COMMIT] = at_commit
    lock = _write_lock(session.get_bind().engine)
    if not lock.acquire(timeout=WRITE_LOCK_TIMEOUT_S):
        raise DatabaseBusy("another writer held the database too long")
    session.info[_HOLDS_WRITE_LOCK] = lock
    try:
        session.connection(execution_options={WRITE_OPTION: True})
    except BaseException:
        session.info.pop(_HOLDS_WRITE_LOCK).release()
        raise


@event.listens_for(Session, "after_transaction_end")
def _release_write_lock(session: Session, transaction: Any) -> None:
    # After the database's own COMMIT or ROLLBACK, so the next writer finds it free.
    if transaction.parent is None and _HOLDS_WRITE_LOCK in session.info:
        session.info.pop(_HOLDS_WRITE_LOCK).release()


def add_at_commit(session: Session, row: object) -> None:
    """Insert ``row`` when the session commits, not at the next autoflush: an audited read
    then stays a read (a snapshot) until its end, and its audit rows are written in one
    short write transaction just before the response."""
    session.info.setdefault(_AT_COMMIT, []).append(row)


@event.listens_for(Session, "before_commit")
def _add_rows_at_commit(session: Session) -> None:
    # Also for callers that commit directly rather than through finish().
    session.add_all(session.info.pop(_AT_COMMIT, []))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rows_at_commit(session: Session, previous_transaction: Any) -> None:
    # A unit of work that failed leaves no rows behind, its audit events included.
    if previous_transaction.parent is None:
        session.info.pop(_AT_COMMIT, None)


def flush_rows_at_commit(session: Session) -> None:
    """Add the rows kept for commit to the session now (tests that never commit use it)."""
    rows = session.info.pop(_AT_COMMIT, [])
    if rows:
        session.add_all(rows)
        session.flush()


def finish(session: Session) -> None:
    """Commit a unit of work (a request, a command). A read that has rows to write (audit
    events) moves to a short write transaction first on SQLite."""
    has_changes = bool(session.info.get(_AT_COMMIT) or session.new or session.dirty)
    if has_changes or session.deleted:
        begin_write(session)
    flush_rows_at_commit(session)
    session.commit()


def refresh_statistics(session: Session, *tables: str) -> None:
    """After a bulk write (an import of thousands of rows): have PostgreSQL measure the
    tables now, in the same transaction, rather than when autovacuum comes round (up to a
    minute later). Without statistics its planner believed one community's 15,000 people
    were five rows, and a gate's lookup of seven people read all of them (3 ms instead of
    0.1). SQLite's planner assumes an index is selective and needs none."""
    if session.get_bind().dialect.name != "postgresql":
        return
    known = set(Base.metadata.tables)
    names = [name for name in tables if name in known]  # names quoted below are ours only
    if names:
        session.execute(text("ANALYZE " + ", ".join(f'"{name}"' for name in names)))


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().effective_database_url)


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(
    *, write: bool = False, sessions: sessionmaker[Session] | None = None
) -> Iterator[Session]:
    """One unit of work: a session committed by :func:`finish` on success, rolled back on
    error, closed either way (requests, commands, the worker). ``write`` opens it for
    writing at once (see :func:`begin_write`); ``sessions`` defaults to the settings'
    database."""
    session = (sessions or get_sessionmaker())()
    try:
        if write:
            begin_write(session)
        yield session
        finish(session)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
