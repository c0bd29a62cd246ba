"""Swab registration: tubes of ten, refusals with their field, idempotency, undo."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.auth.service import Forbidden
from fengchao.sampling import picker, service, tubes
from fengchao.sampling import registration as reg
from fengchao.sampling.models import Swab, Tube
from tests.access.conftest import make_gates
from tests.conftest import Grid, Persona
from tests.sampling.conftest import Site


def key() -> str:
    return uuid.uuid4().hex


def swab(session: Session, actor: Persona, site: Site, barcode: str, i: int, **kw: object):  # type: ignore[no-untyped-def]
    return reg.register_swab(
        session=session,
        actor=actor.actor,
        round_id=site.round.id,
        barcode=barcode,
        key=str(kw.pop("key", key())),
        code=site.numbers[i],
        station="1",
        **kw,  # type: ignore[arg-type]
    )


def test_a_tube_fills_to_ten_and_closes(session: Session, site: Site, sampler: Persona) -> None:
    for i in range(10):
        done = swab(session, sampler, site, "T0001", i)
        assert done.tube.swabs == i + 1
        assert done.name == f"居民{i + 1}"
    assert done.tube.closed


def test_an_eleventh_swab_into_a_ten_tube_is_refused(
    session: Session, site: Site, sampler: Persona
) -> None:
    for i in range(10):
        swab(session, sampler, site, "T0002", i)
    with pytest.raises(reg.SwabRefused) as refused:
        swab(session, sampler, site, "T0002", 10)
    assert refused.value.field == "tube"
    assert session.scalar(select(func.count(Swab.id)).where(Swab.round_id == site.round.id)) == 10


def test_a_person_scanned_twice_in_a_tube_is_refused(
    session: Session, site: Site, sampler: Persona
) -> None:
    swab(session, sampler, site, "T0003", 0)
    with pytest.raises(reg.SwabRefused) as refused:
        swab(session, sampler, site, "T0003", 0, retest_reason="复采")
    assert refused.value.code == "in_tube"


def test_a_person_twice_in_a_round_needs_a_reason(
    session: Session, site: Site, sampler: Persona
) -> None:
    swab(session, sampler, site, "T0004", 0)
    with pytest.raises(reg.SwabRefused) as refused:
        swab(session, sampler, site, "T0005", 0)
    assert refused.value.field == "retest_reason"
    done = swab(session, sampler, site, "T0005", 0, retest_reason="试管破损复采")
    assert done.retest


def test_a_repeated_key_counts_once(session: Session, site: Site, sampler: Persona) -> None:
    same = key()
    first = swab(session, sampler, site, "T0006", 0, key=same)
    again = swab(session, sampler, site, "T0006", 0, key=same)
    assert again.repeated and again.swab_id == first.swab_id
    assert again.tube.swabs == 1


def test_a_tube_barcode_scanned_twice_takes_up_the_open_tube(
    session: Session, site: Site, sampler: Persona
) -> None:
    actor = sampler.actor
    first = reg.open_tube(session=session, actor=actor, round_id=site.round.id, barcode="t0007")
    swab(session, sampler, site, "T0007", 0)
    again = reg.open_tube(session=session, actor=actor, round_id=site.round.id, barcode="T0007")
    assert again.id == first.id and again.swabs == 1
    tubes.close_tube(session=session, actor=actor, round_id=site.round.id, barcode="T0007")
    with pytest.raises(reg.SwabRefused) as refused:
        reg.open_tube(session=session, actor=actor, round_id=site.round.id, barcode="T0007")
    assert refused.value.code == "tube_closed"
    with pytest.raises(reg.SwabRefused):
        swab(session, sampler, site, "T0007", 1)


def test_a_tube_of_another_round_is_refused(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    swab(session, sampler, site, "T0008", 0)
    other = service.create_round(
        session=session, actor=worker.actor, site_id=site.site.id, name="复采", day=site.round.day
    )
    with pytest.raises(reg.SwabRefused) as refused:
        reg.register_swab(
            session=session,
            actor=sampler.actor,
            round_id=other.id,
            barcode="T0008",
            key=key(),
            code=site.numbers[1],
        )
    assert refused.value.code == "other_round"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("110105198001019999", "bad_id"),  # wrong check character
        ("110105198001010011", "unknown_id"),  # valid, not registered here
        ("<script>", "malformed"),
        ("", "empty"),
    ],
)
def test_unknown_or_malformed_people_are_refused(
    session: Session, site: Site, sampler: Persona, text: str, code: str
) -> None:
    with pytest.raises(reg.SwabRefused) as refused:
        reg.register_swab(
            session=session,
            actor=sampler.actor,
            round_id=site.round.id,
            barcode="T0009",
            key=key(),
            code=text,
        )
    assert refused.value.field == "person"
    if code != "unknown_id" or not text.endswith("0011"):
        assert refused.value.code in (code, "unknown_id", "bad_id")


def test_undo_takes_the_last_swab_out_of_an_open_tube(
    session: Session, site: Site, sampler: Persona
) -> None:
    swab(session, sampler, site, "T0010", 0)
    swab(session, sampler, site, "T0010", 1)
    state = tubes.undo_last(
        session=session, actor=sampler.actor, round_id=site.round.id, barcode="T0010"
    )
    assert state.swabs == 1
    assert [m.name for m in tubes.tube_members(session, state.id)] == ["居民1"]


def test_a_person_picked_by_room_is_registered(
    session: Session, site: Site, sampler: Persona, grid: Grid
) -> None:
    people = picker.people_in_room(
        session=session,
        actor=sampler.actor,
        round_id=site.round.id,
        building="5",
        unit="1",
        room="101",
    )
    assert grid.resident5.id in [p.person_id for p in people]
    done = reg.register_swab(
        session=session,
        actor=sampler.actor,
        round_id=site.round.id,
        barcode="T0011",
        key=key(),
        person_id=grid.resident5.id,
    )
    assert done.name == grid.resident5.name
    assert service.last_sampled_at(session, grid.resident5.id) is not None
    # The gate's card shows the day of that swab; a neighbour never swabbed has none.
    gates = make_gates(session, grid)
    cards = [
        flows.decide(
            session=session,
            request=flows.PassageRequest(
                gates.east.id, "in", "person", value=str(person.id), idempotency_key=key()
            ),
            sender=flows.Sender.device(gates.east_device),
        ).person
        for person in (grid.resident5, grid.resident6)
    ]
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert [c.last_sampled if c else "no card" for c in cards] == [today, None]


def test_one_household_per_tube_refuses_a_neighbour(
    session: Session, site: Site, sampler: Persona, worker: Persona, grid: Grid
) -> None:
    sealed = service.create_round(
        session=session,
        actor=worker.actor,
        site_id=site.site.id,
        name="封控楼 按户",
        day=site.round.day,
        household_tubes=True,
    )
    reg.register_swab(session=session, actor=sampler.actor, round_id=sealed.id, barcode="H0001",
                      key=key(), person_id=grid.resident5.id)  # fmt: skip
    with pytest.raises(reg.SwabRefused) as refused:
        reg.register_swab(session=session, actor=sampler.actor, round_id=sealed.id,
                          barcode="H0001", key=key(), person_id=grid.resident6.id)  # fmt: skip
    assert refused.value.code == "other_household"


def test_a_guard_may_not_register(session: Session, site: Site, guard: Persona) -> None:
    with pytest.raises(Forbidden):
        swab(session, guard, site, "T0012", 0)


def test_a_resident_code_registers_and_a_forged_one_is_refused(
    session: Session, site: Site, sampler: Persona, grid: Grid
) -> None:
    from fengchao.access import codes

    text = codes.personal_code(session, grid.resident6.id)
    done = reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                             barcode="C0001", key=key(), code=text)  # fmt: skip
    assert done.person_id == grid.resident6.id
    forged = text[:-3] + ("AAA" if not text.endswith("AAA") else "BBB")
    with pytest.raises(reg.SwabRefused) as refused:
        reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                          barcode="C0001", key=key(), code=forged)  # fmt: skip
    assert refused.value.field == "person"
    assert refused.value.code in ("forged", "malformed")


def test_tracing_reads_tube_mates_and_queue_neighbours(
    session: Session, site: Site, sampler: Persona
) -> None:
    import datetime as dt

    for i in range(5):
        swab(session, sampler, site, "Q0001", i)
    mates = service.tube_mates(session, session.scalar(select(Swab.tube_id).limit(1)) or 0)
    assert len(mates) == 5 and {m.tube_barcode for m in mates} == {"Q0001"}
    middle = mates[2]
    around = service.queue_around(session, middle.swab_id, 1)
    assert middle.swab_id not in {r.swab_id for r in around} and len(around) == 2
    day = service.swabs_of(
        session,
        middle.person_id,
        middle.at - dt.timedelta(hours=1),
        middle.at + dt.timedelta(hours=1),
    )
    assert [r.swab_id for r in day] == [middle.swab_id]
    assert day[0].site_id == site.site.id


def test_a_rotated_or_foreign_resident_code_is_refused_at_the_site(
    session: Session, site: Site, sampler: Persona, grid: Grid, worker: Persona
) -> None:
    from fengchao.access import codes

    old = codes.personal_code(session, grid.resident6.id)
    new = codes.rotate_code(session, worker.actor, grid.resident6.id)
    foreign = codes.seal(grid.resident6.id, grid.community.id + 1000, 1)
    nobody = codes.seal(2**31 - 1, grid.community.id, 1)
    refusals = []
    for text in (old, foreign, nobody):
        with pytest.raises(reg.SwabRefused) as refused:
            reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                              barcode="C0002", key=key(), code=text)  # fmt: skip
        assert refused.value.field == "person"
        refusals.append(refused.value.code)
    assert refusals == ["rotated", "other_community", "unknown_person"]
    done = reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                             barcode="C0002", key=key(), code=new)  # fmt: skip
    assert (done.person_id, done.tube.swabs) == (grid.resident6.id, 1)
    assert session.scalar(select(func.count(Swab.id)).where(Swab.round_id == site.round.id)) == 1


def test_a_replayed_key_answers_even_after_its_tube_closed(
    session: Session, site: Site, sampler: Persona
) -> None:
    keys = [key() for _ in range(10)]
    first = [swab(session, sampler, site, "T0013", i, key=keys[i]) for i in range(10)]
    assert first[-1].tube.closed
    # A page that lost the server sends its queue again: every answer is the one it missed.
    again = [swab(session, sampler, site, "T0013", i, key=keys[i]) for i in range(10)]
    assert all(a.repeated for a in again)
    assert [a.swab_id for a in again] == [f.swab_id for f in first]
    assert [a.place for a in again] == [f.place for f in first]
    assert again[0].tube.swabs == 10 and again[0].tube.closed
    assert session.scalar(select(func.count(Swab.id)).where(Swab.round_id == site.round.id)) == 10


def test_a_key_committed_meanwhile_answers_as_a_repeat(
    session: Session, site: Site, sampler: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = key()
    first = swab(session, sampler, site, "T0014", 0, key=same)
    # Another request with the same key committed just after this one's reads (PostgreSQL
    # reads at each statement): neither the key nor the swab was seen, the insert does
    # nothing and the answer is that registration.
    checked, resolved = reg._round_for_registration, reg.resolve_person

    def missed_the_key(*args: object, **kw: object) -> reg.RoundForRegistration:
        return dataclasses.replace(checked(*args, **kw), earlier_swab=None)  # type: ignore[arg-type]

    def missed_the_swab(*args: object, **kw: object) -> tuple[object, str]:
        person, via = resolved(*args, **kw)  # type: ignore[arg-type]
        return dataclasses.replace(person, swabs_in_round=0, in_tube=False), via

    monkeypatch.setattr(reg, "_round_for_registration", missed_the_key)
    monkeypatch.setattr(reg, "resolve_person", missed_the_swab)
    again = swab(session, sampler, site, "T0014", 0, key=same)
    assert again.repeated and again.swab_id == first.swab_id
    assert again.tube.swabs == 1
    assert session.scalar(select(func.count(Swab.id)).where(Swab.round_id == site.round.id)) == 1


def test_a_tube_opened_meanwhile_by_another_station_is_taken_up(
    session: Session, site: Site, sampler: Persona
) -> None:
    found = reg._round_for_registration(session, sampler.actor, site.round.id)
    reg._open_tube_row(session, found, "T0015")
    reg._open_tube_row(session, found, "T0015")  # the other station's, lost the race
    done = swab(session, sampler, site, "T0015", 0)
    assert done.tube.swabs == 1
    assert session.scalar(select(func.count(Tube.id)).where(Tube.barcode == "T0015")) == 1


def test_tube_pages_see_what_registration_wrote_in_the_same_session(
    session: Session, site: Site, sampler: Persona
) -> None:
    actor, round_id = sampler.actor, site.round.id
    opened = reg.open_tube(session=session, actor=actor, round_id=round_id, barcode="T0016",
                           station="2")  # fmt: skip
    for i in range(3):
        swab(session, sampler, site, "T0016", i)
    tube = session.get(Tube, opened.id)
    assert tube is not None and (tube.swabs, tube.station) == (3, "2")
    assert (
        tubes.undo_last(session=session, actor=actor, round_id=round_id, barcode="T0016").swabs == 2
    )
    closed = tubes.close_tube(session=session, actor=actor, round_id=round_id, barcode="T0016")
    assert (closed.swabs, closed.closed) == (2, True)
    stations = session.scalars(select(Swab.station).where(Swab.tube_id == opened.id))
    assert set(stations) == {"1"}
