"""ID numbers stay masked for every role; a whole number is revealed only for a stated
reason, audited; whole-number search is no oracle for the roles that only see masks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import AuditEvent
from fengchao.settings import get_settings
from tests.conftest import Grid, Persona

FULL = "11010519491231002X"  # 林国平, born 1949-12-31


def _audit_text(session: Session) -> str:
    rows = session.scalars(select(AuditEvent)).all()
    return json.dumps([[e.action, e.object_id, e.detail] for e in rows], ensure_ascii=False)


def test_every_role_sees_a_mask_and_the_birth_year_only(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, lead5: Persona, worker: Persona, admin: Persona
) -> None:
    for persona in (lead5, worker, admin):
        browser = login_as(persona)
        api = browser.get(f"/api/registry/people/{grid.resident5.id}").json()
        assert api["id_number"] == "110***********002X" and api["id_masked"] is True
        assert "birth_date" not in api and api["birth_year"] == 1949 and api["age"] >= 76
        page = browser.get(f"/registry/people/{grid.resident5.id}").text
        assert FULL not in page and "1949-12-31" not in page and "12-31" not in page
        assert "1949" in page


def test_worker_reveals_a_whole_number_for_a_reason_and_it_is_audited(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    page = browser.get(f"/registry/people/{grid.resident5.id}").text
    assert "查看完整号码" in page
    url = f"/registry/people/{grid.resident5.id}/id-number"
    refused = browser.post(url, data={"reason": " "}, headers={"HX-Request": "true"})
    assert refused.status_code == 200 and "请写明查看原因" in refused.text
    assert FULL not in refused.text
    shown = browser.post(url, data={"reason": "隔离转运"}, headers={"HX-Request": "true"})
    assert shown.status_code == 200 and FULL in shown.text
    api = browser.post(
        f"/api/registry/people/{grid.resident5.id}/id-number", json={"reason": "核对证件"}
    )
    assert api.status_code == 200 and api.json() == {"id_number": FULL}
    no_reason = browser.post(f"/api/registry/people/{grid.resident5.id}/id-number", json={})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    reveals = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "reveal_id", AuditEvent.object_id == str(grid.resident5.id)
        )
    ).all()
    assert [e.detail["reason"] for e in reveals] == ["隔离转运", "核对证件"]
    assert FULL not in _audit_text(session)


def test_a_building_lead_cannot_reveal_or_search_whole_numbers(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, lead5: Persona
) -> None:
    browser = login_as(lead5)
    assert "查看完整号码" not in browser.get(f"/registry/people/{grid.resident5.id}").text
    reveal = browser.post(
        f"/api/registry/people/{grid.resident5.id}/id-number", json={"reason": "核对证件"}
    )
    assert reveal.status_code == 403
    # No yes/no answer to "does this number exist": refused whether it does or not.
    for number in (FULL, "110105194912310038"):
        api = browser.get("/api/registry/search", params={"q": number})
        assert api.status_code == 403 and "按完整身份证号查找" in api.json()["detail"]
        page = browser.get("/registry/search", params={"q": number})
        assert page.status_code == 403 and "按完整身份证号查找" in page.text
    # The last four characters, which the mask shows anyway, still find people.
    assert browser.get("/api/registry/search", params={"q": "002X"}).json()[0]["name"] == "林国平"


def test_whole_number_search_is_limited_per_hour(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings().security, "id_lookups_per_hour", 3)
    browser = login_as(worker)
    for _ in range(3):
        found = browser.get("/api/registry/search", params={"q": FULL})
        assert found.status_code == 200 and found.json()[0]["name"] == "林国平"
    refused = browser.get("/api/registry/search", params={"q": FULL})
    assert refused.status_code == 429 and "3" in refused.json()["detail"]
    reveal = browser.post(
        f"/api/registry/people/{grid.resident5.id}/id-number", json={"reason": "核对证件"}
    )
    assert reveal.status_code == 429


def test_audit_log_keeps_masks_and_hashes_not_numbers(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    browser.get("/api/registry/search", params={"q": FULL})
    browser.get("/api/registry/search", params={"q": "13800000001"})
    text = _audit_text(session)
    assert FULL not in text and "13800000001" not in text
    assert "110***********002X" in text and "138****0001" in text


@pytest.mark.parametrize("query", ["%", "_", "%%", "林%"])
def test_like_wildcards_are_letters_in_name_search(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona, query: str
) -> None:
    assert login_as(worker).get("/api/registry/search", params={"q": query}).json() == []


def test_reads_of_lists_and_reports_are_audited(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    for url in (
        "/registry/completeness",
        "/registry/completeness.xlsx",
        f"/registry/buildings/{grid.b5.id}",
        f"/api/registry/buildings/{grid.b5.id}/households",
        "/api/registry/completeness",
    ):
        assert browser.get(url).status_code == 200, url
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "read")).all()
    kinds = [e.object_type for e in events]
    assert kinds.count("completeness") == 3 and kinds.count("building") == 2
    export = next(e for e in events if e.object_type == "completeness" and e.detail["items"])
    assert export.detail["items"] > 0
