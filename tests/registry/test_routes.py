"""Pages and API honour role and grid scope; personal data is masked and reads audited."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import AuditEvent
from tests.conftest import Grid, Persona
from tests.registry.test_import import GOOD, xlsx


def test_login_required_for_pages_and_api(app_client: TestClient, grid: Grid) -> None:
    page = app_client.get(f"/registry/households/{grid.h5_101.id}")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert app_client.get(f"/api/registry/people/{grid.resident5.id}").status_code == 401


def test_building_lead_sees_own_building(login_as, grid: Grid, lead5: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(lead5)
    page = browser.get(f"/registry/households/{grid.h5_101.id}")
    assert page.status_code == 200 and "林国平" in page.text
    api = browser.get(f"/api/registry/people/{grid.resident5.id}")
    assert api.status_code == 200 and api.json()["name"] == "林国平"


def test_building_lead_cannot_read_another_building(login_as, grid: Grid, lead5: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(lead5)
    for url in (
        f"/registry/households/{grid.h6_101.id}",
        f"/registry/people/{grid.resident6.id}",
        f"/registry/buildings/{grid.b6.id}",
        f"/api/registry/people/{grid.resident6.id}",
        f"/api/registry/households/{grid.h6_101.id}",
    ):
        response = browser.get(url)
        assert response.status_code == 404, url
        assert "陈美玲" not in response.text
    found = browser.get("/api/registry/search", params={"q": "陈美玲"})
    assert found.status_code == 200 and found.json() == []
    grid_page = browser.get("/registry")
    assert "6号楼" not in grid_page.text and "5号楼" in grid_page.text


def test_reading_a_person_is_audited(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    login_as(worker).get(f"/registry/people/{grid.resident5.id}")
    event = session.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type == "person", AuditEvent.object_id == str(grid.resident5.id)
        )
    ).one()
    assert event.username == worker.user.username and event.action == "read"


def test_guard_has_no_registry_access(login_as, grid: Grid, guard: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(guard)
    assert browser.get(f"/registry/people/{grid.resident5.id}").status_code == 403
    assert browser.get("/api/registry/search", params={"q": "林"}).status_code == 403
    assert browser.get("/registry/import").status_code == 403


def test_lead_cannot_import(login_as, grid: Grid, lead5: Persona) -> None:  # type: ignore[no-untyped-def]
    response = login_as(lead5).post(
        "/api/registry/import/residents", files={"file": ("a.xlsx", xlsx(GOOD))}
    )
    assert response.status_code == 403


def test_audit_log_is_for_admins(login_as, grid: Grid, admin: Persona, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    assert login_as(worker).get("/audit").status_code == 403
    assert login_as(admin).get("/audit").status_code == 200


def test_post_without_csrf_token_is_refused(
    login_as,
    app_client: TestClient,
    grid: Grid,  # type: ignore[no-untyped-def]
    worker: Persona,
) -> None:
    login_as(worker)
    response = app_client.post(
        "/api/registry/import/residents", files={"file": ("a.xlsx", xlsx(GOOD))}
    )
    assert response.status_code == 403
    assert app_client.post("/logout").status_code == 403


def test_login_with_wrong_password(app_client: TestClient, worker: Persona) -> None:
    form = app_client.get("/login")
    csrf = app_client.cookies.get("fc_csrf")
    assert form.status_code == 200 and csrf
    bad = app_client.post(
        "/login",
        data={"username": worker.user.username, "password": "wrong-password", "csrf_token": csrf},
    )
    assert bad.status_code == 401 and "用户名或密码错误" in bad.text
    good = app_client.post(
        "/login",
        data={
            "username": worker.user.username,
            "password": "correct-horse-battery",
            "csrf_token": csrf,
            "next": "https://evil.example/",
        },
    )
    assert good.status_code == 303 and good.headers["location"] == "/"


def test_import_wizard_dry_run_then_confirm_once(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    response = browser.post(
        "/registry/import", files={"file": ("居民.xlsx", xlsx(GOOD))}, data={"kind": "residents"}
    )
    assert response.status_code == 200 and "确认导入：新增 2 人" in response.text
    token = response.text.split("/registry/import/")[1].split("/confirm")[0]
    done = browser.post(f"/registry/import/{token}/confirm")
    assert done.status_code == 200 and "导入完成" in done.text
    replay = browser.post(f"/registry/import/{token}/confirm")
    assert "已经导入过" in replay.text


def test_api_dry_run_reports_rows_and_fields(login_as, grid: Grid, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    bad = [*GOOD[0][:3], "12345", *GOOD[0][4:]]
    response = login_as(worker).post(
        "/api/registry/import/residents", files={"file": ("a.xlsx", xlsx([bad]))}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["rows"] == 1 and body["valid"] == 0 and not body["written"]
    assert body["errors"][0]["row"] == 2 and body["errors"][0]["field"] == "phone"


def test_search_by_room_last4_and_phone(login_as, grid: Grid, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    for query in ("5-1-101", "002X", "13800000001", "林国"):
        names = [p["name"] for p in browser.get("/api/registry/search", params={"q": query}).json()]
        assert names == ["林国平"], query


def test_completeness_page_and_export(login_as, grid: Grid, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    page = browser.get("/registry/completeness")
    assert page.status_code == 200 and "无人登记户" in page.text
    export = browser.get("/registry/completeness.xlsx")
    assert export.status_code == 200 and export.content[:2] == b"PK"
    rows = browser.get("/api/registry/completeness").json()
    b5 = next(r for r in rows if r["building_id"] == grid.b5.id)
    assert b5["households"] == 8 and b5["people"] == 1
    assert b5["gaps"]["empty_household"] == 7


def test_english_is_switchable(app_client: TestClient) -> None:
    app_client.get("/lang/en")
    app_client.cookies.set("fc_lang", "en")
    assert "Log in" in app_client.get("/login").text


def test_uploaded_sheet_is_not_kept_after_import_or_after_a_day(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    import datetime as dt

    from fengchao.registry.models import ImportUpload

    browser = login_as(worker)
    first = browser.post("/registry/import", files={"file": ("a.xlsx", xlsx(GOOD))})
    token = first.text.split("/registry/import/")[1].split("/confirm")[0]
    browser.post(f"/registry/import/{token}/confirm")
    imported = session.scalars(select(ImportUpload).where(ImportUpload.token == token)).one()
    assert imported.content == b"" and imported.imported_at is not None

    # Sheets that would change something (the same sheet again would not be kept at all).
    other = [["王芳", "", "", "", "华润中央公园", "5", "2", "101", ""]]
    abandoned = browser.post("/registry/import", files={"file": ("b.xlsx", xlsx(other))})
    old_token = abandoned.text.split("/registry/import/")[1].split("/confirm")[0]
    old = session.scalars(select(ImportUpload).where(ImportUpload.token == old_token)).one()
    old.created_at = old.created_at - dt.timedelta(days=2)
    session.flush()
    browser.post("/registry/import", files={"file": ("c.xlsx", xlsx(other))})
    remaining = session.scalars(select(ImportUpload.token)).all()
    assert old_token not in remaining
