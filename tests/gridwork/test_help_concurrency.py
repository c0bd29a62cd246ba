"""The same help request from two connections at once (a double tap, two processes), on
committed sessions as production runs them: one row is stored and both get its status link."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.db import finish
from fengchao.gridwork import help as help_service
from fengchao.gridwork.models import HelpRequest
from fengchao.testing import throwaway_database
from tests.conftest import build_grid


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    target = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")
    folder: Path = tmp_path_factory.mktemp("gridwork-race")
    with throwaway_database(target, folder) as engine:
        yield engine


def test_two_identical_requests_at_once_store_one(database: Engine) -> None:
    sessions = sessionmaker(bind=database, expire_on_commit=False)
    with sessions() as session:
        household_id = build_grid(session).h5_101.id
        session.commit()
    first_stored, release = threading.Event(), threading.Event()
    answers: dict[str, tuple[int, str, bool]] = {}
    errors: list[BaseException] = []

    def ask(name: str) -> None:
        # The first holds its transaction open after storing its row, so the second's
        # check finds nothing committed and its insert meets the first's at the database.
        try:
            with sessions() as session:
                made = help_service.submit(
                    session=session, actor=None, household_id=household_id,
                    category="medicine", urgency="urgent", phone="13900000009",
                )  # fmt: skip
                if name == "first":
                    first_stored.set()
                    release.wait(10)
                finish(session)
                answers[name] = (made.request.id, made.token, made.duplicate)
        except BaseException as exc:
            errors.append(exc)
            first_stored.set()

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert first_stored.wait(10)
    second = threading.Thread(target=ask, args=("second",))
    second.start()
    time.sleep(0.3)  # the second is now waiting on the first (row lock or write lock)
    release.set()
    first.join(10)
    second.join(10)
    assert not errors, errors
    assert answers["second"][:2] == answers["first"][:2]
    assert answers["second"][2] and not answers["first"][2]
    with Session(database) as session:
        assert session.scalar(select(func.count()).select_from(HelpRequest)) == 1
