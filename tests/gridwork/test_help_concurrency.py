"""The same help request from two connections at once (a double tap, two processes), on
committed sessions as production runs them: one row is stored and both get its status link."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.gridwork import help as help_service
from fengchao.gridwork.models import HelpRequest
from tests.conftest import build_grid, held_race


def test_two_identical_requests_at_once_store_one(own_database: Engine) -> None:
    sessions = sessionmaker(bind=own_database, expire_on_commit=False)
    with sessions() as session:
        household_id = build_grid(session).h5_101.id
        session.commit()

    def ask(session: Session) -> tuple[int, str, bool]:
        made = help_service.submit(
            session=session, actor=None, household_id=household_id,
            category="medicine", urgency="urgent", phone="13900000009",
        )  # fmt: skip
        session.flush()
        return made.request.id, made.token, made.duplicate

    answers = held_race(sessions, ask)
    assert answers["second"][:2] == answers["first"][:2]
    assert answers["second"][2] and not answers["first"][2]
    with Session(own_database) as session:
        assert session.scalar(select(func.count()).select_from(HelpRequest)) == 1
