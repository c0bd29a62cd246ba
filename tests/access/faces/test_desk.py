"""The enrolment desk's camera: finding the person by room or name, the verdict of a live
frame in words, and the enrolment of captured frames (never the same picture twice)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access.face_models import FaceConsent, FaceTemplate
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from tests.access.faces.conftest import photo_bytes
from tests.conftest import Grid, Persona, make_persona


@pytest.fixture
def clerk(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "物业前台", Role.property_staff, GridScope(ScopeLevel.compound, grid.park.id)
    )


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_desk_finds_people_by_room_and_by_name(grid: Grid, login_as, clerk: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(clerk)
    by_room = browser.get("/faces", params={"q": "5-1-101"})
    assert by_room.status_code == 200
    assert "林国平" in by_room.text and "5-1-101" in by_room.text
    assert "陈美玲" not in by_room.text
    assert "陈美玲" in browser.get("/faces", params={"q": "陈美玲"}).text
    page = browser.get(f"/faces/people/{grid.resident5.id}")
    assert 'id="desk"' in page.text and "/static/js/desk.js" in page.text


def test_guards_cannot_use_the_desk_camera(grid: Grid, login_as, guard: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(guard)
    pid = grid.resident5.id
    frame = {"frame": ("f.jpg", _jpeg(np.zeros((48, 64, 3), np.uint8)))}
    assert browser.post(f"/api/faces/people/{pid}/check", files=frame).status_code == 403
    frames = [("frames", ("f.jpg", frame["frame"][1])), ("frames", ("g.jpg", frame["frame"][1]))]
    assert browser.post(f"/api/faces/people/{pid}/capture", files=frames).status_code == 403


@pytest.mark.vision
def test_each_frame_gets_its_verdict_in_words_and_nothing_is_stored(
    session: Session, grid: Grid, login_as, clerk: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(clerk)
    url = f"/api/faces/people/{grid.resident5.id}/check"

    def verdict(data: bytes) -> dict[str, object]:
        answer = browser.post(url, files={"frame": ("f.jpg", data)})
        assert answer.status_code == 200
        return answer.json()  # type: ignore[no-any-return]

    dark = verdict(_jpeg(np.full((480, 640, 3), 12, np.uint8)))
    assert dark["code"] == "too_dark" and "太暗" in str(dark["message"])
    empty = verdict(_jpeg(np.full((480, 640, 3), 120, np.uint8)))
    assert empty["code"] == "no_face" and "没有看到人脸" in str(empty["message"])
    two = verdict(photo_bytes("faces_group", "group_02.jpg"))
    assert two["code"] == "several_faces" and "两张以上" in str(two["message"])
    good = verdict(photo_bytes("faces", "angelina_jolie_01.jpg"))
    assert good == {"ok": True, "code": None, "message": "可以拍摄：正脸清晰，光线合适"}
    assert session.scalar(select(func.count(FaceTemplate.id))) == 0


@pytest.mark.vision
def test_two_identical_frames_are_not_two_live_frames(
    session: Session, grid: Grid, login_as, clerk: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(clerk)
    pid = grid.resident5.id
    url = f"/api/faces/people/{pid}/capture"
    one = photo_bytes("faces", "angelina_jolie_01.jpg")
    consent = {"consented_by": "林国平", "method": "in_person"}
    still = browser.post(
        url, data=consent, files=[("frames", ("1.jpg", one)), ("frames", ("2.jpg", one))]
    )
    assert still.status_code == 422 and still.json()["error"] == "same_picture"
    single = browser.post(url, data=consent, files=[("frames", ("1.jpg", one))])
    assert single.status_code == 422 and single.json()["error"] == "frame_count"
    assert session.scalar(select(func.count(FaceConsent.id))) == 0
    two = photo_bytes("faces", "angelina_jolie_02.jpg")
    enrolled = browser.post(
        url, data=consent, files=[("frames", ("1.jpg", one)), ("frames", ("2.jpg", two))]
    )
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["added"] == 8  # two photos, each with its three synthetic masks
    consent_row = session.scalar(select(FaceConsent).where(FaceConsent.person_id == pid))
    assert consent_row is not None and consent_row.method == "in_person"
