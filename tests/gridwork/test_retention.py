"""What grid work forgets: sweep visits and finished sweeps, requests closed long ago,
resolved reports, old photos; what is recent or still open stays."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import ScopeLevel
from fengchao.gridwork import help as help_service
from fengchao.gridwork import reports, retention, sweeps
from fengchao.gridwork.models import HelpRequest, ResidentReport, Sweep, SweepTarget, SweepVisit
from tests.conftest import Grid, Persona
from tests.gridwork.conftest import T0

NOW = T0 + dt.timedelta(days=40)  # past every default keeping time of what happened at T0


def _visit(session: Session, sweep: Sweep, household_id: int, lead: Persona, at: dt.datetime,
           **kw: bool) -> SweepVisit:  # fmt: skip
    target = session.scalar(
        select(SweepTarget.id).where(
            SweepTarget.sweep_id == sweep.id, SweepTarget.household_id == household_id
        )
    )
    assert target is not None
    return sweeps.record_visit(
        session=session, actor=lead.actor, sweep_id=sweep.id, target_id=target,
        form=sweeps.VisitForm(outcome="visited", **kw), now=at,  # type: ignore[arg-type]
    ).visit  # fmt: skip


def _report(session: Session, grid: Grid, at: dt.datetime) -> ResidentReport:
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 30)).save(jpeg, format="JPEG")
    return reports.submit(
        session=session, community_id=grid.community.id, compound_id=grid.park.id,
        building_id=grid.b5.id, category="tailgating", photo=jpeg.getvalue(), now=at,
    ).report  # fmt: skip


def test_old_visits_requests_and_photos_go_and_recent_ones_stay(
    session: Session, grid: Grid, sweep: Sweep, worker: Persona, lead5: Persona
) -> None:
    old_visit = _visit(session, sweep, grid.h5_101.id, lead5, T0, needs_food=True)
    still_open = session.scalar(select(HelpRequest).where(HelpRequest.visit_id == old_visit.id))
    assert still_open is not None
    asked = dict(session=session, actor=None, urgency="normal", phone="13800000001")
    closed_long_ago = help_service.submit(household_id=grid.h5_101.id, category="medicine",
                                          now=T0, **asked).request  # type: ignore[arg-type]  # fmt: skip
    help_service.close(session=session, actor=lead5.actor, request_id=closed_long_ago.id,
                       note="已送药", now=T0 + dt.timedelta(hours=1))  # fmt: skip
    closed_lately = help_service.submit(household_id=grid.h5_101.id, category="medical_visit",
                                        now=NOW - dt.timedelta(days=2), **asked).request  # type: ignore[arg-type]  # fmt: skip
    help_service.close(session=session, actor=lead5.actor, request_id=closed_lately.id,
                       note="已陪同就医", now=NOW - dt.timedelta(days=1))  # fmt: skip
    resolved_long_ago, unhandled, recent = (
        _report(session, grid, T0), _report(session, grid, T0), _report(session, grid, NOW)
    )  # fmt: skip
    reports.set_status(session=session, actor=lead5.actor, report_id=resolved_long_ago.id,
                       status="resolved", note="已提醒", now=T0)  # fmt: skip
    later = sweeps.create(
        session=session, actor=worker.actor, title="复查", level=ScopeLevel.compound,
        node_id=grid.park.id, deadline=NOW + dt.timedelta(days=2), now=NOW - dt.timedelta(days=3),
    )  # fmt: skip
    recent_visit = _visit(session, later, grid.h5_101.id, lead5, NOW - dt.timedelta(days=1))
    ids = (old_visit.id, recent_visit.id, closed_long_ago.id, closed_lately.id,
           resolved_long_ago.id, unhandled.id, recent.id, sweep.id, later.id)  # fmt: skip
    assert retention.purge(session=session, now=NOW, dry_run=True) == {
        "visits": 1, "sweeps": 1, "requests": 1, "reports": 1, "photos": 1,
    }  # fmt: skip

    gone = retention.purge(session=session, now=NOW)
    assert gone == {"visits": 1, "sweeps": 1, "requests": 1, "reports": 1, "photos": 1}
    session.expire_all()
    old_v, recent_v, old_r, lately_r, resolved, unhandled_r, recent_r, old_s, later_s = ids
    assert session.get(SweepVisit, old_v) is None and session.get(SweepVisit, recent_v)
    assert session.get(Sweep, old_s) is None and session.get(Sweep, later_s)
    assert not session.scalars(select(SweepTarget).where(SweepTarget.sweep_id == old_s)).all()
    assert session.get(HelpRequest, old_r) is None and session.get(HelpRequest, lately_r)
    kept = session.get(HelpRequest, still_open.id)
    assert kept is not None and kept.visit_id is None
    assert session.get(ResidentReport, resolved) is None
    unhandled_row, recent_row = (
        session.get(ResidentReport, unhandled_r),
        session.get(ResidentReport, recent_r),
    )
    assert unhandled_row is not None and unhandled_row.photo is None
    assert recent_row is not None and recent_row.photo is not None
