"""SQLite's one write lock held by another process (the worker, a second server): a writer
of this process waits for it and gets it, or gives up with the database's own error."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fengchao import db


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "lock.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE visit (id INTEGER PRIMARY KEY, note TEXT)"))
    yield engine, path
    engine.dispose()


def other_process_writing(path: Path) -> sqlite3.Connection:
    """A connection of its own holding the write lock, as the worker's would."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO visit (note) VALUES ('worker')")
    return other


def busy_timeout(session: Session) -> int:
    return int(session.execute(text("PRAGMA busy_timeout")).scalar_one())


def test_a_writer_waits_for_the_lock_of_another_process_and_then_writes(
    sqlite_file: tuple[Engine, Path],
) -> None:
    engine, path = sqlite_file
    other = other_process_writing(path)
    release = threading.Timer(0.3, other.commit)
    release.start()
    try:
        with Session(engine) as session:
            db.begin_write(session)
            session.execute(text("INSERT INTO visit (note) VALUES ('lead')"))
            session.commit()
            # Reads of this connection still wait for a busy database as configured.
            assert busy_timeout(session) == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        release.join()
        other.close()
    with engine.connect() as conn:
        notes = conn.execute(text("SELECT note FROM visit ORDER BY id")).scalars().all()
    assert notes == ["worker", "lead"]


def test_a_writer_gives_up_with_the_database_error_when_the_lock_stays_held(
    sqlite_file: tuple[Engine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, path = sqlite_file
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    other = other_process_writing(path)
    try:
        with Session(engine) as session, pytest.raises(OperationalError, match="locked"):
            db.begin_write(session)
    finally:
        other.rollback()
        other.close()
    # Nothing half-done: the lock is free again and the next writer of this process gets it.
    with Session(engine) as session:
        db.begin_write(session)
        session.execute(text("INSERT INTO visit (note) VALUES ('lead')"))
        session.commit()
        assert busy_timeout(session) == 200
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM visit")).scalars().all() == ["lead"]
