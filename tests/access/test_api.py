"""The access slice's JSON routes: the device API by key, and the record in scope."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.flows import PassageRequest, Sender
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, GridScope
from tests.access.conftest import Gates
from tests.conftest import Grid, Persona, make_persona


def test_device_decides_with_its_key(app_client: TestClient, grid: Grid, gates: Gates) -> None:
    body = {"direction": "out", "method": "person", "value": str(grid.resident5.id)}
    headers = {"X-Device-Key": gates.east_key, "Idempotency-Key": "d-1"}
    first = app_client.post("/api/access/device/decisions", json=body, headers=headers)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["decision"] == "allow" and answer["person"]["place"] == "5-1-101"
    assert answer["gate_id"] == gates.east.id and not answer["replayed"]
    again = app_client.post("/api/access/device/decisions", json=body, headers=headers)
    assert again.json()["replayed"] and again.json()["event_id"] == answer["event_id"]
    changed = app_client.post(
        "/api/access/device/decisions", json={**body, "direction": "in"}, headers=headers
    )
    assert changed.status_code == 409 and changed.json()["errors"][0]["field"] == "idempotency_key"


def test_device_api_refuses_unknown_keys_and_bad_bodies(
    app_client: TestClient, grid: Grid, gates: Gates
) -> None:
    body = {"direction": "out", "method": "person", "value": str(grid.resident5.id)}
    assert app_client.post("/api/access/device/decisions", json=body).status_code == 401
    wrong = {"X-Device-Key": "fcd_" + "x" * 43}
    assert (
        app_client.post("/api/access/device/decisions", json=body, headers=wrong).status_code == 401
    )
    key = {"X-Device-Key": gates.east_key}
    hot = app_client.post(
        "/api/access/device/decisions", json={**body, "temperature": "45"}, headers=key
    )
    assert hot.status_code == 422 and hot.json()["errors"][0]["field"] == "temperature"
    face = {"direction": "in", "method": "face", "frame_b64": "not base64!"}
    bad = app_client.post("/api/access/device/decisions", json=face, headers=key)
    assert bad.status_code == 422
    state = app_client.get("/api/access/device/state", headers=key).json()
    assert state == {"gate_id": gates.east.id, "gate": "东门", "alert_level": "normal"}


def _pass(session: Session, gates: Gates, person_id: int) -> None:
    flows.decide(
        session=session,
        request=PassageRequest(gates.east.id, "out", "person", value=str(person_id)),
        sender=Sender.device(gates.east_device),
    )


def test_building_lead_reads_only_their_buildings_events(
    session: Session, login_as, grid: Grid, gates: Gates, lead5: Persona, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    _pass(session, gates, grid.resident5.id)
    _pass(session, gates, grid.resident6.id)
    lead = login_as(lead5).get("/api/access/events").json()["events"]
    assert [e["person_id"] for e in lead] == [grid.resident5.id]
    assert lead[0]["id_mask"] and "1949" not in lead[0]["id_mask"]
    everyone = login_as(worker).get("/api/access/events").json()["events"]
    assert {e["person_id"] for e in everyone} == {grid.resident5.id, grid.resident6.id}
    other = login_as(lead5).get(f"/api/access/people/{grid.resident6.id}/timeline").json()
    assert other["events"] == []


def test_guard_of_another_compound_sees_nothing_of_this_gate(
    session: Session, login_as, grid: Grid, gates: Gates
) -> None:  # type: ignore[no-untyped-def]
    _pass(session, gates, grid.resident5.id)
    elsewhere = make_persona(session, "guard-b", Role.guard,
                             GridScope(ScopeLevel.compound, grid.other.id))  # fmt: skip
    browser = login_as(elsewhere)
    assert browser.get("/api/access/events").json()["events"] == []
    assert browser.get("/api/access/gates").json() == []
    here = make_persona(session, "guard-a", Role.guard,
                        GridScope(ScopeLevel.compound, grid.park.id))  # fmt: skip
    assert len(login_as(here).get("/api/access/events").json()["events"]) == 1


def test_search_by_gate_method_decision_and_time(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    _pass(session, gates, grid.resident5.id)
    browser = login_as(worker)
    base = f"/api/access/events?gate_id={gates.east.id}&method=person&decision=allow"
    assert len(browser.get(base).json()["events"]) == 1
    assert browser.get(base.replace("allow", "deny")).json()["events"] == []
    assert browser.get(base + "&start=2001-01-01T00:00&end=2001-01-02T00:00").json()["events"] == []
    assert browser.get("/api/access/events?method=teleport").status_code == 422
    counts = browser.get("/api/access/counts").json()
    assert len(counts) == 24 and sum(c["allow"] for c in counts) == 1


def test_export_masks_id_numbers(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    _pass(session, gates, grid.resident5.id)
    response = login_as(worker).get("/api/access/events.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None]
    assert "林国平" in values
    assert not any("11010519491231002X" in v for v in values)


def test_guard_cannot_create_gates_or_switch_levels(login_as, grid: Grid, guard: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(guard)
    gate = {"compound_id": grid.park.id, "name": "西门", "kind": "pedestrian"}
    assert browser.post("/api/access/gates", json=gate).status_code == 403
    level = {"community_id": grid.community.id, "level": "closed"}
    assert browser.post("/api/access/alert-level", json=level).status_code == 403


def test_worker_creates_a_gate_and_a_device_key_shown_once(
    login_as, grid: Grid, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    gate = browser.post(
        "/api/access/gates",
        json={"compound_id": grid.park.id, "name": "西门", "kind": "both"},
    )
    assert gate.status_code == 201, gate.text
    device = browser.post(
        "/api/access/devices", json={"gate_id": gate.json()["id"], "name": "西门平板"}
    )
    assert device.status_code == 201 and device.json()["key"].startswith("fcd_")
    assert browser.post(f"/api/access/devices/{device.json()['id']}/revoke").status_code == 204


def test_a_revoked_device_is_refused_at_its_next_decision_though_its_key_is_remembered(
    app_client: TestClient, session: Session, grid: Grid, gates: Gates
) -> None:
    body = {"direction": "out", "method": "person", "value": str(grid.resident5.id)}
    headers = {"X-Device-Key": gates.east_key, "Idempotency-Key": "rv-1"}
    first = app_client.post("/api/access/device/decisions", json=body, headers=headers)
    assert first.status_code == 200 and first.json()["decision"] == "allow"
    assert access.known_device(session=session, key=gates.east_key) is not None  # remembered
    access.revoke_device(session=session, actor=SYSTEM_ACTOR, device_id=gates.east_device.id)
    headers["Idempotency-Key"] = "rv-2"
    after = app_client.post("/api/access/device/decisions", json=body, headers=headers)
    assert after.status_code == 401 and after.json()["errors"][0]["field"] == "X-Device-Key"
    # Not even a retry of an answer it had before.
    headers["Idempotency-Key"] = "rv-1"
    retry = app_client.post("/api/access/device/decisions", json=body, headers=headers)
    assert retry.status_code == 401
    assert access.known_device(session=session, key=gates.east_key) is None  # forgotten


def test_a_device_body_is_checked_after_its_key(
    app_client: TestClient, grid: Grid, gates: Gates
) -> None:
    bad = {"direction": "sideways", "method": "person", "value": str(grid.resident5.id)}
    assert app_client.post("/api/access/device/decisions", json=bad).status_code == 401
    key = {"X-Device-Key": gates.east_key}
    refused = app_client.post("/api/access/device/decisions", json=bad, headers=key)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "direction"
    broken = app_client.post("/api/access/device/decisions", content=b"{not json", headers=key)
    assert broken.status_code == 422
