"""Grid work's JSON API for a lead's phone app: each route's happy path, and the same role
and scope refusals as the pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.gridwork import help as help_service
from fengchao.gridwork.models import HelpRequest, Sweep, SweepTarget
from tests.conftest import Grid, Persona, make_persona

API = "/api/gridwork"


def _target(session: Session, sweep: Sweep, household_id: int) -> int:
    found = session.scalar(
        select(SweepTarget.id).where(
            SweepTarget.sweep_id == sweep.id, SweepTarget.household_id == household_id
        )
    )
    assert found is not None
    return found


def _ask(session: Session, household_id: int, phone: str) -> HelpRequest:
    return help_service.submit(
        session=session, actor=None, household_id=household_id, category="food",
        urgency="normal", phone=phone,
    ).request  # fmt: skip


def test_a_lead_walks_the_sweep_through_the_api(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    lead = login_as(lead5)
    todo = lead.get(f"{API}/todo").json()
    assert todo["building_id"] == grid.b5.id and todo["sweeps"][0]["id"] == sweep.id
    checklist = lead.get(f"{API}/sweeps/{sweep.id}/buildings/{grid.b5.id}").json()
    assert len(checklist["rows"]) == 8 and checklist["rows"][0]["outcome"] == "pending"
    target = _target(session, sweep, grid.h5_101.id)
    visit = {"outcome": "visited", "needs_food": True, "key": "phone-app-0001"}
    made = lead.post(f"{API}/sweeps/{sweep.id}/visits/{target}", json=visit)
    again = lead.post(f"{API}/sweeps/{sweep.id}/visits/{target}", json=visit)
    assert made.status_code == again.status_code == 201
    assert len(made.json()["requests"]) == 1 and not made.json()["duplicate"]
    assert again.json()["duplicate"] and again.json()["visit_id"] == made.json()["visit_id"]
    rows = lead.get(f"{API}/sweeps/{sweep.id}/buildings/{grid.b5.id}").json()["rows"]
    assert [r["outcome"] for r in rows if r["target_id"] == target] == ["visited"]
    bad = lead.post(f"{API}/sweeps/{sweep.id}/visits/{target}", json={"outcome": "maybe"})
    assert bad.status_code == 422


def test_a_lead_accepts_and_closes_a_request_through_the_api(
    session: Session, grid: Grid, lead5: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    request = _ask(session, grid.h5_101.id, "13800000001")
    lead = login_as(lead5)
    assert [r["id"] for r in lead.get(f"{API}/requests").json()] == [request.id]
    accepted = lead.post(f"{API}/requests/{request.id}/accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert lead.post(f"{API}/requests/{request.id}/accept").status_code == 409
    closed = lead.post(f"{API}/requests/{request.id}/close", json={"note": "已送到"})
    assert closed.json()["status"] == "closed" and closed.json()["closing_note"] == "已送到"
    assert lead.get(f"{API}/requests").json() == []


def test_the_api_refuses_outside_role_and_scope(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona, guard: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    other = _ask(session, grid.h6_101.id, "13800000002")
    t6 = _target(session, sweep, grid.h6_101.id)
    lead = login_as(lead5)
    assert lead.get(f"{API}/sweeps/{sweep.id}/buildings/{grid.b6.id}").status_code == 404
    visit = {"outcome": "visited"}
    assert lead.post(f"{API}/sweeps/{sweep.id}/visits/{t6}", json=visit).status_code == 404
    assert lead.post(f"{API}/requests/{other.id}/accept").status_code == 404
    assert other.id not in [r["id"] for r in lead.get(f"{API}/requests").json()]
    volunteer = make_persona(
        session, "志愿者", Role.volunteer, GridScope(ScopeLevel.building, grid.b5.id)
    )
    for persona in (guard, volunteer):
        browser = login_as(persona)
        assert browser.get(f"{API}/todo").status_code == 403
        assert browser.get(f"{API}/requests").status_code == 403
        assert (
            browser.post(f"{API}/requests/{other.id}/close", json={"note": "x"}).status_code == 403
        )
    schema = lead.get("/api/openapi.json").json()
    assert f"{API}/sweeps/{{sweep_id}}/visits/{{target_id}}" in schema["paths"]
