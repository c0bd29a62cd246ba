"""The decision flow: methods, idempotency, clocks, temperature, health, quota, faces, PIN."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.flows import BadPassage, IdempotencyConflict, PassageRequest, Sender
from fengchao.access.models import AccessEvent
from fengchao.auth.models import AuditEvent
from fengchao.auth.service import SYSTEM_ACTOR, Forbidden, NotFound
from fengchao.db import flush_rows_at_commit
from fengchao.notify.models import Notification
from fengchao.registry.models import HealthStatus, Person, Relation, Vehicle
from tests.access.conftest import Gates
from tests.access.fake_faces import FakeOutcome
from tests.conftest import Grid, Persona

NOW = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)  # Monday 12:00 in Shanghai


def decide(session: Session, gates: Gates, **kw: object) -> flows.Decision:
    values: dict[str, object] = {"gate_id": gates.east.id, "direction": "out", "method": "person"}
    values.update(kw)
    now = values.pop("now", NOW)
    sender = values.pop("sender", Sender.device(gates.east_device))
    return flows.decide(
        session=session,
        request=PassageRequest(**values),  # type: ignore[arg-type]
        sender=sender,  # type: ignore[arg-type]
        now=now,  # type: ignore[arg-type]
    )


def events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AccessEvent)) or 0


def test_picked_resident_passes_and_the_event_is_recorded(
    session: Session, grid: Grid, gates: Gates
) -> None:
    answer = decide(session, gates, value=str(grid.resident5.id), temperature="36.5")
    assert answer.decision == "allow" and answer.reasons == ["resident"]
    assert answer.person is not None and answer.person.place == "5-1-101"
    event = session.get(AccessEvent, answer.event_id)
    assert event is not None
    assert (event.person_id, event.building_id, event.temperature) == (
        grid.resident5.id,
        grid.b5.id,
        36.5,
    )
    assert event.device_id == gates.east_device.id and event.compound_id == grid.park.id
    assert {"identify_ms", "policy_ms", "write_ms", "total_ms"} <= answer.timings.keys()


def test_unknown_gate_and_revoked_key(session: Session, grid: Grid, gates: Gates) -> None:
    with pytest.raises(NotFound):
        decide(session, gates, gate_id=999_999, value=str(grid.resident5.id))
    access.revoke_device(session=session, actor=SYSTEM_ACTOR, device_id=gates.east_device.id)
    assert access.device_for_key(session=session, key=gates.east_key) is None
    assert access.device_for_key(session=session, key="fcd_forged") is None


def test_same_key_same_body_answers_the_first_answer_and_writes_nothing(
    session: Session, grid: Grid, gates: Gates
) -> None:
    first = decide(session, gates, value=str(grid.resident5.id), idempotency_key="k-1")
    count = events(session)
    again = decide(session, gates, value=str(grid.resident5.id), idempotency_key="k-1")
    assert again.replayed and again.event_id == first.event_id
    assert (again.decision, again.reasons, again.person_id) == (
        first.decision,
        first.reasons,
        first.person_id,
    )
    assert events(session) == count
    with pytest.raises(IdempotencyConflict):
        decide(session, gates, value=str(grid.resident6.id), idempotency_key="k-1")
    # The key belongs to its sender: another device may use the same text.
    other = decide(
        session, gates, gate_id=gates.garage.id, method="person", value=str(grid.resident5.id),
        idempotency_key="k-1", sender=Sender.device(gates.garage_device),
    )  # fmt: skip
    assert not other.replayed


def test_device_clock_a_day_off_is_flagged_and_not_trusted(
    session: Session, grid: Grid, gates: Gates
) -> None:
    ahead = decide(session, gates, value=str(grid.resident5.id),
                   device_time=NOW + dt.timedelta(days=1))  # fmt: skip
    assert ahead.clock_off and "clock_off" in ahead.reasons
    event = session.get(AccessEvent, ahead.event_id)
    assert event is not None and event.occurred_at == NOW
    assert event.device_time == NOW + dt.timedelta(days=1)
    behind = decide(
        session, gates, value=str(grid.resident5.id), device_time=NOW - dt.timedelta(days=1),
        device_sent_at=NOW - dt.timedelta(days=1),
    )  # fmt: skip
    assert behind.clock_off


def test_event_from_an_offline_gate_keeps_its_time_and_is_late(
    session: Session, grid: Grid, gates: Gates
) -> None:
    happened = NOW - dt.timedelta(hours=3)
    answer = decide(session, gates, value=str(grid.resident5.id), device_time=happened,
                    device_sent_at=NOW)  # fmt: skip
    assert answer.late and not answer.clock_off
    event = session.get(AccessEvent, answer.event_id)
    assert event is not None and event.occurred_at == happened and event.late


@pytest.mark.parametrize("value", ["25", "45", "hot", "nan"])
def test_temperature_out_of_range_is_refused(
    session: Session, grid: Grid, gates: Gates, value: str
) -> None:
    with pytest.raises(BadPassage) as refused:
        decide(session, gates, value=str(grid.resident5.id), temperature=value)
    assert refused.value.field == "temperature"
    assert events(session) == 0


def test_fever_is_refused_with_an_alert_and_soft_gates_allow(
    session: Session, grid: Grid, gates: Gates
) -> None:
    answer = decide(session, gates, value=str(grid.resident5.id), temperature=37.8)
    assert answer.decision == "deny" and answer.reasons[0] == "fever"
    alerts = session.scalars(select(Notification).where(Notification.kind == "fever")).all()
    assert len(alerts) == 1 and "37.8" in alerts[0].title
    assert alerts[0].detail and "林国平" in alerts[0].detail and "林国平" not in alerts[0].body
    access.set_soft_temperature(session=session, actor=SYSTEM_ACTOR, gate_id=gates.east.id,
                                soft=True)  # fmt: skip
    soft = decide(session, gates, value=str(grid.resident5.id), temperature=37.8)
    assert soft.decision == "allow" and "fever_soft" in soft.reasons
    assert session.scalar(select(func.count()).where(Notification.kind == "fever")) == 2


def test_retest_is_recorded_beside_the_first_and_decides(
    session: Session, grid: Grid, gates: Gates
) -> None:
    answer = decide(session, gates, value=str(grid.resident5.id), temperature=37.6,
                    retest_temperature=36.7)  # fmt: skip
    assert answer.decision == "allow"
    event = session.get(AccessEvent, answer.event_id)
    assert event is not None and (event.temperature, event.retest_temperature) == (37.6, 36.7)


def test_isolated_resident_may_not_go_out(session: Session, grid: Grid, gates: Gates) -> None:
    grid.resident5.health_status = HealthStatus.home_isolation
    session.flush()
    assert decide(session, gates, value=str(grid.resident5.id)).reasons[0] == "health_no_exit"
    assert decide(session, gates, value=str(grid.resident5.id), direction="in").decision == "allow"


def test_alert_level_switch_is_audited_broadcast_and_applies_at_the_next_decision(
    session: Session, grid: Grid, gates: Gates, worker: Persona
) -> None:
    access.set_level(session=session, actor=worker.actor, community_id=grid.community.id,
                     level="lockdown", note="静默三天")  # fmt: skip
    flush_rows_at_commit(session)
    answer = decide(session, gates, value=str(grid.resident5.id))
    assert answer.decision == "deny" and answer.reasons == ["lockdown"]
    assert answer.alert_level == "lockdown"
    assert session.scalar(select(func.count()).where(AuditEvent.action == "alert_level")) == 1
    assert session.scalar(select(func.count()).where(Notification.kind == "alert_level")) == 1
    # A compound's own level overrides the community's.
    access.set_level(session=session, actor=worker.actor, community_id=grid.community.id,
                     level="normal", compound_id=grid.park.id)  # fmt: skip
    assert decide(session, gates, value=str(grid.resident5.id)).decision == "allow"


def test_guard_may_not_switch_the_alert_level(session: Session, grid: Grid, guard: Persona) -> None:
    with pytest.raises(Forbidden):
        access.set_level(session=session, actor=guard.actor, community_id=grid.community.id,
                         level="closed")  # fmt: skip


def test_closed_management_quota_one_pass_per_household(
    session: Session, grid: Grid, gates: Gates
) -> None:
    spouse = Person(community_id=grid.community.id, household_id=grid.h5_101.id, name="林太太",
                    relation=Relation.family)  # fmt: skip
    session.add(spouse)
    session.flush()
    access.set_level(session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id,
                     level="closed")  # fmt: skip
    first = decide(session, gates, value=str(grid.resident5.id))
    assert first.decision == "allow"
    second = decide(session, gates, value=str(spouse.id), gate_id=gates.garage.id,
                    sender=Sender.device(gates.garage_device))  # fmt: skip
    assert second.decision == "deny" and "quota_used" in second.reasons
    # Coming back in takes nothing; another household has its own pass; so has the next period.
    assert decide(session, gates, value=str(spouse.id), direction="in").decision == "allow"
    assert decide(session, gates, value=str(grid.resident6.id)).decision == "allow"
    later = decide(session, gates, value=str(spouse.id), now=NOW + dt.timedelta(days=2))
    assert later.decision == "allow"


def test_plate_text_exact_tolerant_and_unknown(session: Session, grid: Grid, gates: Gates) -> None:
    session.add(Vehicle(community_id=grid.community.id, household_id=grid.h5_101.id,
                        plate="闽A12345", owner_person_id=grid.resident5.id))  # fmt: skip
    session.flush()
    garage = {"gate_id": gates.garage.id, "method": "plate",
              "sender": Sender.device(gates.garage_device)}  # fmt: skip
    exact = decide(session, gates, value="闽A·12345", **garage)
    assert exact.decision == "allow" and exact.match_how == "exact"
    assert exact.vehicle is not None and exact.person_id == grid.resident5.id
    tolerant = decide(session, gates, value="闽A1234S", **garage)
    assert tolerant.decision == "allow" and tolerant.match_how == "tolerant"
    assert "plate_tolerant" in tolerant.reasons
    unknown = decide(session, gates, value="京B99999", **garage)
    assert unknown.decision == "deny" and unknown.reasons == ["unknown_vehicle"]
    assert unknown.plate_read == "京B99999"
    with pytest.raises(BadPassage):
        decide(session, gates, method="plate", value="闽A12345")  # a pedestrian gate


def test_bad_plate_frame_is_refused(session: Session, grid: Grid, gates: Gates) -> None:
    with pytest.raises(BadPassage) as refused:
        decide(session, gates, gate_id=gates.garage.id, method="plate", frame=b"not an image",
               sender=Sender.device(gates.garage_device))  # fmt: skip
    assert refused.value.field == "frame"


def test_unknown_face_is_refused_with_the_registration_hint(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    fake_faces.append(FakeOutcome(None, reason="unknown_face"))
    answer = decide(session, gates, method="face", frame=b"jpeg")
    assert answer.decision == "deny" and answer.reasons == ["unknown_face"]
    assert answer.message == "未识别，请到物业登记"


def test_several_faces_are_decided_by_the_largest_and_said_so(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    fake_faces.append(FakeOutcome(grid.resident5.id, faces_in_frame=3))
    answer = decide(session, gates, method="face", frame=b"jpeg")
    assert answer.decision == "allow" and "several_faces" in answer.reasons


def test_masked_face_needs_a_second_agreeing_frame(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    fake_faces.extend([FakeOutcome(grid.resident5.id, masked=True)] * 2)
    first = decide(session, gates, method="face", frame=b"one", idempotency_key="f1")
    assert first.decision == "pending" and first.masked
    second = decide(session, gates, method="face", frame=b"two", idempotency_key="f2",
                    now=NOW + dt.timedelta(seconds=2))  # fmt: skip
    assert second.decision == "allow" and "masked_confirmed" in second.reasons


def test_masked_frames_that_disagree_or_come_late_stay_pending(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    fake_faces.extend([
        FakeOutcome(grid.resident5.id, masked=True),
        FakeOutcome(grid.resident6.id, masked=True),
        FakeOutcome(grid.resident6.id, masked=True),
    ])  # fmt: skip
    assert decide(session, gates, method="face", frame=b"1").decision == "pending"
    other = decide(session, gates, method="face", frame=b"2", now=NOW + dt.timedelta(seconds=1))
    assert other.decision == "pending"
    late = decide(session, gates, method="face", frame=b"3", now=NOW + dt.timedelta(seconds=30))
    assert late.decision == "pending"


def test_masked_frames_pair_within_their_named_passage_only(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    # A replayed file names its passages: the first frame of passage B does not confirm
    # passage A's pending frame of the same person, B's own second frame does.
    fake_faces.extend([FakeOutcome(grid.resident5.id, masked=True)] * 3)

    def frame(passage: str, n: int, seconds: int) -> flows.Decision:
        return decide(session, gates, method="face", frame=b"%d" % n, passage=f"run:{passage}:",
                      idempotency_key=f"run:{passage}:{n}",
                      now=NOW + dt.timedelta(seconds=seconds))  # fmt: skip

    assert frame("A", 1, 0).decision == "pending"
    assert frame("B", 2, 1).decision == "pending"
    assert frame("B", 3, 2).decision == "allow"


def test_face_without_a_face_module_is_unavailable(
    session: Session, grid: Grid, gates: Gates
) -> None:
    previous = flows.METHOD_HANDLERS["face"]
    flows.register_handler("face", "fengchao.access.no_such_module:identify")
    try:
        answer = decide(session, gates, method="face", frame=b"jpeg")
    finally:
        flows.register_handler("face", previous)
    assert answer.decision == "deny" and answer.reasons == ["face_unavailable"]


def test_pin_is_a_throttled_last_resort(session: Session, grid: Grid, gates: Gates) -> None:
    pid = str(grid.resident5.id)
    assert decide(session, gates, method="pin", value=pid, pin="246810").reasons[0] == "pin_unset"
    with pytest.raises(access.AccessRefusal):
        access.set_pin(session=session, actor=SYSTEM_ACTOR, person_id=grid.resident5.id,
                       pin="111111")  # fmt: skip
    access.set_pin(session=session, actor=SYSTEM_ACTOR, person_id=grid.resident5.id, pin="246810")
    assert decide(session, gates, method="pin", value=pid, pin="246810").decision == "allow"
    for _ in range(4):
        assert decide(session, gates, method="pin", value=pid, pin="000001").reasons[0] == (
            "pin_wrong"
        )
    assert decide(session, gates, method="pin", value=pid, pin="000001").reasons[0] == "pin_locked"
    # Locked: even the right PIN waits.
    assert decide(session, gates, method="pin", value=pid, pin="246810").reasons[0] == "pin_locked"
    later = NOW + dt.timedelta(minutes=20)
    assert decide(session, gates, method="pin", value=pid, pin="246810", now=later).decision == (
        "allow"
    )


def test_operator_outside_the_gate_scope_is_not_found(
    session: Session, grid: Grid, gates: Gates, lead5: Persona, guard: Persona
) -> None:
    with pytest.raises(Forbidden):  # a building lead does not operate gates
        decide(session, gates, value=str(grid.resident5.id), sender=Sender.console(lead5.actor))
    answer = decide(
        session, gates, value=str(grid.resident5.id), sender=Sender.console(guard.actor)
    )
    event = session.get(AccessEvent, answer.event_id)
    assert event is not None and event.operator_id == guard.user.id


def test_resident_code_passes_and_bad_codes_are_refused_by_name(
    session: Session, grid: Grid, gates: Gates, worker: Persona
) -> None:
    from fengchao.access import codes

    text = codes.personal_code(session, grid.resident5.id)
    answer = decide(session, gates, method="code", value=text)
    assert answer.decision == "allow" and answer.person_id == grid.resident5.id
    altered = text[:-2] + ("AA" if not text.endswith("AA") else "BB")
    assert decide(session, gates, method="code", value=altered).reasons[0].startswith("code_")
    codes.rotate_code(session, worker.actor, grid.resident5.id)
    rotated = decide(session, gates, method="code", value=text)
    assert rotated.decision == "deny" and rotated.reasons == ["code_rotated"]
    assert rotated.message == "通行码无效"


def test_code_of_another_community_is_refused(session: Session, gates: Gates) -> None:
    from fengchao.access import codes
    from tests.conftest import build_grid

    elsewhere = build_grid(session)
    text = codes.personal_code(session, elsewhere.resident5.id)
    answer = decide(session, gates, method="code", value=text)
    assert answer.decision == "deny" and answer.reasons == ["code_other_community"]


def test_counts_per_local_hour_and_busiest_hour(
    session: Session, grid: Grid, gates: Gates, worker: Persona, lead5: Persona
) -> None:
    from fengchao.access import records

    for minutes in (0, 10, 50, 70):  # 12:00, 12:10, 12:50, 13:10 in Shanghai
        decide(
            session, gates, value=str(grid.resident5.id), now=NOW + dt.timedelta(minutes=minutes)
        )
    day = dt.date(2026, 11, 30)
    counts = records.hourly_counts(session=session, actor=worker.actor, day=day,
                                   gate_id=gates.east.id)  # fmt: skip
    assert (counts[12]["allow"], counts[13]["allow"], sum(c["allow"] for c in counts)) == (3, 1, 4)
    assert records.busiest_hour(session=session, actor=worker.actor, gate_id=gates.east.id,
                                day=day) == (12, 3)  # fmt: skip
    # A building lead sees the gate's events of their own building's residents only.
    decide(session, gates, value=str(grid.resident6.id))
    lead = records.hourly_counts(session=session, actor=lead5.actor, day=day, gate_id=gates.east.id)
    assert sum(c["allow"] for c in lead) == 4


def test_scheduled_purge_deletes_only_events_past_their_keeping_time(
    session: Session, grid: Grid, gates: Gates
) -> None:
    from fengchao.access.jobs import purge_events_job
    from fengchao.notify.scheduler import SCHEDULED_JOBS

    assert "access.purge_events" in SCHEDULED_JOBS
    old = decide(session, gates, value=str(grid.resident5.id),
                 now=dt.datetime.now(dt.UTC) - dt.timedelta(days=400))  # fmt: skip
    fresh = decide(session, gates, value=str(grid.resident5.id), now=dt.datetime.now(dt.UTC))
    assert purge_events_job(session=session) == 1
    assert session.get(AccessEvent, old.event_id) is None
    assert session.get(AccessEvent, fresh.event_id) is not None


def test_truncated_and_huge_frames_are_refused(session: Session, grid: Grid, gates: Gates) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (200, 120), "white").save(buffer, "JPEG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    huge = b"\\xff\\xd8" + b"0" * (16 * 1024 * 1024)
    garage = {"gate_id": gates.garage.id, "method": "plate",
              "sender": Sender.device(gates.garage_device)}  # fmt: skip
    for frame in (truncated, huge):
        with pytest.raises(BadPassage) as refused:
            decide(session, gates, frame=frame, **garage)
        assert refused.value.field == "frame"
    assert events(session) == 0


def test_an_unregistered_courier_passes_by_the_rules_for_couriers(
    session: Session, grid: Grid, gates: Gates, guard: Persona
) -> None:
    access.create_rule(session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id,
                       effect="allow", roles=["courier"], gate_id=gates.east.id,
                       start_time="08:00", end_time="20:00")  # fmt: skip
    console = Sender.console(guard.actor)
    noon = decide(session, gates, direction="in", role="courier", sender=console)
    assert noon.decision == "allow" and noon.person is None
    night = decide(session, gates, direction="in", role="courier", sender=console,
                   now=NOW + dt.timedelta(hours=10))  # fmt: skip
    assert night.decision == "deny" and night.reasons == ["no_rule"]
    with pytest.raises(BadPassage):  # a device cannot vouch for anyone
        decide(session, gates, direction="in", role="courier")


def test_a_fever_is_told_even_when_the_face_is_unknown(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    fake_faces.append(FakeOutcome(None, reason="unknown_face"))
    answer = decide(session, gates, method="face", frame=b"jpeg", temperature=38.4)
    assert answer.decision == "deny" and answer.reasons == ["unknown_face", "fever"]
    assert session.scalar(select(func.count()).where(Notification.kind == "fever")) == 1


def test_pending_masked_frame_says_what_it_waits_for(
    session: Session, grid: Grid, gates: Gates, fake_faces: list[object]
) -> None:
    fake_faces.append(FakeOutcome(grid.resident5.id, masked=True))
    answer = decide(session, gates, method="face", frame=b"one")
    assert answer.reasons[0] == "masked_needs_second_frame"
    assert answer.message.startswith("戴口罩")
