"""A database of its own for tests that serve the app or run the command line: its data is
committed (another process must see it), so it cannot live in the per-test transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fengchao.registry.models import Community, Street
from fengchao.testing import throwaway_database


def database_target(engine: Engine) -> str:
    """What ``throwaway_database`` needs to make a database like the suite's."""
    return "sqlite" if engine.dialect.name == "sqlite" else engine.url.render_as_string(False)


@pytest.fixture
def own_database(engine: Engine, tmp_path: Path) -> Iterator[tuple[Engine, int]]:
    """A migrated database with one street and one community; yields it and the
    community's id."""
    with throwaway_database(database_target(engine), tmp_path) as db:
        with Session(db) as s:
            street = Street(name="宏路街道")
            s.add(street)
            s.flush()
            community = Community(street_id=street.id, name="宏侨社区")
            s.add(community)
            s.flush()
            community_id = community.id
            s.commit()
        yield db, community_id
