"""Grid work's fixtures: a second building lead, a sweep of 华润中央公园, a frozen clock."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.gridwork import sweeps
from fengchao.gridwork.models import Sweep
from tests.conftest import Grid, Persona, make_persona

T0 = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # 10:00 in 福州


@pytest.fixture
def lead6(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "lead6", Role.building_lead, GridScope(ScopeLevel.building, grid.b6.id)
    )


@pytest.fixture
def sweep(session: Session, grid: Grid, worker: Persona) -> Sweep:
    return sweeps.create(
        session=session, actor=worker.actor, title="封闭管理扫楼", level=ScopeLevel.compound,
        node_id=grid.park.id, deadline=T0 + dt.timedelta(days=2), now=T0,
    )  # fmt: skip
