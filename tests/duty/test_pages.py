"""Duty pages as each role sees them: the worker's roster, register and posts, exports, the
repair diff; the volunteer's phone sign-up; English pages; a real served app."""

from __future__ import annotations

import io
import re

import openpyxl
import segno
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.duty.models import Assignment, Post, Volunteer
from tests.conftest import Grid, Live, Persona, make_persona
from tests.web.test_english import ALLOWED, CJK

WEEK = "2027-01-04"
EVERY = [f"{d}-{p}" for d in range(7) for p in ("night", "day", "evening")]


def _set_up(browser, grid: Grid) -> None:  # type: ignore[no-untyped-def]
    c = grid.community.id
    assert (
        browser.post(
            "/duty/posts", data={"name": "东门", "kind": "gate", "community": c}
        ).status_code
        == 303
    )
    assert (
        browser.post(
            "/duty/posts", data={"name": "采样点", "kind": "sampling", "community": c}
        ).status_code
        == 303
    )


def test_worker_builds_posts_and_a_roster_with_a_named_hole(
    session: Session,
    grid: Grid,
    worker: Persona,
    login_as,  # type: ignore[no-untyped-def]
) -> None:
    browser = login_as(worker)
    _set_up(browser, grid)
    gate, site = session.scalars(select(Post).order_by(Post.id)).all()
    for name, a, b in (
        ("值大夜", "00:00", "08:00"),
        ("白班", "08:00", "16:00"),
        ("晚班", "16:00", "00:00"),
    ):
        response = browser.post(
            f"/duty/posts/{gate.id}/templates",
            data={"name": name, "starts": a, "ends": b, "min_people": 1, "max_people": 2},
        )
        assert response.status_code == 303
    response = browser.post(
        f"/duty/posts/{site.id}/templates",
        data={
            "name": "采样",
            "starts": "07:30",
            "ends": "13:30",
            "min_people": 1,
            "max_people": 1,
            "skills": "medical",
        },
    )
    assert response.status_code == 303
    for i in range(5):
        response = browser.post(
            "/duty/register",
            data={
                "name": f"志愿者{i}",
                "identity": "party_member",
                "max_hours_week": 40,
                "community": grid.community.id,
            },
        )
        assert response.status_code == 303
    for v in session.scalars(select(Volunteer)):
        v.weekly = EVERY
    response = browser.post(
        "/duty/roster/compute", data={"week": WEEK, "community": grid.community.id}
    )
    assert response.status_code == 303
    page = browser.get(f"/duty/roster?week={WEEK}")
    assert page.status_code == 200
    assert "没有人具备技能“medical”" in page.text  # the hole and its reason
    assert "覆盖 21/21" in page.text
    # XLSX: a sheet per post.
    xlsx = browser.get(f"/duty/roster.xlsx?week={WEEK}")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["东门", "采样点"]
    assert book["东门"].max_row == 22
    # iCalendar of one volunteer.
    someone = session.scalars(select(Assignment)).first()
    assert someone is not None
    ics = browser.get(f"/duty/volunteers/{someone.volunteer_id}/calendar.ics")
    events = [e for e in Calendar.from_ical(ics.content).walk("VEVENT")]
    assert events and all("东门" in str(e["summary"]) for e in events)
    # Cancel → diff page → confirm.
    response = browser.post(f"/duty/assignments/{someone.id}/cancel")
    assert response.status_code == 303
    repair = browser.get(response.headers["location"])
    assert "确认调整并通知" in repair.text
    confirm = browser.post(response.headers["location"] + "/confirm")
    assert confirm.status_code == 303
    assert "已确认" in browser.get(response.headers["location"]).text


def test_contradictory_template_is_refused_naming_the_field(
    session: Session,
    grid: Grid,
    worker: Persona,
    login_as,  # type: ignore[no-untyped-def]
) -> None:
    browser = login_as(worker)
    _set_up(browser, grid)
    gate = session.scalars(select(Post).order_by(Post.id)).first()
    assert gate is not None
    response = browser.post(
        f"/duty/posts/{gate.id}/templates",
        data={"name": "x", "starts": "08:00", "ends": "16:00", "min_people": 3, "max_people": 1},
    )
    assert response.status_code == 422
    assert "最多人数（1）不能少于最少人数（3）" in response.text


def test_volunteer_signs_up_from_the_phone_page_and_cannot_see_the_roster(
    session: Session,
    grid: Grid,
    login_as,  # type: ignore[no-untyped-def]
) -> None:
    persona = make_persona(
        session, "vol", Role.volunteer, GridScope(ScopeLevel.community, grid.community.id)
    )
    browser = login_as(persona)
    page = browser.get("/duty/me")
    assert page.status_code == 200 and "报名" in page.text
    response = browser.post(
        "/duty/me",
        data={
            "name": "王芳",
            "phone": "13900000000",
            "identity": "veteran",
            "max_hours_week": 12,
            "weekly": ["0-night", "5-day"],
        },
    )
    assert response.status_code == 303
    volunteer = session.scalars(select(Volunteer).where(Volunteer.user_id == persona.user.id)).one()
    assert volunteer.weekly == ["0-night", "5-day"] and volunteer.community_id == grid.community.id
    bad = browser.post("/duty/me", data={"name": "王芳", "phone": "123", "identity": "veteran"})
    assert bad.status_code == 422 and "手机号" in bad.text
    assert browser.get("/duty/roster").status_code == 403
    assert browser.post("/duty/me/away", data={"day": "2027-01-05"}).status_code == 303


def test_guard_has_no_duty_pages(grid: Grid, guard: Persona, login_as) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(guard)
    assert browser.get("/duty/register").status_code == 403
    assert browser.get("/duty/me").status_code == 403


def test_duty_pages_on_the_served_app_and_in_english(live: Live) -> None:
    worker = live.client("worker", lang="en")
    c = live.grid.community.id
    csrf = worker.get("/duty/posts").text.split('name="csrf_token" value="')[1].split('"')[0]
    assert worker.post(
        "/duty/posts",
        data={
            "name": "East gate",
            "kind": "gate",
            "community": c,
            "csrf_token": csrf,
        },
    ).status_code in (303, 422)
    names = [live.grid.community.name, live.grid.street.name, "East gate"]
    for url in (
        "/duty/roster",
        "/duty/register",
        "/duty/posts",
        "/duty/checkin",
        f"/duty/roster?week={WEEK}",
    ):
        page = worker.get(url)
        assert page.status_code == 200, url
        text = page.text
        for allowed in (*ALLOWED, *names, *[p.user.display_name for p in live.personas.values()]):
            text = text.replace(allowed, "")
        assert not CJK.findall(text), (url, CJK.findall(text)[:5])
    assert re.search(r"Roster", worker.get("/duty/roster").text)


def test_the_check_in_camera_reads_a_code_from_a_frame(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona, guard: Persona
) -> None:
    text = codes.personal_code(session, grid.resident5.id)
    picture = io.BytesIO()
    segno.make(text, error="m").save(picture, kind="png", scale=8, border=4)
    browser = login_as(worker)
    read = browser.post(
        "/duty/checkin/read-code", files={"frame": ("f.png", picture.getvalue(), "image/png")}
    )
    assert read.status_code == 200 and read.json() == {"code": text}
    nothing = browser.post(
        "/duty/checkin/read-code", files={"frame": ("f.png", b"not a picture", "image/png")}
    )
    assert nothing.status_code == 422 and "frame" in nothing.text
    refused = login_as(guard).post(
        "/duty/checkin/read-code", files={"frame": ("f.png", picture.getvalue(), "image/png")}
    )
    assert refused.status_code == 403
