"""The access slice on the app as production runs it: each request opens, commits and
closes its own session (the ``live`` fixture)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.testing import served_app
from tests.conftest import Live


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found[1]


def _gate_with_device(live: Live, name: str) -> tuple[Any, str]:
    """A pedestrian gate of the park with one device: the device and its key."""
    with Session(live.engine, expire_on_commit=False) as session:
        gate = access.create_gate(session=session, actor=SYSTEM_ACTOR,
                                  compound_id=live.grid.park.id, name=name,
                                  kind="pedestrian")  # fmt: skip
        device, key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                           gate_id=gate.id, name="平板")  # fmt: skip
        session.commit()
    return device, key


def test_gate_device_decision_and_level_switch_over_real_sessions(live: Live) -> None:
    _device, key = _gate_with_device(live, "东门-live")
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


def test_two_server_processes_refuse_a_revoked_key_and_follow_a_new_level_at_once(
    live: Live, tmp_path: Path
) -> None:
    """Each server process remembers a device's key; a revocation and a level switch made
    elsewhere (here: this test's process) hold at the very next decision in both."""
    device, key = _gate_with_device(live, "西门-两进程")
    url = live.engine.url.render_as_string(hide_password=False)
    body = {"direction": "out", "method": "person", "value": str(live.grid.resident5.id)}
    count = iter(range(100))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    def decide(base: str) -> httpx.Response:
        headers = {"X-Device-Key": key, "Idempotency-Key": f"two-{next(count)}"}
        return httpx.post(f"{base}/api/access/device/decisions", json=body, headers=headers,
                          timeout=60)  # fmt: skip

    with (
        served_app(url, tmp_path / "a") as first,
        served_app(url, tmp_path / "b") as second,
    ):
        for base in (first, second):  # each process now knows the key
            assert decide(base).json()["decision"] == "allow"
        with Session(live.engine) as session:
            access.set_level(session=session, actor=SYSTEM_ACTOR,
                             community_id=live.grid.community.id, level="lockdown")  # fmt: skip
            session.commit()
        try:
            for base in (first, second):
                answer = decide(base).json()
                assert answer["decision"] == "deny" and answer["reasons"] == ["lockdown"]
        finally:
            with Session(live.engine) as session:
                access.set_level(session=session, actor=SYSTEM_ACTOR,
                                 community_id=live.grid.community.id, level="normal")  # fmt: skip
                session.commit()
        with Session(live.engine) as session:
            access.revoke_device(session=session, actor=SYSTEM_ACTOR, device_id=device.id)
            session.commit()
        for base in (first, second):
            assert decide(base).status_code == 401
