"""Visitor passes: the form's checks, issue or approval by the alert level, and the pass
at the gate through the one decision flow (allow once, refuse the second entry, expired,
forged, altered, wrong gate, other community, fever, a stale pass after the poster's
token rotated, a visitor's car by its plate, couriers only at the drop-off gate)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.flows import BadPassage, PassageRequest, Sender
from fengchao.access.models import AccessEvent
from fengchao.auth.service import SYSTEM_ACTOR, Forbidden, NotFound
from fengchao.notify.models import Notification
from fengchao.visitors import service, tokens
from fengchao.visitors.models import PassKind, PassStatus, VisitorPass
from tests.access.conftest import Gates, make_gates
from tests.conftest import Grid, Persona

NOW = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)  # Monday 12:00 in Shanghai

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


def public_gate(session: Session, gates: Gates) -> service.PublicGate:
    _gate, poster = service.poster_for_gate(
        session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id
    )
    return service.gate_for_token(session=session, token=poster.token)


def apply(session: Session, gates: Gates, key: str = "k1", **changes: str) -> service.Submitted:
    application = service.check_form({**FORM, **changes}, today=NOW.date())
    assert not application.errors, application.errors
    return service.submit(
        session=session, gate=public_gate(session, gates), application=application,
        form_key=key, now=NOW,
    )  # fmt: skip


def at_gate(
    session: Session, gate_id: int, value: str, *, direction: str = "in",
    temperature: str | None = "36.5", method: str = "code", now: dt.datetime = NOW,
) -> flows.Decision:  # fmt: skip
    request = PassageRequest(
        gate_id=gate_id, direction=direction, method=method, value=value, temperature=temperature
    )
    return flows.decide(session=session, request=request, sender=Sender("test"), now=now)


def test_poster_token_is_opaque_and_names_the_gate(session: Session, gates: Gates) -> None:
    gate, poster = service.poster_for_gate(
        session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id
    )
    assert str(gate.id) not in poster.token or len(poster.token) >= 16
    assert service.poster_url(poster.token).endswith("/v/" + poster.token)
    found = service.gate_for_token(session=session, token=poster.token)
    assert found.gate_id == gates.east.id and found.compound_name == "华润中央公园"
    with pytest.raises(NotFound):
        service.gate_for_token(session=session, token=str(gates.east.id))


def test_form_errors_name_each_field() -> None:
    bad = {
        "name": "",
        "phone": "12345",
        "id_number": "110105194912310021",
        "host_room": "somewhere",
        "purpose": "x" * 500,
        "stay_hours": "99",
        "party_size": "0",
        "plate": "ABC",
        "health_code": "purple",
    }
    errors = service.check_form(bad, today=NOW.date()).errors
    assert set(errors) == {
        "name", "phone", "id_number", "host_room", "purpose", "stay_hours", "party_size",
        "plate", "health_code",
    }  # fmt: skip
    assert "校验位" in errors["id_number"]


def test_pass_issued_at_once_at_normal_level_and_admits_once(
    session: Session, grid: Grid, gates: Gates
) -> None:
    submitted = apply(session, gates)
    row = submitted.row
    assert row.status == PassStatus.active and row.host_place == "5-1-101"
    assert row.id_mask == "110***********002X" and "11010519491231002X" not in row.id_number_enc
    token = service.token_for(row)
    first = at_gate(session, gates.east.id, token)
    assert first.decision == "allow", first.reasons
    assert first.person is not None and first.person.name == "王小明"
    assert first.reasons == ["visitor_pass"] and first.person.relation == "访客"
    event = session.get(AccessEvent, first.event_id)
    assert event is not None and event.person_id is None and event.detail["pass_id"] == row.id
    session.refresh(row)
    assert row.inside and row.entries_used == 1
    second = at_gate(session, gates.east.id, token)
    assert second.decision == "deny" and "pass_used" in second.reasons
    out = at_gate(session, gates.east.id, token, direction="out", temperature=None)
    assert out.decision == "allow"
    session.refresh(row)
    assert not row.inside and row.last_out_at is not None


def test_the_same_form_sent_twice_gives_one_pass(session: Session, gates: Gates) -> None:
    first = apply(session, gates, key="same")
    again = apply(session, gates, key="same")
    assert again.duplicate and again.row.id == first.row.id
    count = session.scalars(select(VisitorPass.id).where(VisitorPass.phone == FORM["phone"]))
    assert len(list(count)) == 1


def test_unknown_room_is_refused_without_saying_who_lives_where(
    session: Session, gates: Gates
) -> None:
    with pytest.raises(service.VisitorRefusal) as refused:
        apply(session, gates, host_room="9-9-909")
    assert refused.value.field == "host_room"


def test_temperature_is_required_and_fever_refused_with_an_alert(
    session: Session, gates: Gates
) -> None:
    token = service.token_for(apply(session, gates).row)
    with pytest.raises(BadPassage) as missing:
        at_gate(session, gates.east.id, token, temperature=None)
    assert missing.value.field == "temperature"
    fever = at_gate(session, gates.east.id, token, temperature="38.2")
    assert fever.decision == "deny" and "fever" in fever.reasons
    alerts = session.scalars(select(Notification).where(Notification.kind == "fever")).all()
    assert alerts and "王小明" in (alerts[-1].detail or "")


def test_re_measured_visitor_with_a_normal_temperature_enters_once(
    session: Session, gates: Gates
) -> None:
    """As the console sends it: the pass again, the first reading and the re-measurement."""
    row = apply(session, gates).row
    token = service.token_for(row)
    assert at_gate(session, gates.east.id, token, temperature="38.0").decision == "deny"
    request = PassageRequest(
        gate_id=gates.east.id, direction="in", method="code", value=token,
        temperature="38.0", retest_temperature="36.8",
    )  # fmt: skip
    later = NOW + dt.timedelta(minutes=3)
    again = flows.decide(session=session, request=request, sender=Sender("test"), now=later)
    assert again.decision == "allow", again.reasons
    session.refresh(row)
    assert row.entries_used == 1 and row.inside
    fevers = session.scalars(select(Notification).where(Notification.kind == "fever")).all()
    assert len(fevers) == 1


def test_the_consoles_recent_events_name_the_visitor(
    session: Session, gates: Gates, guard: Persona
) -> None:
    from fengchao.access import console

    token = service.token_for(apply(session, gates).row)
    at_gate(session, gates.east.id, token)
    gate = console.console_gate(session=session, actor=guard.actor, gate_id=gates.east.id)
    assert console.recent_events(session=session, gate=gate)[0].who == "王小明"


def test_forged_altered_and_malformed_passes_are_refused(session: Session, gates: Gates) -> None:
    token = service.token_for(apply(session, gates).row)
    body = token[len(tokens.PREFIX) :]
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8)))
    raw[3] ^= 1  # another pass id
    altered = tokens.PREFIX + base64.b32encode(bytes(raw)).decode().rstrip("=")
    assert "pass_forged" in at_gate(session, gates.east.id, altered).reasons
    assert "pass_malformed" in at_gate(session, gates.east.id, "FV1-HELLO").reasons
    made_up = tokens.PREFIX + "A" * 60
    assert at_gate(session, gates.east.id, made_up).decision == "deny"


def test_expired_and_wrong_gate_and_other_community(
    session: Session, grid: Grid, gates: Gates
) -> None:
    token = service.token_for(apply(session, gates).row)
    later = NOW + dt.timedelta(hours=4)
    assert "pass_expired" in at_gate(session, gates.east.id, token, now=later).reasons
    west = access.create_gate(
        session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="西门",
        kind="pedestrian",
    )  # fmt: skip
    assert "pass_wrong_gate" in at_gate(session, west.id, token).reasons
    claims = tokens.unseal(token)
    other = tokens.seal(
        tokens.PassClaims(claims.pass_id, grid.community.id + 999, claims.valid_from,
                          claims.valid_until, 1, (gates.east.id,))
    )  # fmt: skip
    assert "pass_other_community" in at_gate(session, gates.east.id, other).reasons


def test_stale_pass_after_the_poster_token_rotated(session: Session, gates: Gates) -> None:
    before = public_gate(session, gates)
    token = service.token_for(apply(session, gates).row)
    service.rotate_poster(session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id)
    with pytest.raises(NotFound):
        service.gate_for_token(session=session, token=before.token)
    assert "pass_stale" in at_gate(session, gates.east.id, token).reasons


def test_revoked_pass_is_refused(session: Session, gates: Gates, worker: Persona) -> None:
    row = apply(session, gates).row
    service.revoke(session=session, actor=worker.actor, pass_id=row.id)
    assert "pass_revoked" in at_gate(session, gates.east.id, service.token_for(row)).reasons


def test_heightened_level_needs_the_building_leads_approval(
    session: Session, grid: Grid, gates: Gates, lead5: Persona, guard: Persona
) -> None:
    access.set_level(
        session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id, level="heightened"
    )
    row = apply(session, gates).row
    assert row.status == PassStatus.pending
    notes = session.scalars(select(Notification).where(Notification.kind == "visitor")).all()
    assert notes and notes[-1].link == f"/visitors/passes/{row.id}"
    assert "pass_pending" in at_gate(session, gates.east.id, service.token_for(row)).reasons
    with pytest.raises(Forbidden):
        service.decide_pass(session=session, actor=guard.actor, pass_id=row.id, approve=True)
    service.decide_pass(session=session, actor=lead5.actor, pass_id=row.id, approve=True, now=NOW)
    assert at_gate(session, gates.east.id, service.token_for(row)).decision == "allow"


def test_lead_of_another_building_cannot_see_the_pass(
    session: Session, grid: Grid, gates: Gates
) -> None:
    from fengchao.auth.models import Role, ScopeLevel
    from fengchao.auth.service import GridScope
    from tests.conftest import make_persona

    lead6 = make_persona(
        session, "lead6", Role.building_lead, GridScope(ScopeLevel.building, grid.b6.id)
    )
    row = apply(session, gates).row
    with pytest.raises(NotFound):
        service.get_pass(session=session, actor=lead6.actor, pass_id=row.id)


def test_lockdown_issues_no_visitor_pass(session: Session, grid: Grid, gates: Gates) -> None:
    access.set_level(
        session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id, level="lockdown"
    )
    with pytest.raises(service.VisitorRefusal):
        apply(session, gates)


def test_visitors_car_passes_the_vehicle_gate_by_its_plate(session: Session, gates: Gates) -> None:
    row = apply(session, gates, plate="闽A12345").row
    assert gates.garage.id in row.gate_ids
    answer = at_gate(session, gates.garage.id, "闽A12345", method="plate")
    assert answer.decision == "allow" and answer.match_how == "visitor_pass"
    unknown = at_gate(session, gates.garage.id, "闽A54321", method="plate")
    assert "unknown_vehicle" in unknown.reasons
    later = NOW + dt.timedelta(hours=5)
    expired = at_gate(session, gates.garage.id, "闽A12345", method="plate", now=later)
    assert "unknown_vehicle" in expired.reasons


def test_courier_passes_only_at_the_drop_off_gate_in_the_allowed_hours(
    session: Session, grid: Grid, gates: Gates, worker: Persona
) -> None:
    access.create_rule(
        session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id, effect="allow",
        name="快递 08:00–20:00", roles=["courier"], gate_id=gates.east.id,
        start_time="08:00", end_time="20:00",
    )  # fmt: skip
    row, _link = service.issue(
        session=session, actor=worker.actor, gate_id=gates.east.id, name="快递小哥",
        phone="13700000000", host_room="", hours=24 * 30, entries=service.COURIER_ENTRIES,
        kind=PassKind.courier, now=NOW,
    )  # fmt: skip
    token = service.token_for(row)
    noon = at_gate(session, gates.east.id, token)
    assert noon.decision == "allow", noon.reasons
    night = NOW + dt.timedelta(hours=10)  # 22:00 in Shanghai
    assert at_gate(session, gates.east.id, token, now=night).decision == "deny"
    again = at_gate(session, gates.east.id, token, now=NOW + dt.timedelta(minutes=30))
    assert again.decision == "allow"


def test_staff_issued_pass_goes_through_the_code_method(
    session: Session, gates: Gates, guard: Persona
) -> None:
    row, _link = service.issue(
        session=session, actor=guard.actor, gate_id=gates.east.id, name="李奶奶",
        phone="13600000000", host_room="5-1-101", hours=2, entries=2, now=NOW,
    )  # fmt: skip
    token = service.token_for(row)
    assert at_gate(session, gates.east.id, token).decision == "allow"
    assert at_gate(session, gates.east.id, token, method="pass").decision == "allow"
    assert "pass_used" in at_gate(session, gates.east.id, token).reasons


def test_who_is_inside_now(session: Session, gates: Gates, worker: Persona) -> None:
    row = apply(session, gates).row
    at_gate(session, gates.east.id, service.token_for(row))
    inside = service.list_passes(session=session, actor=worker.actor, inside=True)
    assert [p.id for p in inside] == [row.id]


def test_purge_deletes_old_passes(session: Session, gates: Gates) -> None:
    row = apply(session, gates).row
    assert service.purge_passes(session=session, now=NOW + dt.timedelta(days=60)) >= 1
    assert session.get(VisitorPass, row.id) is None


def test_watchlisted_person_applying_with_another_phone_is_refused_without_a_reason(
    session: Session, grid: Grid, gates: Gates, worker: Persona
) -> None:
    existing = apply(session, gates, key="before").row
    service.add_watch(
        session=session, actor=worker.actor, community_id=grid.community.id,
        reason="冒用他人通行证", days=30, id_number=FORM["id_number"], now=NOW,
    )  # fmt: skip
    with pytest.raises(service.VisitorRefusal) as refused:
        apply(session, gates, key="other-phone", phone="13500000000")
    assert "联系物业" in refused.value.message and "冒用" not in refused.value.message
    at = at_gate(session, gates.east.id, service.token_for(existing))
    assert at.decision == "deny" and "pass_watch" in at.reasons
    assert flows.reason_text("pass_watch") == "请联系物业"
    later = NOW + dt.timedelta(days=31)
    assert not service.watched(session, grid.community.id, existing.id_number_hash, None, later)
