"""Fixtures of the registry tests: a database of its own for the command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from fengchao import db, settings
from fengchao.migrate import upgrade


def _clear_caches() -> None:
    for cached in (settings.get_settings, db.get_engine, db.get_sessionmaker):
        cached.cache_clear()


@pytest.fixture
def cli_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A migrated SQLite file that the ``fengchao`` command (run in-process) uses too."""
    monkeypatch.setenv("FENGCHAO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    _clear_caches()
    engine = db.get_engine()
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        _clear_caches()
