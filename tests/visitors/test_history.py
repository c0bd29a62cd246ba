"""The visitors' history page and its workbook: filters by date, gate and host building,
scope by the account's grid node, pages, the roles that reach it, masked ID numbers (whole
ones only with the permission and a reason), neutralised formulas, and the audit row."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import AuditEvent
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.db import utcnow
from fengchao.visitors import history, service
from fengchao.visitors.models import VisitorPass
from tests.access.conftest import Gates, make_gates
from tests.conftest import Grid, Persona


@pytest.fixture
def gates(session: Session, grid: Grid) -> Gates:
    return make_gates(session, grid)


def issue(session: Session, gates: Gates, name: str, room: str, **changes: object) -> VisitorPass:
    row, _link = service.issue(
        session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id, name=name,
        phone="13600000002", host_room=room,
    )  # fmt: skip
    for key, value in changes.items():
        setattr(row, key, value)
    session.flush()
    return row


def with_id(row: VisitorPass, number: str = "11010519491231002X") -> None:
    cipher = get_cipher()
    row.id_number_enc = cipher.encrypt(number)
    row.id_mask = number[:6] + "********" + number[-4:]


def test_history_filters_by_date_gate_and_building(
    login_as, session: Session, gates: Gates, grid: Grid, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    issue(session, gates, "五号楼访客", "5-1-101")
    issue(session, gates, "六号楼访客", "6-1-101")
    issue(session, gates, "上月访客", "5-1-102", created_at=utcnow() - dt.timedelta(days=40))
    issue(session, gates, "车库访客", "5-1-201", gate_ids=[gates.garage.id])
    browser = login_as(worker)
    page = browser.get("/visitors/history")
    assert page.status_code == 200
    assert "五号楼访客" in page.text and "六号楼访客" in page.text and "上月访客" not in page.text
    page = browser.get(f"/visitors/history?building={grid.b6.id}")
    assert "六号楼访客" in page.text and "五号楼访客" not in page.text
    page = browser.get(f"/visitors/history?gate={gates.garage.id}")
    assert "车库访客" in page.text and "五号楼访客" not in page.text
    since = (history.today() - dt.timedelta(days=60)).isoformat()
    assert "上月访客" in browser.get(f"/visitors/history?since={since}").text


def test_history_is_scoped_and_paged(
    login_as, session: Session, gates: Gates, lead5: Persona, guard: Persona
) -> None:  # type: ignore[no-untyped-def]
    for n in range(history.PER_PAGE + 1):
        issue(session, gates, f"访客{n:02d}", "5-1-101")
    issue(session, gates, "六号楼访客", "6-1-101")
    browser = login_as(lead5)
    first = browser.get("/visitors/history")
    assert first.status_code == 200 and "六号楼访客" not in first.text
    assert f"访客{history.PER_PAGE:02d}" in first.text and "访客00" not in first.text
    assert "1 / 2" in first.text and "export.xlsx" not in first.text
    assert "访客00" in browser.get("/visitors/history?page=2").text
    assert login_as(guard).get("/visitors/history").status_code == 403


def test_history_refuses_a_backwards_range_naming_the_field(login_as, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    page = login_as(worker).get("/visitors/history?since=2026-05-02&until=2026-05-01")
    assert page.status_code == 422 and 'id="err-since"' in page.text
    assert login_as(worker).get("/visitors/history?since=not-a-date").status_code == 422


def test_export_masks_ids_neutralises_formulas_and_is_audited(
    login_as, session: Session, gates: Gates, worker: Persona, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    with_id(issue(session, gates, "=HYPERLINK(1)", "5-1-101"))
    session.flush()
    browser = login_as(worker)
    answer = browser.get("/visitors/export.xlsx")
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    values = list(sheet.iter_rows(min_row=2, values_only=True))
    assert values[0][1] == "'=HYPERLINK(1)"
    assert "11010519491231002X" not in str(values) and values[0][3]
    audited = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "export", AuditEvent.object_type == "visitor_pass"
        )
    ).all()
    assert len(audited) == 1 and audited[0].detail["rows"] == 1
    assert login_as(lead5).get("/visitors/export.xlsx").status_code == 403


def test_whole_id_numbers_only_with_the_permission_and_a_reason(
    login_as, session: Session, gates: Gates, grid: Grid, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    from fengchao.auth.models import Role, ScopeLevel
    from fengchao.auth.service import GridScope
    from tests.conftest import make_persona

    with_id(issue(session, gates, "访客", "5-1-101"))
    session.flush()
    browser = login_as(worker)
    assert browser.get("/visitors/export.xlsx?whole_ids=true").status_code == 422
    answer = browser.get("/visitors/export.xlsx?whole_ids=true&reason=公安协查")
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    assert "11010519491231002X" in str(list(sheet.iter_rows(values_only=True)))
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id.desc())
    ).first()
    assert event is not None and event.detail["reason"] == "公安协查"
    staff = make_persona(
        session, "物业", Role.property_staff, GridScope(ScopeLevel.compound, grid.park.id)
    )
    refused = login_as(staff).get("/visitors/export.xlsx?whole_ids=true&reason=公安协查")
    assert refused.status_code == 403


def test_history_shows_html_in_a_visitors_fields_as_text(
    login_as, session: Session, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    row = issue(session, gates, "<b>访客</b>", "5-1-101")
    row.purpose = "<script>alert(1)</script>"
    session.flush()
    page = login_as(worker).get("/visitors/history")
    assert "<b>访客</b>" not in page.text and "&lt;b&gt;访客&lt;/b&gt;" in page.text
    shown = login_as(worker).get(f"/visitors/passes/{row.id}")
    assert "<script>alert" not in shown.text and "&lt;script&gt;" in shown.text
