"""The access slice on the app as production runs it: each request opens, commits and
closes its own session (the ``live`` fixture)."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.auth.service import SYSTEM_ACTOR
from tests.conftest import Live


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found[1]


def test_gate_device_decision_and_level_switch_over_real_sessions(live: Live) -> None:
    with Session(live.engine, expire_on_commit=False) as session:
        gate = access.create_gate(session=session, actor=SYSTEM_ACTOR,
                                  compound_id=live.grid.park.id, name="东门-live",
                                  kind="pedestrian")  # fmt: skip
        _device, key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                            gate_id=gate.id, name="平板")  # fmt: skip
        session.commit()
    device = live.client()
    body = {"direction": "out", "method": "person", "value": str(live.grid.resident5.id)}
    headers = {"X-Device-Key": key, "Idempotency-Key": "live-1"}
    first = device.post("/api/access/device/decisions", json=body, headers=headers)
    assert first.status_code == 200 and first.json()["decision"] == "allow"
    again = device.post("/api/access/device/decisions", json=body, headers=headers)
    assert again.json()["replayed"] and again.json()["event_id"] == first.json()["event_id"]

    worker = live.client("worker")
    page = worker.get("/access/alert")
    switched = worker.post("/access/alert", data={
        "csrf_token": _csrf(page.text), "community_id": live.grid.community.id,
        "level": "lockdown",
    })  # fmt: skip
    assert switched.status_code == 303
    # The next decision, in another request, follows the new level.
    headers["Idempotency-Key"] = "live-2"
    after = device.post("/api/access/device/decisions", json=body, headers=headers)
    assert after.json()["decision"] == "deny" and after.json()["reasons"] == ["lockdown"]
    assert device.get("/api/access/device/state", headers=headers).json()["alert_level"] == (
        "lockdown"
    )
    lead = live.client("lead5")
    records = lead.get("/access/records")
    assert records.status_code == 200 and live.grid.resident5.name in records.text
    timeline = lead.get(f"/api/access/people/{live.grid.resident5.id}/timeline").json()
    assert len(timeline["events"]) == 2
    back = worker.post("/access/alert", data={
        "csrf_token": _csrf(page.text), "community_id": live.grid.community.id,
        "level": "normal",
    })  # fmt: skip
    assert back.status_code == 303
