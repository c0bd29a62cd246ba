"""The audit log as an administrator reads it: words, links, filters, failed logins."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Grid, Persona


def test_audit_log_reads_as_words_with_links_and_filters(  # type: ignore[no-untyped-def]
    login_as, app_client: TestClient, grid: Grid, admin: Persona, worker: Persona
) -> None:
    app_client.get("/login")
    app_client.post(
        "/login",
        data={"username": worker.user.username, "password": "wrong-password-9",
              "csrf_token": app_client.cookies.get("fc_csrf")},
    )  # fmt: skip
    login_as(worker).get(f"/registry/people/{grid.resident5.id}")
    browser = login_as(admin)
    page = browser.get("/audit").text
    assert "查看" in page and "居民" in page and "登录失败" in page
    assert f'href="/registry/people/{grid.resident5.id}"' in page
    assert "id_unmasked" not in page and ">read<" not in page
    only = browser.get("/audit", params={"action": "login_failed"}).text
    assert "登录失败" in only and f"/registry/people/{grid.resident5.id}" not in only
    by_user = browser.get("/audit", params={"username": worker.user.username.upper()}).text
    assert f"/registry/people/{grid.resident5.id}" in by_user
    by_record = browser.get("/audit", params={"record": f"person {grid.resident5.id}"}).text
    assert "共 1 条" in by_record
    future = browser.get("/audit", params={"since": "2099-01-01"}).text
    assert "没有符合条件的记录" in future
    bad_date = browser.get("/audit", params={"since": "yesterday"})
    assert bad_date.status_code == 422 and "since" in bad_date.text


def test_audit_log_exports_what_the_filter_shows(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, admin: Persona, worker: Persona
) -> None:
    import io

    import openpyxl

    login_as(worker).get(f"/registry/people/{grid.resident5.id}")
    browser = login_as(admin)
    export = browser.get("/audit.xlsx", params={"action": "read"})
    assert export.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(export.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("时间", "用户", "动作")
    assert any(r[2] == "查看" and r[3] == "居民" and r[4] == str(grid.resident5.id) for r in rows)
    assert all(r[2] == "查看" for r in rows[1:])
    assert login_as(worker).get("/audit.xlsx").status_code == 403


def test_acts_that_name_no_record_are_filed_under_the_actors_community(live) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from fengchao.auth.models import AuditEvent

    live.client("lead5").get("/registry/search", params={"q": "林"})
    live.client("guard").get("/registry/rooms", params={"q": "5-1-101"})
    with Session(live.engine) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(("search", "lookup")))
        ).all()
    assert {e.action for e in events} == {"search", "lookup"}
    assert {e.community_id for e in events} == {live.grid.community.id}
