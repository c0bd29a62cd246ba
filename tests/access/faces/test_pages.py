"""The enrolment desk's pages and the faces API: roles, refusals in words, the audited
thumbnail, deletion on request, and the compliance figures."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import faces
from fengchao.access.face_models import FaceConsent, FaceTemplate
from fengchao.auth.models import AuditEvent, Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import flush_rows_at_commit
from tests.access.faces.conftest import photo_bytes
from tests.conftest import Grid, Persona, make_persona


@pytest.fixture
def clerk(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "物业前台", Role.property_staff, GridScope(ScopeLevel.community, grid.community.id)
    )


def test_roles_that_may_not_manage_faces_are_refused(
    grid: Grid, login_as, guard: Persona, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    pid = grid.resident5.id
    for persona in (guard, lead5):
        browser = login_as(persona)
        assert browser.get("/faces").status_code == 403
        assert browser.get(f"/faces/people/{pid}").status_code == 403
        assert browser.get(f"/faces/people/{pid}/thumbnail.jpg").status_code == 403
        assert browser.post(f"/faces/people/{pid}/withdraw").status_code == 403
        assert browser.post("/api/faces/identify", content=b"x").status_code == 403


def test_out_of_scope_person_is_not_found(session: Session, grid: Grid, login_as) -> None:  # type: ignore[no-untyped-def]
    other = make_persona(
        session, "新村物业", Role.property_staff, GridScope(ScopeLevel.compound, grid.other.id)
    )
    browser = login_as(other)
    assert browser.get(f"/faces/people/{grid.resident5.id}").status_code == 404
    assert browser.get("/faces").status_code == 200


def test_compliance_page_is_for_administrators(
    grid: Grid, login_as, admin: Persona, clerk: Persona
) -> None:  # type: ignore[no-untyped-def]
    page = login_as(admin).get("/faces/compliance")
    assert page.status_code == 200
    assert "100,000" in page.text and "本社区自己的服务器" in page.text
    assert login_as(clerk).get("/faces/compliance").status_code == 403
    assert "/faces/compliance" in login_as(admin).get("/audit").text


def test_compliance_warns_near_the_filing_threshold(
    grid: Grid, login_as, admin: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(faces, "FILING_THRESHOLD", 0)
    page = login_as(admin).get("/faces/compliance")
    assert "网信部门备案" in page.text


@pytest.mark.vision
def test_the_desk_enrols_shows_and_deletes(
    session: Session, grid: Grid, login_as, clerk: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(clerk)
    pid = grid.resident5.id
    page = browser.get(f"/faces/people/{pid}")
    assert page.status_code == 200 and "居民同意" in page.text
    photo = photo_bytes("faces", "angelina_jolie_01.jpg")
    # Without consent: refused in words, nothing stored.
    refused = browser.post(f"/faces/people/{pid}/enrol", files={"photos": ("a.jpg", photo)})
    assert refused.status_code == 422 and "同意" in refused.text
    # A group photo: refused, the reason in words.
    group = photo_bytes("faces_group", "group_02.jpg")
    several = browser.post(
        f"/faces/people/{pid}/enrol",
        files={"photos": ("g.jpg", group)},
        data={"consented_by": "林国平", "method": "signed_form"},
    )
    assert several.status_code == 422 and "不止一张人脸" in several.text
    done = browser.post(
        f"/faces/people/{pid}/enrol",
        files={"photos": ("a.jpg", photo)},
        data={"consented_by": "林国平", "method": "signed_form"},
    )
    assert done.status_code == 303, done.text
    shown = browser.get(f"/faces/people/{pid}")
    assert "thumbnail.jpg" in shown.text and "林国平" in shown.text
    thumb = browser.get(f"/faces/people/{pid}/thumbnail.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert "no-store" in thumb.headers["cache-control"]
    flush_rows_at_commit(session)
    assert "face_thumbnail_view" in set(session.scalars(select(AuditEvent.action)))
    deleted = browser.post(f"/faces/people/{pid}/delete")
    assert deleted.status_code == 303
    assert session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == pid)) is None
    assert browser.get(f"/faces/people/{pid}/thumbnail.jpg").status_code == 404
    withdrawn = browser.post(f"/faces/people/{pid}/withdraw")
    assert withdrawn.status_code == 303
    consent = session.scalars(select(FaceConsent).where(FaceConsent.person_id == pid)).one()
    assert consent.withdrawn_at is not None


@pytest.mark.vision
def test_the_api_enrols_and_identifies(grid: Grid, login_as, clerk: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(clerk)
    pid = grid.resident5.id
    bad = browser.post(
        f"/api/faces/people/{pid}/enrol",
        files={"photos": ("x.jpg", b"not an image")},
        data={"consented_by": "林国平"},
    )
    assert bad.status_code == 422 and bad.json()["error"] == "not_an_image"
    good = browser.post(
        f"/api/faces/people/{pid}/enrol",
        files={"photos": ("a.jpg", photo_bytes("faces", "angelina_jolie_01.jpg"))},
        data={"consented_by": "林国平"},
    )
    assert good.status_code == 200 and good.json()["templates"] == 4
    seen = browser.post(
        "/api/faces/identify",
        content=photo_bytes("faces", "angelina_jolie_03.jpg"),
        headers={"Content-Type": "image/jpeg"},
    )
    assert seen.status_code == 200 and seen.json()["person_id"] == pid
    junk = browser.post("/api/faces/identify", content=b"junk")
    assert junk.json()["reason"] == "bad_image"
