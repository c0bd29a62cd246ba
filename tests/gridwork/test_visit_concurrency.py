"""The same sweep visit (one submission key) from two connections at once — a double tap,
a retry while the first is still being written, two server processes — on committed
sessions as production runs them: one visit is stored and the second gets the answer a
replay gets, not a server error."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import finish, utcnow
from fengchao.gridwork import sweeps
from fengchao.gridwork.models import SweepTarget, SweepVisit
from tests.conftest import build_grid, held_race, make_persona


def test_same_visit_twice_at_once_stores_one_and_answers_as_a_replay(own_database: Engine) -> None:
    sessions = sessionmaker(bind=own_database, expire_on_commit=False)
    with sessions() as session:
        grid = build_grid(session)
        worker = make_persona(
            session, "worker", Role.community_worker,
            GridScope(ScopeLevel.community, grid.community.id),
        )  # fmt: skip
        lead = make_persona(
            session, "lead5", Role.building_lead, GridScope(ScopeLevel.building, grid.b5.id)
        )
        sweep = sweeps.create(
            session=session, actor=worker.actor, title="封闭管理扫楼",
            level=ScopeLevel.building, node_id=grid.b5.id,
            deadline=utcnow() + dt.timedelta(days=1),
        )  # fmt: skip
        session.flush()
        target_id = session.scalar(
            select(SweepTarget.id).where(
                SweepTarget.sweep_id == sweep.id, SweepTarget.household_id == grid.h5_101.id
            )
        )
        assert target_id is not None
        sweep_id = sweep.id
        finish(session)
    key = uuid.uuid4().hex

    def record(session: Session) -> tuple[int, bool]:
        recorded = sweeps.record_visit(
            session=session, actor=lead.actor, sweep_id=sweep_id, target_id=target_id,
            form=sweeps.VisitForm(outcome="visited", people_home=2, key=key),
        )  # fmt: skip
        return recorded.visit.id, recorded.duplicate

    # The first holds its transaction open after storing its visit, so the second's
    # look-up by key finds nothing committed and its insert meets the first's at the
    # database (PostgreSQL: the unique index; SQLite: the write lock).
    answers = held_race(sessions, record)
    assert answers["second"] == (answers["first"][0], True)
    assert answers["first"][1] is False
    with Session(own_database) as session:
        assert session.scalar(select(func.count()).select_from(SweepVisit)) == 1
        visits = session.scalar(select(SweepTarget.visits).where(SweepTarget.id == target_id))
        assert visits == 1
