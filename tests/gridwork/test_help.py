"""Help requests: who may ask for which household, one request for a double submission,
routing and escalation down the grid with a frozen clock, accepting and closing, the
status link."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import NotFound
from fengchao.gridwork import help as help_service
from fengchao.gridwork import jobs
from fengchao.gridwork.models import HelpRequest, HelpStatus
from fengchao.notify.models import Notification, NotificationRecipient
from fengchao.notify.scheduler import SCHEDULED_JOBS, check_jobs
from tests.conftest import Grid, Persona
from tests.gridwork.conftest import T0


def _ask(session: Session, grid: Grid, *, phone: str = "13900000009", **kw: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "household_id": grid.h5_101.id, "category": "medicine", "urgency": "urgent",
        "details": "降压药", "contact_name": "林", "phone": phone, "now": T0,
    }  # fmt: skip
    values.update(kw)
    return help_service.submit(session=session, actor=None, **values)  # type: ignore[arg-type]


def _recipients(session: Session, request_id: int) -> list[str]:
    rows = session.execute(
        select(NotificationRecipient)
        .join(Notification, Notification.id == NotificationRecipient.notification_id)
        .where(Notification.link == f"/gridwork/requests/{request_id}")
        .order_by(NotificationRecipient.id)
    ).scalars()
    return [f"{r.role or 'group'}@{r.node_level}:{r.node_id}" for r in rows]


def test_a_new_request_reaches_the_building_lead_and_the_buildings_chat(
    session: Session, grid: Grid
) -> None:
    made = _ask(session, grid)
    request = made.request
    assert request.level == ScopeLevel.building and request.status == HelpStatus.open
    assert request.deadline == T0 + dt.timedelta(minutes=30)
    assert _recipients(session, request.id) == [
        f"building_lead@building:{grid.b5.id}",
        f"group@building:{grid.b5.id}",
    ]
    assert "13900000009" not in (request.phone_enc or "")


def test_the_same_request_twice_within_minutes_is_one_request(session: Session, grid: Grid) -> None:
    first = _ask(session, grid)
    again = _ask(session, grid, now=T0 + dt.timedelta(minutes=3))
    assert again.duplicate and again.request.id == first.request.id
    assert again.token == first.token
    later = _ask(session, grid, now=T0 + dt.timedelta(minutes=30))
    assert not later.duplicate and later.request.id != first.request.id
    other_kind = _ask(session, grid, category="food", now=T0 + dt.timedelta(minutes=31))
    assert not other_kind.duplicate


def test_a_resident_cannot_ask_for_a_household_of_another_building(
    session: Session, grid: Grid
) -> None:
    # 13800000002 is registered in 6-1-101: building 6's resident asking for 5-1-101.
    with pytest.raises(help_service.OutsideBuilding):
        _ask(session, grid, phone="13800000002")
    assert session.scalar(select(HelpRequest.id)) is None


def test_a_resident_of_the_household_is_verified(session: Session, grid: Grid) -> None:
    assert _ask(session, grid, phone="13800000001").request.verified
    assert not _ask(session, grid, phone="13900000009", category="food").request.verified


def test_a_lead_cannot_ask_for_a_household_outside_the_building(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    with pytest.raises(help_service.OutsideBuilding):
        help_service.submit(
            session=session, actor=lead5.actor, household_id=grid.h6_101.id,
            category="food", urgency="normal",
        )  # fmt: skip
    made = help_service.submit(
        session=session, actor=lead5.actor, household_id=grid.h5_101.id,
        category="food", urgency="normal",
    )  # fmt: skip
    assert made.request.verified and made.request.source == "staff"


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("category", {"category": "cake"}),
        ("urgency", {"urgency": "whenever"}),
        ("phone", {"phone": "12345"}),
        ("phone", {"phone": ""}),
        ("details", {"details": "药" * 501}),
        ("details", {"category": "other", "details": "  "}),
    ],
)
def test_bad_request_fields_are_named(
    session: Session, grid: Grid, field: str, values: dict[str, object]
) -> None:
    with pytest.raises(help_service.HelpRefused) as refused:
        _ask(session, grid, **values)
    assert refused.value.field == field


def test_escalation_building_then_compound_then_community(session: Session, grid: Grid) -> None:
    request = _ask(session, grid).request
    assert help_service.escalate_due(session=session, now=T0 + dt.timedelta(minutes=29)) == 0
    assert help_service.escalate_due(session=session, now=T0 + dt.timedelta(minutes=31)) == 1
    assert request.level == ScopeLevel.compound and request.escalations == 1
    assert request.deadline == T0 + dt.timedelta(minutes=61)
    assert help_service.escalate_due(session=session, now=T0 + dt.timedelta(minutes=50)) == 0
    assert help_service.escalate_due(session=session, now=T0 + dt.timedelta(minutes=62)) == 1
    assert request.level == ScopeLevel.community
    # The community is the last stop.
    assert help_service.escalate_due(session=session, now=T0 + dt.timedelta(hours=5)) == 0
    assert request.level == ScopeLevel.community and request.escalations == 2
    assert _recipients(session, request.id) == [
        f"building_lead@building:{grid.b5.id}",
        f"group@building:{grid.b5.id}",
        f"building_lead@compound:{grid.park.id}",
        f"group@compound:{grid.park.id}",
        f"community_worker@community:{grid.community.id}",
        f"group@community:{grid.community.id}",
    ]


def test_an_accepted_request_does_not_escalate(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    request = _ask(session, grid).request
    help_service.accept(
        session=session, actor=lead5.actor, request_id=request.id, now=T0 + dt.timedelta(minutes=5)
    )
    assert help_service.escalate_due(session=session, now=T0 + dt.timedelta(hours=3)) == 0
    assert request.level == ScopeLevel.building


def test_the_escalation_job_is_registered_and_runs(session: Session, grid: Grid) -> None:
    check_jobs(SCHEDULED_JOBS)
    assert SCHEDULED_JOBS["gridwork.escalate"].target.endswith("escalate_job")
    request = _ask(session, grid).request
    result = jobs.escalate_job(session=session, now=T0 + dt.timedelta(hours=1))
    assert result.startswith("1 request")
    assert request.level == ScopeLevel.compound


def test_lead_accepts_and_closes_with_a_note(
    session: Session, grid: Grid, lead5: Persona, lead6: Persona
) -> None:
    request = _ask(session, grid).request
    with pytest.raises(NotFound):
        help_service.accept(session=session, actor=lead6.actor, request_id=request.id)
    help_service.accept(session=session, actor=lead5.actor, request_id=request.id)
    with pytest.raises(help_service.HelpRefused):
        help_service.close(session=session, actor=lead5.actor, request_id=request.id, note=" ")
    help_service.close(
        session=session, actor=lead5.actor, request_id=request.id, note="药已送到门口"
    )
    assert request.status == HelpStatus.closed and request.closing_note == "药已送到门口"
    with pytest.raises(help_service.RequestClosed):
        help_service.close(session=session, actor=lead5.actor, request_id=request.id, note="x")


def test_status_link_shows_the_state_and_an_unknown_token_nothing(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    made = _ask(session, grid)
    help_service.accept(session=session, actor=lead5.actor, request_id=made.request.id)
    status = help_service.public_status(session=session, token=made.token)
    assert status.status == HelpStatus.accepted
    assert [kind for kind, _at, _level in status.steps] == ["created", "accepted"]
    with pytest.raises(NotFound):
        help_service.public_status(session=session, token=made.token[:-2] + "xx")


def test_the_group_chat_gets_no_name_room_or_details(session: Session, grid: Grid) -> None:
    made = _ask(session, grid, details="硝苯地平", contact_name="林阿姨")
    message = session.scalar(
        select(Notification).where(Notification.link == f"/gridwork/requests/{made.request.id}")
    )
    assert message is not None
    for private in ("硝苯地平", "林阿姨", "5-1-101", "13900000009"):
        assert private not in message.body and private not in message.title
    assert message.detail is not None and "5-1-101" in message.detail
