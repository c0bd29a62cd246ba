"""Grid work in the demo community: one sweep of 华润中央公园 under way and a few help
requests and reports in different states (called at the end of ``registry.demo``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, Actor, GridScope
from fengchao.db import utcnow
from fengchao.gridwork import help as help_service
from fengchao.gridwork import reports, sweeps
from fengchao.gridwork.models import SweepTarget
from fengchao.registry.models import Building, Compound, Household


def build_gridwork_demo(session: Session, community_id: int) -> None:
    """Add the demo's grid work (the caller commits)."""
    now = utcnow()
    staff = Actor(0, "demo", "社区干部（演示）", SYSTEM_ACTOR.role,
                  GridScope(ScopeLevel.community, community_id), community_id)  # fmt: skip
    park = session.scalar(
        select(Compound).where(
            Compound.community_id == community_id, Compound.name == "华润中央公园"
        )
    ) or session.scalar(select(Compound).where(Compound.community_id == community_id))
    if park is None:
        return
    sweep = sweeps.create(
        session=session, actor=staff, title="封闭管理扫楼清户", level=ScopeLevel.compound,
        node_id=park.id, deadline=now + dt.timedelta(days=2), now=now - dt.timedelta(hours=3),
    )  # fmt: skip
    targets = list(
        session.scalars(
            select(SweepTarget).where(SweepTarget.sweep_id == sweep.id).order_by(SweepTarget.id)
        )
    )
    outcomes = ["visited"] * 6 + ["nobody_home", "refused"]
    for index, target in enumerate(targets[: 3 * len(outcomes)]):
        sweeps.record_visit(
            session=session, actor=staff, sweep_id=sweep.id, target_id=target.id,
            form=sweeps.VisitForm(outcome=outcomes[index % len(outcomes)],
                                  people_home=2, needs_food=index == 3),
            now=now - dt.timedelta(minutes=90 - index),
        )  # fmt: skip
    households = list(
        session.scalars(
            select(Household)
            .where(Household.compound_id == park.id, Household.vacant.is_(False))
            .order_by(Household.id)
            .limit(400)
        )
    )
    wanted = [("medicine", "urgent", "降压药 硝苯地平 一盒"), ("elderly_alone", "normal", ""),
              ("medical_visit", "normal", "需要去医院透析"), ("food", "low", "米、油")]  # fmt: skip
    for index, (category, urgency, details) in enumerate(wanted):
        made = help_service.submit(
            session=session, actor=staff, household_id=households[100 + 37 * index].id,
            category=category, urgency=urgency, details=details, contact_name="演示居民",
            now=now - dt.timedelta(minutes=20 + 45 * index),
        )  # fmt: skip
        if index == 2:
            help_service.accept(session=session, actor=staff, request_id=made.request.id, now=now)
    help_service.escalate_due(session=session, now=now)
    building = session.scalar(select(Building.id).where(Building.compound_id == park.id))
    reports.submit(
        session=session, community_id=community_id, compound_id=park.id, building_id=building,
        category="tailgating", place="东门", details="有人跟着刷卡进门", now=now,
    )  # fmt: skip
    reports.submit(
        session=session, community_id=community_id, compound_id=park.id, building_id=None,
        category="broken_gate", place="北门", details="门禁刷卡没反应", now=now,
    )  # fmt: skip
