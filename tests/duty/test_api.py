"""Duty's JSON API: the week's roster and computing it, a volunteer's own shifts and
availability, check-in and check-out with the resident code (idempotent by key), and a
cancellation's repair; each with the pages' role and scope refusals and the field named."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import utcnow
from fengchao.duty import service
from fengchao.duty.models import Assignment, Post, RepairProposal, Shift, Volunteer
from tests.conftest import Grid, Live, Persona, build_grid, make_persona

API = "/api/duty"
EVERY = [f"{d}-{p}" for d in range(7) for p in ("night", "day", "evening")]


def _field(response) -> str:  # type: ignore[no-untyped-def]
    """The field a JSON refusal names (the first one)."""
    return str(response.json()["errors"][0]["field"])


def _future_week() -> str:
    return service.monday_of(utcnow().date() + dt.timedelta(days=14)).isoformat()


def _posts_and_people(session: Session, grid: Grid, worker: Persona) -> tuple[Post, Post]:
    """东门 in three shifts a day, 采样点 needing a medical certificate nobody has, and five
    volunteers free all week."""
    actor = worker.actor
    gate = service.create_post(
        session=session, actor=actor, community_id=grid.community.id, name="东门"
    )
    for name, a, b in (("值大夜", 0, 8), ("白班", 8, 16), ("晚班", 16, 0)):
        service.add_template(
            session=session, actor=actor, post_id=gate.id, name=name,
            starts=dt.time(a), ends=dt.time(b), min_people=1, max_people=2,
        )  # fmt: skip
    site = service.create_post(
        session=session, actor=actor, community_id=grid.community.id, name="采样点",
        kind="sampling",
    )  # fmt: skip
    service.add_template(
        session=session, actor=actor, post_id=site.id, name="采样", starts=dt.time(7, 30),
        ends=dt.time(13, 30), min_people=1, max_people=1, skills=["medical"],
    )  # fmt: skip
    for i in range(5):
        service.register_volunteer(
            session=session, actor=actor, community_id=grid.community.id, name=f"志愿者{i}",
            max_hours_week=40, weekly=EVERY,
        )  # fmt: skip
    return gate, site


def _on_duty_now(
    session: Session, grid: Grid, post: Post, name: str, person_id: int | None
) -> Assignment:
    """A volunteer (with the resident's code when ``person_id``) on a shift of ``post`` that
    began ten minutes ago."""
    volunteer = Volunteer(
        community_id=grid.community.id, name=name, person_id=person_id, weekly=EVERY
    )
    start = utcnow().replace(microsecond=0) - dt.timedelta(minutes=10)
    shift = session.scalars(
        select(Shift).where(Shift.post_id == post.id, Shift.starts_at == start)
    ).first()
    if shift is None:
        shift = Shift(
            community_id=grid.community.id, post_id=post.id, name="白班", starts_at=start,
            ends_at=start + dt.timedelta(hours=8), min_people=1, max_people=2,
        )  # fmt: skip
        session.add(shift)
    session.add(volunteer)
    session.flush()
    assignment = Assignment(shift_id=shift.id, volunteer_id=volunteer.id)
    session.add(assignment)
    session.flush()
    return assignment


def _other_worker(session: Session) -> Persona:
    """A community worker of another community."""
    elsewhere = build_grid(session)
    return make_persona(
        session, "elsewhere", Role.community_worker,
        GridScope(ScopeLevel.community, elsewhere.community.id),
    )  # fmt: skip


def test_a_worker_computes_reads_and_repairs_the_week(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:
    _posts_and_people(session, grid, worker)
    browser = login_as(worker)
    week = _future_week()
    body = {"community": grid.community.id, "week": week, "time_limit": 5}
    computed = browser.post(f"{API}/roster/compute", json=body)
    assert computed.status_code == 200, computed.text
    summary = computed.json()
    assert summary["week"] == week and summary["shifts"] == 28
    assert summary["assignments"] >= 21
    assert len(summary["holes"]) == 7  # the sampling site, every day: nobody has the skill
    assert summary["holes"][0]["reason"] == "没有人具备技能“medical”（或证书已过期）"
    assert {"gap", "seconds", "hours_spread", "nights_spread"} <= summary.keys()

    # Any day of the week names the week.
    wednesday = (dt.date.fromisoformat(week) + dt.timedelta(days=2)).isoformat()
    read = browser.get(f"{API}/roster", params={"community": grid.community.id, "week": wednesday})
    assert read.status_code == 200
    roster = read.json()
    assert roster["week"] == week and roster["timezone"] == "Asia/Shanghai"
    assert len(roster["assignments"]) == summary["assignments"]
    night = next(a for a in roster["assignments"] if a["shift"] == "值大夜")
    assert night["post"] == "东门" and night["volunteer"].startswith("志愿者")
    assert night["start"].endswith("T00:00:00") and night["end"].endswith("T08:00:00")
    assert len(roster["holes"]) == 7 and roster["holes"][0]["post"] == "采样点"
    assert roster["holes"][0]["start"].endswith("T07:30:00")
    assert "medical" in roster["holes"][0]["reason"]
    gate = next(c for c in roster["coverage"] if c["post"] == "东门")
    assert (gate["placed"], gate["required"]) == (21, 21)
    assert (roster["placed"], roster["required"]) == (21, 28)

    # A cancellation: the diff, then confirmed; a second decision is refused.
    first, second = roster["assignments"][0], roster["assignments"][5]
    cancelled = browser.post(f"{API}/assignments/{first['assignment_id']}/cancel")
    assert cancelled.status_code == 201, cancelled.text
    proposal = cancelled.json()
    assert proposal["status"] == "proposed" and proposal["assignment_id"] == first["assignment_id"]
    assert any(c["added"] and c["shift_id"] == first["shift_id"] for c in proposal["changes"])
    assert browser.get(f"{API}/repairs/{proposal['id']}").json() == proposal
    confirmed = browser.post(f"{API}/repairs/{proposal['id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    again = browser.post(f"{API}/repairs/{proposal['id']}/confirm")
    assert again.status_code == 422 and _field(again) == "repair"
    twice = browser.post(f"{API}/assignments/{first['assignment_id']}/cancel")
    assert twice.status_code == 422 and _field(twice) == "assignment"
    after = browser.get(f"{API}/roster", params={"week": week}).json()
    assert first["assignment_id"] not in {a["assignment_id"] for a in after["assignments"]}

    # Another cancellation, its repair discarded: the roster keeps its hole.
    other = browser.post(f"{API}/assignments/{second['assignment_id']}/cancel").json()
    discarded = browser.post(f"{API}/repairs/{other['id']}/discard")
    assert discarded.status_code == 200 and discarded.json()["status"] == "discarded"


def test_bad_input_to_the_roster_names_the_field(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:
    browser = login_as(worker)
    for week in ("2027-13-40", "next", "2027/01/04"):
        bad = browser.get(f"{API}/roster", params={"week": week})
        assert bad.status_code == 422 and _field(bad) == "week", week
        assert bad.json()["errors"][0]["message"] == "应为日期（如 2026-01-31）"
    for body, field in (
        ({"week": "2027-02-30"}, "week"),
        ({"week": 20270104}, "week"),
        ({"time_limit": "fast"}, "time_limit"),
        ({"time_limit": 0}, "time_limit"),
        ({"time_limit": 3600}, "time_limit"),
        ({"community": "宏侨社区"}, "community"),
        ({"community": 0}, "community"),
        ({"weeks": "2027-01-04"}, "weeks"),
    ):
        bad = browser.post(f"{API}/roster/compute", json=body)
        assert bad.status_code == 422 and _field(bad) == field, (body, bad.text)
    empty = browser.post(
        f"{API}/roster/compute", content=b"", headers={"content-type": "application/json"}
    )
    assert empty.status_code == 422
    wrong = browser.post(f"{API}/roster/compute", json=["2027-01-04"])
    assert wrong.status_code == 422
    assert browser.get(f"{API}/roster", params={"community": "x"}).status_code == 422


def test_a_shift_already_started_cannot_be_cancelled(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:
    gate, _site = _posts_and_people(session, grid, worker)
    assignment = _on_duty_now(session, grid, gate, "张伟", None)
    refused = login_as(worker).post(f"{API}/assignments/{assignment.id}/cancel")
    assert refused.status_code == 422 and _field(refused) == "assignment"
    assert "已经开始" in refused.json()["detail"]
    assert session.scalars(select(RepairProposal)).first() is None


def test_check_in_and_out_with_the_resident_code_and_a_retried_key(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:
    gate, _site = _posts_and_people(session, grid, worker)
    mine = _on_duty_now(session, grid, gate, "林国平", grid.resident5.id)
    _on_duty_now(session, grid, gate, "陈美玲", grid.resident6.id)
    code = codes.personal_code(session, grid.resident5.id)
    other_code = codes.personal_code(session, grid.resident6.id)
    browser = login_as(worker)
    url = f"{API}/posts/{gate.id}/check-in"

    first = browser.post(url, json={"code": code}, headers={"Idempotency-Key": "gate-in-0001"})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["action"] == "in" and answer["volunteer"] == "林国平"
    assert answer["post"] == "东门" and answer["shift_id"] == mine.shift_id
    assert not answer["replayed"]
    local_now = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
    assert abs(dt.datetime.fromisoformat(answer["at"]) - local_now) < dt.timedelta(minutes=2)

    retry = browser.post(url, json={"code": code}, headers={"Idempotency-Key": "gate-in-0001"})
    assert retry.status_code == 200
    assert retry.json() == {**answer, "replayed": True}

    # Without the key (or with another) the second check-in is refused, naming the code.
    for headers in ({}, {"Idempotency-Key": "gate-in-0002"}):
        double = browser.post(url, json={"code": code}, headers=headers)
        assert double.status_code == 422 and _field(double) == "code"
        assert "已在" in double.json()["detail"]
    # The same key for someone else is another request: refused.
    clash = browser.post(
        url, json={"code": other_code}, headers={"Idempotency-Key": "gate-in-0001"}
    )
    assert clash.status_code == 409 and _field(clash) == "Idempotency-Key"

    roster = browser.get(f"{API}/roster", params={"week": utcnow().date().isoformat()}).json()
    assert [a["checked_in"] for a in roster["assignments"] if a["volunteer"] == "林国平"] == [True]

    out_url = f"{API}/posts/{gate.id}/check-out"
    out = browser.post(out_url, json={"code": code}, headers={"Idempotency-Key": "gate-out-01"})
    assert out.status_code == 200 and out.json()["action"] == "out"
    assert out.json()["check_in_id"] == answer["check_in_id"]
    out_again = browser.post(
        out_url, json={"code": code}, headers={"Idempotency-Key": "gate-out-01"}
    )
    assert out_again.json() == {**out.json(), "replayed": True}
    not_in = browser.post(out_url, json={"code": code})
    assert not_in.status_code == 422 and _field(not_in) == "code"
    # The first answer stays the first answer, after the check-out too.
    assert browser.post(
        url, json={"code": code}, headers={"Idempotency-Key": "gate-in-0001"}
    ).json() == {**answer, "replayed": True}


def test_check_in_refusals_name_the_field(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:
    gate, site = _posts_and_people(session, grid, worker)
    _on_duty_now(session, grid, gate, "林国平", grid.resident5.id)
    code = codes.personal_code(session, grid.resident5.id)
    stranger = codes.personal_code(session, grid.resident6.id)  # not a volunteer
    browser = login_as(worker)

    wrong_post = browser.post(f"{API}/posts/{site.id}/check-in", json={"code": code})
    assert wrong_post.status_code == 422 and _field(wrong_post) == "post"
    assert "东门" in wrong_post.json()["detail"]
    url = f"{API}/posts/{gate.id}/check-in"
    for body, field, status in (
        ({"code": ""}, "code", 422),  # empty
        ({"code": "   "}, "code", 422),
        ({"code": "not-a-code"}, "code", 422),  # unknown
        ({"code": stranger}, "code", 422),  # a resident who is not a volunteer
        ({"code": 12345}, "code", 422),  # wrong type
        ({"code": ["x"]}, "code", 422),
        ({}, "code", 422),  # missing
        ({"code": code, "post": 1}, "post", 422),  # a field the route does not take
    ):
        refused = browser.post(url, json=body)
        assert refused.status_code == status and _field(refused) == field, (body, refused.text)
        assert refused.json()["errors"][0]["message"]
    typed = browser.post(url, json={"code": 12345})
    assert typed.json()["errors"][0]["message"] == "应为文字"
    long_key = browser.post(url, json={"code": code}, headers={"Idempotency-Key": "k" * 129})
    assert long_key.status_code == 422 and _field(long_key) == "idempotency-key"
    assert browser.post(f"{API}/posts/999999/check-in", json={"code": code}).status_code == 404
    assert browser.post(f"{API}/posts/abc/check-in", json={"code": code}).status_code == 404
    # Nothing was written by any refusal: the real check-in still goes through.
    assert browser.post(url, json={"code": code}).status_code == 200


def test_out_of_scope_is_not_found_and_a_role_without_the_permission_forbidden(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, guard: Persona, lead5: Persona, login_as
) -> None:
    gate, _site = _posts_and_people(session, grid, worker)
    assignment = _on_duty_now(session, grid, gate, "林国平", grid.resident5.id)
    code = codes.personal_code(session, grid.resident5.id)
    proposal = RepairProposal(
        community_id=grid.community.id, assignment_id=assignment.id, diff={}, holes=[]
    )
    session.add(proposal)
    session.flush()
    c = grid.community.id
    calls = [
        ("get", f"{API}/roster?community={c}", None),
        ("post", f"{API}/roster/compute", {"community": c, "week": _future_week()}),
        ("post", f"{API}/posts/{gate.id}/check-in", {"code": code}),
        ("post", f"{API}/posts/{gate.id}/check-out", {"code": code}),
        ("post", f"{API}/assignments/{assignment.id}/cancel", None),
        ("get", f"{API}/repairs/{proposal.id}", None),
        ("post", f"{API}/repairs/{proposal.id}/confirm", None),
        ("post", f"{API}/repairs/{proposal.id}/discard", None),
    ]

    def answers(persona: Persona) -> list[int]:
        browser = login_as(persona)
        out = []
        for method, url, body in calls:
            response = browser.get(url) if method == "get" else browser.post(url, json=body)
            assert "detail" in response.json()
            out.append(response.status_code)
        return out

    assert answers(_other_worker(session)) == [404] * len(calls)
    assert answers(guard) == [403] * len(calls)
    assert answers(lead5) == [403] * len(calls)  # a lead may volunteer, not manage duty
    session.refresh(assignment)
    assert assignment.status == "assigned" and proposal.status == "proposed"
    # The volunteer's own routes: not for a worker (no duty.self), nor for a guard.
    for persona in (worker, guard):
        browser = login_as(persona)
        assert browser.get(f"{API}/me").status_code == 403
        put = browser.client.put(
            f"{API}/me/availability", json={"weekly": []}, headers={"X-CSRF-Token": browser.csrf}
        )
        assert put.status_code == 403


def test_the_api_needs_a_login_and_the_csrf_header(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, app_client, login_as
) -> None:
    app_client.cookies.clear()
    anonymous = app_client.get(f"{API}/roster")
    assert anonymous.status_code == 401 and anonymous.json()["detail"] == "请先登录"
    browser = login_as(worker)
    no_token = browser.client.post(f"{API}/roster/compute", json={})
    assert no_token.status_code == 403


def test_a_volunteer_reads_their_shifts_and_updates_availability(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:
    gate, _site = _posts_and_people(session, grid, worker)
    persona = make_persona(
        session, "vol", Role.volunteer, GridScope(ScopeLevel.community, grid.community.id)
    )
    actor = auth_service.actor_for(persona.user, session)
    volunteer = service.sign_up(
        session=session, actor=actor, name="王芳", phone=None, identity="veteran",
        weekly=["0-night"],
    )  # fmt: skip
    assignment = _on_duty_now(session, grid, gate, "其他人", None)
    session.add(Assignment(shift_id=assignment.shift_id, volunteer_id=volunteer.id))
    session.flush()
    browser = login_as(persona)

    def put(body: object):  # type: ignore[no-untyped-def]
        return browser.client.put(
            f"{API}/me/availability", json=body, headers={"X-CSRF-Token": browser.csrf}
        )

    mine = browser.get(f"{API}/me")
    assert mine.status_code == 200, mine.text
    data = mine.json()
    assert data["name"] == "王芳" and data["identity"] == "veteran"
    assert data["weekly"] == ["0-night"] and data["hours_served"] == 0
    assert [(s["post"], s["shift"]) for s in data["shifts"]] == [("东门", "白班")]
    assert "T" in data["shifts"][0]["start"] and "+" not in data["shifts"][0]["start"]

    saved = put({"weekly": ["5-day", "0-night"], "max_hours_week": 12, "away": ["2027-01-05"]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["weekly"] == ["0-night", "5-day"]
    assert saved.json()["max_hours_week"] == 12
    session.refresh(volunteer)
    assert [(e.day, e.available) for e in volunteer.exceptions] == [(dt.date(2027, 1, 5), False)]

    for body, field in (
        ({"weekly": ["9-day"]}, "weekly"),
        ({"weekly": ["0-night"], "away": ["2027-02-30"]}, "away.0"),
        ({"weekly": ["0-night"], "away": ["05/01/2027"]}, "away.0"),
        ({"weekly": "0-night"}, "weekly"),
        ({"weekly": [1]}, "weekly.0"),
        ({"weekly": ["0-night"], "max_hours_week": 100}, "max_hours_week"),
        ({"weekly": ["0-night"], "max_hours_week": "many"}, "max_hours_week"),
        ({}, "weekly"),
    ):
        refused = put(body)
        assert refused.status_code == 422 and _field(refused) == field, (body, refused.text)
    session.refresh(volunteer)
    assert volunteer.weekly == ["0-night", "5-day"] and volunteer.max_hours_week == 12

    # An account that never signed up has no duty of its own yet.
    newcomer = make_persona(
        session, "new", Role.volunteer, GridScope(ScopeLevel.community, grid.community.id)
    )
    assert login_as(newcomer).get(f"{API}/me").status_code == 404


def test_the_duty_api_on_the_served_app(live: Live) -> None:
    worker = live.client("worker")
    roster = worker.get(f"{API}/roster")
    assert roster.status_code == 200 and roster.json()["assignments"] == []
    bad = worker.get(f"{API}/roster", params={"week": "2027-02-30"})
    assert bad.status_code == 422 and _field(bad) == "week"
    guard = live.client("guard")
    refused = guard.get(f"{API}/roster")
    assert refused.status_code == 403 and refused.json()["detail"] == "您的角色没有这项权限"
    english = live.client("worker", lang="en")
    assert english.get(f"{API}/roster", params={"week": "x"}).json()["errors"][0]["message"] == (
        "must be a date (such as 2026-01-31)"
    )
