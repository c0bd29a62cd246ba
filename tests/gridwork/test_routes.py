"""Every page of grid work per role and scope, and the residents' public page: CSRF, the
size limit, the rate limit, the status link showing nobody's personal data."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.gridwork import help as help_service
from fengchao.gridwork import reports
from fengchao.gridwork.models import HelpRequest, ResidentReport, Sweep, SweepTarget
from tests.conftest import Grid, Persona


def _target(session: Session, sweep: Sweep, household_id: int) -> int:
    found = session.scalar(
        select(SweepTarget.id).where(
            SweepTarget.sweep_id == sweep.id, SweepTarget.household_id == household_id
        )
    )
    assert found is not None
    return found


@pytest.fixture
def requests6(session: Session, grid: Grid) -> HelpRequest:
    return help_service.submit(
        session=session, actor=None, household_id=grid.h6_101.id, category="food",
        urgency="normal", phone="13800000002",
    ).request  # fmt: skip


def test_pages_per_role(
    session: Session,
    grid: Grid,
    sweep: Sweep,
    login_as,
    worker: Persona,
    lead5: Persona,
    guard: Persona,
    requests6: HelpRequest,
) -> None:  # type: ignore[no-untyped-def]
    report = reports.submit(
        session=session, community_id=grid.community.id, compound_id=grid.park.id,
        building_id=grid.b6.id, category="tailgating",
    ).report  # fmt: skip
    t5, t6 = _target(session, sweep, grid.h5_101.id), _target(session, sweep, grid.h6_101.id)
    s = sweep.id
    expected = {
        "worker": {
            "/gridwork": 200, "/gridwork/todo": 200, "/gridwork/sweeps/new": 200,
            f"/gridwork/sweeps/{s}": 200, f"/gridwork/sweeps/{s}/buildings/{grid.b6.id}": 200,
            f"/gridwork/sweeps/{s}/visit/{t6}": 200, f"/gridwork/requests/{requests6.id}": 200,
            f"/gridwork/reports/{report.id}": 200, "/gridwork/requests/new": 200,
        },
        "lead5": {
            "/gridwork": 303, "/gridwork/todo": 200, "/gridwork/sweeps/new": 403,
            f"/gridwork/sweeps/{s}": 303, f"/gridwork/sweeps/{s}/buildings/{grid.b5.id}": 200,
            f"/gridwork/sweeps/{s}/buildings/{grid.b6.id}": 404,
            f"/gridwork/sweeps/{s}/visit/{t5}": 200, f"/gridwork/sweeps/{s}/visit/{t6}": 404,
            f"/gridwork/requests/{requests6.id}": 404, f"/gridwork/reports/{report.id}": 404,
            "/gridwork/requests/new": 200,
        },
        "guard": {
            "/gridwork": 403, "/gridwork/todo": 403, "/gridwork/sweeps/new": 403,
            f"/gridwork/sweeps/{s}": 403, f"/gridwork/sweeps/{s}/buildings/{grid.b5.id}": 403,
            f"/gridwork/sweeps/{s}/visit/{t5}": 403, f"/gridwork/requests/{requests6.id}": 403,
            f"/gridwork/reports/{report.id}": 403, "/gridwork/requests/new": 403,
        },
    }  # fmt: skip
    personas = {"worker": worker, "lead5": lead5, "guard": guard}
    for name, pages in expected.items():
        browser = login_as(personas[name])
        for url, status in pages.items():
            assert browser.get(url).status_code == status, (name, url)


def test_lead_cannot_act_outside_the_building(
    session: Session, grid: Grid, sweep: Sweep, login_as, lead5: Persona, requests6: HelpRequest
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(lead5)
    t6 = _target(session, sweep, grid.h6_101.id)
    response = browser.post(f"/gridwork/sweeps/{sweep.id}/visit/{t6}", data={"outcome": "visited"})
    assert response.status_code == 404
    assert browser.post(f"/gridwork/requests/{requests6.id}/accept").status_code == 404
    asked = browser.post(
        "/gridwork/requests",
        data={"compound": grid.park.id, "address": "6-1-101", "category": "food",
              "urgency": "normal"},
    )  # fmt: skip
    assert asked.status_code == 403 and "不在您负责的楼栋" in asked.text
    assert (
        browser.post(
            "/gridwork/sweeps", data={"title": "x", "node": f"building:{grid.b5.id}"}
        ).status_code
        == 403
    )


def test_lead_records_a_visit_and_sees_the_checklist_move_on(
    session: Session, grid: Grid, sweep: Sweep, login_as, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(lead5)
    checklist = f"/gridwork/sweeps/{sweep.id}/buildings/{grid.b5.id}"
    # The bar and the numbers beside it, which a screen reader reads too.
    bar = re.compile(r'<progress class="gw-bar" max="(\d+)" value="(\d+)".*?'
                     r'<span class="gw-fraction">(\d+)/(\d+)</span>')  # fmt: skip
    found = bar.search(browser.get(checklist).text)
    assert found is not None
    total = int(found[1])
    assert total > 0 and found.groups() == (str(total), "0", "0", str(total))
    t5 = _target(session, sweep, grid.h5_101.id)
    form = browser.get(f"/gridwork/sweeps/{sweep.id}/visit/{t5}")
    assert "林国平" in form.text
    response = browser.post(
        f"/gridwork/sweeps/{sweep.id}/visit/{t5}",
        data={"outcome": "visited", "people_home": "2", "needs_food": "1", "key": "a" * 32,
              f"health_{grid.resident5.id}": "normal",
              f"residence_{grid.resident5.id}": "living"},
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/gridwork/sweeps/{sweep.id}/buildings/")
    page = browser.get(response.headers["location"])
    assert "5-1-101" not in page.text  # done: no longer among those left
    found = bar.search(page.text)
    assert found is not None and found.groups() == (str(total), "1", "1", str(total))
    todo = browser.get("/gridwork/todo/panel")
    assert "生活物资" in todo.text


def test_visit_form_errors_are_shown_on_the_form(
    session: Session, grid: Grid, sweep: Sweep, login_as, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(lead5)
    t5 = _target(session, sweep, grid.h5_101.id)
    response = browser.post(
        f"/gridwork/sweeps/{sweep.id}/visit/{t5}", data={"outcome": "visited", "people_home": "99"}
    )
    assert response.status_code == 422 and "在家人数" in response.text


def _anonymous(app_client: TestClient, grid: Grid) -> str:
    app_client.cookies.clear()
    page = app_client.get(f"/help/{grid.community.id}")
    assert page.status_code == 200
    return app_client.cookies["fc_csrf"]


def test_resident_asks_for_help_and_follows_the_private_link(
    session: Session, grid: Grid, app_client: TestClient, login_as, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    csrf = _anonymous(app_client, grid)
    form = {"compound": str(grid.park.id), "address": "5-1-101", "category": "medicine",
            "urgency": "urgent", "details": "降压药 硝苯地平", "name": "林阿姨",
            "phone": "13800000001", "csrf_token": csrf}  # fmt: skip
    assert (
        app_client.post(
            f"/help/{grid.community.id}/request", data={**form, "csrf_token": ""}
        ).status_code
        == 403
    )
    response = app_client.post(f"/help/{grid.community.id}/request", data=form)
    assert response.status_code == 303
    link = response.headers["location"]
    assert link.startswith("/help/status/")
    status = app_client.get(link)
    assert status.status_code == 200 and "待接单" in status.text
    assert status.headers["referrer-policy"] == "no-referrer"
    for private in ("林阿姨", "13800000001", "硝苯地平", "5-1-101", "林国平"):
        assert private not in status.text
    request = session.scalar(select(HelpRequest))
    assert request is not None
    browser = login_as(lead5)
    assert browser.post(f"/gridwork/requests/{request.id}/accept").status_code == 303
    app_client.cookies.clear()
    assert "处理中" in app_client.get(link).text
    assert app_client.get("/help/status/" + "x" * 32).status_code == 404


def test_resident_form_errors_name_the_field(
    session: Session, grid: Grid, app_client: TestClient
) -> None:
    csrf = _anonymous(app_client, grid)
    response = app_client.post(
        f"/help/{grid.community.id}/request",
        data={"compound": str(grid.park.id), "address": "6-1-101", "category": "food",
              "urgency": "normal", "phone": "13800000001", "csrf_token": csrf},
    )  # fmt: skip
    assert response.status_code == 403 and "别的楼栋" in response.text
    response = app_client.post(
        f"/help/{grid.community.id}/request",
        data={"compound": str(grid.park.id), "address": "99-9-999", "category": "food",
              "urgency": "normal", "phone": "13800000001", "csrf_token": csrf},
    )  # fmt: skip
    assert response.status_code == 422 and "找不到这一户" in response.text
    assert session.scalar(select(HelpRequest.id)) is None


def test_the_public_form_is_rate_limited_per_phone(
    session: Session, grid: Grid, app_client: TestClient
) -> None:
    csrf = _anonymous(app_client, grid)
    form = {"compound": str(grid.park.id), "address": "5-1-101", "category": "food",
            "urgency": "normal", "phone": "13900000001", "csrf_token": csrf}  # fmt: skip
    statuses = [
        app_client.post(f"/help/{grid.community.id}/request", data=form).status_code
        for _ in range(8)
    ]
    assert statuses[:6] == [303] * 6 and statuses[6:] == [429, 429]
    assert len(list(session.scalars(select(HelpRequest)))) == 1  # the same request throughout


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 10)).save(out, format="PNG")
    return out.getvalue()


def test_resident_reports_with_a_photo(
    session: Session, grid: Grid, app_client: TestClient
) -> None:
    csrf = _anonymous(app_client, grid)
    response = app_client.post(
        f"/help/{grid.community.id}/report",
        data={"compound": str(grid.park.id), "building": "5", "category": "stairwell_fever",
              "place": "2单元楼道", "csrf_token": csrf},
        files={"photo": ("p.png", _png(), "image/png")},
    )  # fmt: skip
    assert response.status_code == 303 and response.headers["location"].startswith("/help/report/")
    report = session.scalar(select(ResidentReport))
    assert report is not None and report.photo is not None and report.building_id == grid.b5.id
    assert "楼道有人发热" in app_client.get(response.headers["location"]).text


def test_report_with_a_bad_or_huge_photo_is_refused(
    session: Session, grid: Grid, app_client: TestClient
) -> None:
    csrf = _anonymous(app_client, grid)
    data = {"compound": str(grid.park.id), "category": "tailgating", "csrf_token": csrf}
    bad = app_client.post(
        f"/help/{grid.community.id}/report", data=data,
        files={"photo": ("p.jpg", b"<html>not a photo</html>", "image/jpeg")},
    )  # fmt: skip
    assert bad.status_code == 422 and "不是图片" in bad.text
    huge = app_client.post(
        f"/help/{grid.community.id}/report", data=data,
        files={"photo": ("p.jpg", b"\xff" * (10 * 1024 * 1024), "image/jpeg")},
    )  # fmt: skip
    assert huge.status_code == 413
    assert session.scalar(select(ResidentReport.id)) is None


def test_actions_per_role(
    session: Session,
    grid: Grid,
    sweep: Sweep,
    login_as,
    worker: Persona,
    lead5: Persona,
    guard: Persona,
    requests6: HelpRequest,
) -> None:  # type: ignore[no-untyped-def]
    report6 = reports.submit(
        session=session, community_id=grid.community.id, compound_id=grid.park.id,
        building_id=grid.b6.id, category="tailgating", photo=_png(),
    ).report  # fmt: skip
    close = (f"/gridwork/requests/{requests6.id}/close", {"note": "已送达"})
    status = (f"/gridwork/reports/{report6.id}/status", {"status": "acknowledged"})
    end = (f"/gridwork/sweeps/{sweep.id}/close", {})
    for persona, expected in ((guard, 403), (lead5, 404)):
        browser = login_as(persona)
        for url, data in (close, status):
            assert browser.post(url, data=data).status_code == expected, (persona.user, url)
        assert browser.get(f"/gridwork/reports/{report6.id}/photo").status_code == expected
        assert browser.post(end[0]).status_code == 403
        assert browser.get("/gridwork/todo/panel").text.strip() == "" or persona is lead5
    browser = login_as(worker)
    photo = browser.get(f"/gridwork/reports/{report6.id}/photo")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    for url, data in (close, status):
        assert browser.post(url, data=data).status_code == 303
    assert browser.post(end[0]).status_code == 303


def test_a_volunteer_asks_on_a_residents_behalf_and_gets_the_status_link(
    session: Session, grid: Grid, login_as
) -> None:  # type: ignore[no-untyped-def]
    from fengchao.auth.models import Role, ScopeLevel
    from fengchao.auth.service import GridScope
    from tests.conftest import make_persona

    volunteer = make_persona(
        session, "志愿者", Role.volunteer, GridScope(ScopeLevel.building, grid.b5.id)
    )
    browser = login_as(volunteer)
    assert browser.get("/gridwork/requests/new").status_code == 200
    made = browser.post(
        "/gridwork/requests",
        data={"compound": grid.park.id, "address": "5-1-102", "category": "food",
              "urgency": "normal"},
    )  # fmt: skip
    assert made.status_code == 303 and made.headers["location"].startswith("/help/status/")
    assert browser.get("/gridwork/todo").status_code == 403
    refused = browser.post(
        "/gridwork/requests",
        data={"compound": grid.park.id, "address": "6-1-102", "category": "food",
              "urgency": "normal"},
    )  # fmt: skip
    assert refused.status_code == 403
