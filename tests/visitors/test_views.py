"""The visitors' pages: the public form (CSRF, the form token, the honeypot, rate limits,
size limits, errors that name the field), the pass on the phone, and the staff pages
(approvals, who is inside, posters, a printed pass)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.db import utcnow
from fengchao.visitors import service
from fengchao.visitors.models import PassStatus, VisitorPass
from tests.access.conftest import Gates, make_gates
from tests.conftest import Grid, Persona

FORM = {
    "name": "王小明",
    "phone": "13912345678",
    "id_number": "11010519491231002X",
    "host_room": "5-1-101",
    "purpose": "探望父母",
    "stay_hours": "3",
    "party_size": "1",
    "plate": "",
    "travel": "",
    "health_code": "green",
}


@pytest.fixture
def gates(session: Session, grid: Grid) -> Gates:
    return make_gates(session, grid)


@pytest.fixture
def poster_token(session: Session, gates: Gates) -> str:
    _gate, poster = service.poster_for_gate(
        session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id
    )
    return poster.token


def open_form(client: TestClient, token: str) -> str:
    page = client.get(f"/v/{token}")
    assert page.status_code == 200
    return client.cookies.get("fc_csrf") or ""


def send(
    client: TestClient, token: str, *, seconds_ago: float = 10,
    headers: dict[str, str] | None = None, **changes: object,
) -> object:  # fmt: skip
    csrf = open_form(client, token)
    shown = utcnow() - dt.timedelta(seconds=seconds_ago)
    data = {**FORM, "csrf_token": csrf, "form_token": service.form_token(shown), **changes}
    return client.post(f"/v/{token}", data=data, headers=headers or {})


def test_visitor_fills_the_form_and_sees_the_pass(
    app_client: TestClient, session: Session, poster_token: str
) -> None:
    page = app_client.get(f"/v/{poster_token}")
    assert "访客登记" in page.text and "华润中央公园" in page.text and "东门" in page.text
    answer = send(app_client, poster_token)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    link = answer.headers["location"]  # type: ignore[attr-defined]
    assert link.startswith("/v/pass/")
    shown = app_client.get(link)
    assert shown.status_code == 200 and "有效" in shown.text
    assert 'data-pass-token="FV1-' in shown.text and "<svg" in shown.text
    assert "11010519491231002X" not in shown.text
    row = session.scalar(select(VisitorPass).where(VisitorPass.phone == FORM["phone"]))
    assert row is not None and row.status == PassStatus.active


def test_errors_name_the_field_in_chinese(app_client: TestClient, poster_token: str) -> None:
    answer = send(app_client, poster_token, id_number="110105194912310021", host_room="9-9-909")
    assert answer.status_code == 422  # type: ignore[attr-defined]
    text = answer.text  # type: ignore[attr-defined]
    assert 'id="err-id_number"' in text and "校验位" in text
    assert 'value="王小明"' in text  # nothing typed is lost


def test_unknown_room_says_only_room_not_found(app_client: TestClient, poster_token: str) -> None:
    answer = send(app_client, poster_token, host_room="9-9-909")
    assert answer.status_code == 422  # type: ignore[attr-defined]
    assert "没有找到这个房号" in answer.text  # type: ignore[attr-defined]


def test_form_without_csrf_or_filled_too_fast_or_by_a_script_is_refused(
    app_client: TestClient, session: Session, poster_token: str
) -> None:
    open_form(app_client, poster_token)
    no_csrf = app_client.post(f"/v/{poster_token}", data={**FORM})
    assert no_csrf.status_code == 403
    fast = send(app_client, poster_token, seconds_ago=0.5)
    assert fast.status_code == 422 and "太快" in fast.text  # type: ignore[attr-defined]
    bot = send(app_client, poster_token, website="http://spam.example")
    assert bot.status_code == 422  # type: ignore[attr-defined]
    forged = send(app_client, poster_token, form_token="1.2.3")
    assert forged.status_code == 422  # type: ignore[attr-defined]
    assert session.scalar(select(VisitorPass.id)) is None


def test_the_same_form_sent_twice_gives_one_pass(
    app_client: TestClient, session: Session, poster_token: str
) -> None:
    csrf = open_form(app_client, poster_token)
    data = {**FORM, "csrf_token": csrf,
            "form_token": service.form_token(utcnow() - dt.timedelta(seconds=10))}  # fmt: skip
    first = app_client.post(f"/v/{poster_token}", data=data)
    second = app_client.post(f"/v/{poster_token}", data=data)
    assert first.status_code == second.status_code == 303
    assert len(session.scalars(select(VisitorPass.id)).all()) == 1


def test_one_address_flooding_is_refused_and_others_are_not(
    app_client: TestClient, poster_token: str
) -> None:
    limit = service.get_settings().visitors.per_address_per_hour
    flood = {"X-Forwarded-For": "203.0.113.9"}
    statuses = []
    for _n in range(limit + 5):
        # Bad forms count too: a script does not get past the counter by sending junk.
        statuses.append(send(app_client, poster_token, name="", headers=flood).status_code)  # type: ignore[attr-defined]
    assert statuses[-1] == 429 and statuses[0] == 422
    # Behind no trusted proxy the header is ignored, so use the peer: everyone here is the
    # test client; the phone counter is separate and still refuses at its own limit.
    assert 429 in statuses


def test_huge_and_html_fields(app_client: TestClient, session: Session, poster_token: str) -> None:
    huge = send(app_client, poster_token, purpose="x" * 20000)
    assert huge.status_code == 413  # type: ignore[attr-defined]
    script = "<script>alert(1)</script>"
    answer = send(app_client, poster_token, name=script[:40], purpose=script, travel=script)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    shown = app_client.get(answer.headers["location"])  # type: ignore[attr-defined]
    assert "<script>alert" not in shown.text and "&lt;script&gt;" in shown.text
    row = session.scalar(select(VisitorPass).where(VisitorPass.purpose == script))
    assert row is not None  # stored as text


def test_rotated_poster_address_is_gone(
    app_client: TestClient, session: Session, gates: Gates, poster_token: str
) -> None:
    service.rotate_poster(session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id)
    assert app_client.get(f"/v/{poster_token}").status_code == 404
    assert app_client.get(f"/v/{gates.east.id}").status_code == 404


def test_building_lead_approves_from_the_pass_page(
    app_client: TestClient, login_as, session: Session, grid: Grid, lead5: Persona,
    poster_token: str,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    from fengchao.access import service as access

    access.set_level(
        session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id, level="closed"
    )
    answer = send(app_client, poster_token)
    link = answer.headers["location"]  # type: ignore[attr-defined]
    assert "等待审批" in app_client.get(link).text
    row = session.scalar(select(VisitorPass).where(VisitorPass.phone == FORM["phone"]))
    assert row is not None
    browser = login_as(lead5)
    pending = browser.get("/visitors?show=pending")
    assert "王小明" in pending.text
    page = browser.get(f"/visitors/passes/{row.id}")
    assert "同意来访" in page.text and "110***********002X" in page.text
    done = browser.post(f"/visitors/passes/{row.id}/decide", data={"approve": "yes"})
    assert done.status_code == 303
    session.refresh(row)
    assert row.status == PassStatus.active


def test_guard_prints_a_pass_in_a_few_keystrokes(
    login_as, session: Session, gates: Gates, guard: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(guard)
    assert browser.get("/visitors/issue").status_code == 200
    answer = browser.post(
        "/visitors/issue",
        data={"gate_id": gates.east.id, "name": "李奶奶", "phone": "13600000000",
              "host_room": "5-1-101"},
    )  # fmt: skip
    assert answer.status_code == 303
    printed = browser.get(answer.headers["location"])
    assert printed.status_code == 200 and "李奶奶" in printed.text and "<svg" in printed.text
    bad = browser.post(
        "/visitors/issue",
        data={"gate_id": gates.east.id, "name": "李奶奶", "phone": "123", "host_room": "5-1-101"},
    )
    assert bad.status_code == 422 and "手机号" in bad.text
    assert browser.get("/visitors/posters").status_code == 403


def test_posters_as_pdf_and_png(login_as, worker: Persona, gates: Gates) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    page = browser.get("/visitors/posters")
    assert page.status_code == 200 and "东门" in page.text
    token = re.search(r"/v/([A-Za-z0-9_-]{16})", page.text)
    assert token is not None and str(gates.east.id) != token.group(1)
    pdf = browser.get(f"/visitors/posters/{gates.east.id}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert b"/MediaBox [ 0 0 595.2" in pdf.content  # A4 in points
    png = browser.get(f"/visitors/posters/{gates.east.id}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    # The QR on the poster reads back as the form's address.
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    texts = set()
    for factor in (0.25, 0.3, 0.5):
        small = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        texts.add(cv2.QRCodeDetector().detectAndDecode(small)[0])
    assert any(text.endswith("/v/" + token.group(1)) for text in texts), texts
    rotated = browser.post(f"/visitors/posters/{gates.east.id}/rotate")
    assert rotated.status_code == 303


def test_inside_now_page(login_as, session: Session, gates: Gates, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    from fengchao.access import flows

    row, _link = service.issue(
        session=session, actor=worker.actor, gate_id=gates.east.id, name="张三",
        phone="13600000001", host_room="5-1-101",
    )  # fmt: skip
    flows.decide(
        session=session,
        request=flows.PassageRequest(gate_id=gates.east.id, direction="in", method="code",
                                     value=service.token_for(row), temperature="36.4"),
        sender=flows.Sender("test"),
    )  # fmt: skip
    browser = login_as(worker)
    page = browser.get("/visitors?show=inside")
    assert "张三" in page.text and "在内" in page.text


def test_form_and_pass_in_english(
    app_client: TestClient, session: Session, poster_token: str
) -> None:
    app_client.cookies.set("fc_lang", "en")
    allowed = ("华润中央公园", "东门", "王小明", "探望父母", "蜂", "简体中文")
    cjk = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")

    def leftover(text: str) -> list[str]:
        for word in allowed:
            text = text.replace(word, "")
        return cjk.findall(text)

    form = app_client.get(f"/v/{poster_token}")
    assert "Visitor registration" in form.text and not leftover(form.text)
    answer = send(app_client, poster_token, id_number="110105194912310021")
    assert "check" in answer.text and leftover(answer.text) == []  # type: ignore[attr-defined]
    answer = send(app_client, poster_token)
    shown = app_client.get(answer.headers["location"])  # type: ignore[attr-defined]
    assert "Visitor pass" in shown.text and not leftover(shown.text)


def test_watchlist_page(login_as, worker: Persona, guard: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    added = browser.post(
        "/visitors/watch",
        data={"phone": "13912345678", "reason": "<b>多次冒用</b>", "days": "7"},
    )
    assert added.status_code == 303
    page = browser.get("/visitors/watch")
    assert "13912345678" in page.text and "&lt;b&gt;多次冒用" in page.text
    bad = browser.post("/visitors/watch", data={"reason": "x", "days": "7"})
    assert bad.status_code == 422 and "身份证号或手机号" in bad.text
    assert login_as(guard).get("/visitors/watch").status_code == 403


def test_history_export_masks_id_and_neutralises_formulas(
    login_as, session: Session, gates: Gates, worker: Persona, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    import io

    from openpyxl import load_workbook

    service.issue(
        session=session, actor=worker.actor, gate_id=gates.east.id, name="=HYPERLINK(1)",
        phone="13600000002", host_room="5-1-101",
    )  # fmt: skip
    browser = login_as(worker)
    answer = browser.get("/visitors/export.xlsx")
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None
    names = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert names and not str(names[0]).startswith("=")
    assert login_as(lead5).get("/visitors/export.xlsx").status_code == 403


def test_a_flood_from_one_address_does_not_refuse_another(
    app_client: TestClient, session: Session, poster_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fengchao.settings import get_settings

    monkeypatch.setenv("FENGCHAO_LOGIN__TRUST_FORWARDED_FOR", "true")
    get_settings.cache_clear()
    try:
        limit = get_settings().visitors.per_address_per_hour
        flood = {"X-Forwarded-For": "203.0.113.9"}
        statuses = [
            send(app_client, poster_token, name="", headers=flood).status_code  # type: ignore[attr-defined]
            for _n in range(limit + 3)
        ]
        assert statuses[:limit] == [422] * limit and statuses[limit:] == [429] * 3
        other = send(app_client, poster_token, headers={"X-Forwarded-For": "198.51.100.7"})
        assert other.status_code == 303  # type: ignore[attr-defined]
    finally:
        monkeypatch.delenv("FENGCHAO_LOGIN__TRUST_FORWARDED_FOR")
        get_settings.cache_clear()


def test_script_in_every_field_is_shown_back_as_text(
    app_client: TestClient, poster_token: str
) -> None:
    script = "<script>alert(1)</script>"
    fields = {name: script for name in FORM}
    answer = send(app_client, poster_token, symptoms=script, **fields)
    assert answer.status_code == 422  # type: ignore[attr-defined]
    text = answer.text  # type: ignore[attr-defined]
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)" in text
