"""The access slice's pages: gates and keys, the alert switch, rules and the simulator, the
record, each in the role's scope."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.flows import PassageRequest, Sender
from fengchao.access.models import AlertSetting, PassRule
from fengchao.auth.service import SYSTEM_ACTOR
from tests.access.conftest import Gates
from tests.conftest import Grid, Persona


def test_gates_page_shows_a_new_key_once(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    page = browser.get("/access")
    assert page.status_code == 200 and "东门" in page.text and "车库口" in page.text
    created = browser.post(f"/access/gates/{gates.east.id}/devices", data={"name": "东门平板"})
    assert created.status_code == 200 and "fcd_" in created.text
    again = browser.get("/access")
    assert "东门平板" in again.text and created.text.split("fcd_")[1][:20] not in again.text


def test_worker_switches_the_alert_level_in_one_action(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    form = {"community_id": grid.community.id, "level": "closed", "note": "封闭管理"}
    answer = browser.post("/access/alert", data=form)
    assert answer.status_code == 303
    assert session.scalar(select(AlertSetting.level)) == "closed"
    page = browser.get(answer.headers["location"])
    assert "封闭管理" in page.text


def test_building_lead_cannot_switch_or_manage(
    login_as, grid: Grid, gates: Gates, lead5: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(lead5)
    refused = browser.post("/access/alert", data={"community_id": grid.community.id,
                                                  "level": "lockdown"})  # fmt: skip
    assert refused.status_code in (403, 404)
    gate = {"compound_id": grid.park.id, "name": "x", "kind": "both"}
    assert browser.post("/access/gates", data=gate).status_code in (403, 404, 422)


def test_rule_editor_names_contradictions(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    for effect in ("allow", "deny"):
        answer = browser.post("/access/rules", data={
            "community_id": grid.community.id, "effect": effect, "roles": "courier",
            "start_time": "08:00", "end_time": "20:00",
        })  # fmt: skip
        assert answer.status_code == 303, answer.text
    assert session.scalar(select(func.count()).select_from(PassRule)) == 2
    page = browser.get("/access/rules")
    assert "规则互相矛盾" in page.text and "禁止优先" in page.text
    bad = browser.post("/access/rules", data={"community_id": grid.community.id,
                                              "effect": "allow", "start_time": "08:00",
                                              "end_time": "08:00"})  # fmt: skip
    assert bad.status_code == 422 and "不能相同" in bad.text


def test_simulator_says_why(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    access.create_rule(session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id,
                       effect="allow", roles=["courier"], gate_id=gates.east.id,
                       start_time="08:00", end_time="20:00")  # fmt: skip
    browser = login_as(worker)
    day = browser.get(f"/access/simulate?gate_id={gates.east.id}&role=courier&direction=in"
                      "&at=2026-11-30T12:00")  # fmt: skip
    assert day.status_code == 200 and "生效" in day.text and "放行" in day.text
    night = browser.get(f"/access/simulate?gate_id={gates.east.id}&role=courier&direction=in"
                        "&at=2026-11-30T22:00")  # fmt: skip
    assert "没有允许此身份通行的规则" in night.text
    closed = browser.get(f"/access/simulate?gate_id={gates.east.id}&person_id="
                         f"{grid.resident5.id}&level=closed&at=2026-11-30T09:00")  # fmt: skip
    assert "占用本户额度" in closed.text


def test_records_pages_in_scope(
    session: Session, login_as, grid: Grid, gates: Gates, lead5: Persona, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    for person in (grid.resident5, grid.resident6):
        flows.decide(session=session,
                     request=PassageRequest(gates.east.id, "out", "person", value=str(person.id)),
                     sender=Sender.device(gates.east_device))  # fmt: skip
    lead = login_as(lead5)
    page = lead.get("/access/records")
    assert page.status_code == 200 and "林国平" in page.text and "陈美玲" not in page.text
    assert "陈美玲" not in lead.get(f"/access/people/{grid.resident6.id}").text
    timeline = login_as(worker).get(f"/access/people/{grid.resident6.id}")
    assert "陈美玲" in timeline.text
    found = login_as(worker).get(f"/access/records?gate_id={gates.east.id}&decision=allow")
    assert found.status_code == 200 and found.text.count('class="card access-event') == 2


def test_staff_sets_a_pin_from_the_timeline(
    session: Session, login_as, grid: Grid, gates: Gates, worker: Persona
) -> None:  # type: ignore[no-untyped-def]
    from fengchao.access.models import PersonPin

    browser = login_as(worker)
    weak = browser.post(f"/access/people/{grid.resident5.id}/pin", data={"pin": "123456"})
    assert weak.status_code == 422 and "容易猜" in weak.text
    done = browser.post(f"/access/people/{grid.resident5.id}/pin", data={"pin": "480213"})
    assert done.status_code == 303
    stored = session.get(PersonPin, grid.resident5.id)
    assert stored is not None and "480213" not in stored.pin_hash
