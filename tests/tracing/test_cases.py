"""Cases from the database: contacts from the registry and the access record, decisions,
protection of confirmed contacts, scope, and the command line."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.access.models import AccessEvent
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Forbidden, GridScope, NotFound
from fengchao.db import utcnow
from fengchao.notify.models import Notification
from fengchao.registry.models import HealthStatus, Person, Relation
from fengchao.tracing import service
from fengchao.tracing.models import ContactStatus
from tests.conftest import Grid, Persona, make_persona

NOW = utcnow()


def passage(session: Session, grid: Grid, person: Person, gate: int, minutes_ago: float) -> None:
    passage_at(session, grid, person, gate, NOW - dt.timedelta(minutes=minutes_ago))
    session.flush()


def passage_at(
    session: Session, grid: Grid, person: Person, gate: int, at: dt.datetime, direction: str = "in"
) -> None:
    """A person's allowed passage at ``gate`` of the park at ``at`` (added, not flushed)."""
    session.add(
        AccessEvent(
            community_id=grid.community.id,
            compound_id=grid.park.id,
            gate_id=gate,
            direction=direction,
            method="code",
            decision="allow",
            reasons=[],
            person_id=person.id,
            household_id=person.household_id,
            alert_level="normal",
            occurred_at=at,
            server_time=at,
        )
    )


@pytest.fixture
def family(session: Session, grid: Grid) -> Person:
    spouse = Person(
        community_id=grid.community.id,
        household_id=grid.h5_101.id,
        name="林太太",
        relation=Relation.family,
    )
    session.add(spouse)
    session.flush()
    return spouse


def test_household_co_passage_and_building_contacts_of_a_case(
    session: Session, grid: Grid, worker: Persona, family: Person
) -> None:
    neighbour = Person(community_id=grid.community.id, household_id=grid.h6_101.id, name="王五")
    session.add(neighbour)
    session.flush()
    passage(session, grid, grid.resident5, gate=1, minutes_ago=60)
    passage(session, grid, grid.resident6, gate=1, minutes_ago=57)  # 3 minutes later
    passage(session, grid, neighbour, gate=1, minutes_ago=40)  # 20 minutes later
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    view = service.case_view(session=session, actor=worker.actor, case_id=case.id)
    found = {line.contact.subject: line.contact for line in view.lines}
    assert found[("person", family.id)].tier == "close"
    assert found[("person", family.id)].reasons[0].kind == "household"
    co = found[("person", grid.resident6.id)]
    assert co.tier == "close" and co.reasons[0].kind == "co_passage"
    assert co.reasons[0].evidence["gate_id"] == 1
    # 王五 passed 20 minutes later: no co-passage; but he lives with 陈美玲, a close
    # contact, so he is a secondary contact through the chain.
    chained = found[("person", neighbour.id)]
    assert chained.tier == "secondary" and [r.kind for r in chained.reasons] == ["chain"]
    assert session.get(Person, grid.resident5.id).health_status == HealthStatus.positive  # type: ignore[union-attr]


def test_a_person_positive_twice_is_one_case_with_two_results(
    session: Session, grid: Grid, worker: Persona
) -> None:
    first = service.open_case(
        session=session,
        actor=worker.actor,
        person_id=grid.resident5.id,
        confirmed_at=NOW - dt.timedelta(days=1),
    )
    second = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    assert first.id == second.id
    view = service.case_view(session=session, actor=worker.actor, case_id=first.id)
    assert len(view.results) == 2


def test_confirm_dismiss_and_protect(
    session: Session, grid: Grid, worker: Persona, family: Person
) -> None:
    passage(session, grid, grid.resident5, gate=1, minutes_ago=30)
    passage(session, grid, grid.resident6, gate=1, minutes_ago=29)
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    with pytest.raises(service.TracingRefusal) as refused:
        service.decide(
            session=session,
            actor=worker.actor,
            case_id=case.id,
            subject=("person", grid.resident6.id),
            status=ContactStatus.dismissed,
            reason="  ",
        )
    assert refused.value.field == "reason"
    service.decide(
        session=session,
        actor=worker.actor,
        case_id=case.id,
        subject=("person", grid.resident6.id),
        status=ContactStatus.dismissed,
        reason="监控显示未同行",
    )
    service.decide(
        session=session,
        actor=worker.actor,
        case_id=case.id,
        subject=("person", family.id),
        status=ContactStatus.confirmed,
        reason="",
    )
    done = service.protect(session=session, actor=worker.actor, case_id=case.id)
    assert (done.isolated, done.listed, done.leads_told) == (1, 1, 1)
    assert family.health_status == HealthStatus.home_isolation
    assert grid.resident6.health_status == HealthStatus.normal
    assert service.sampling_list(session=session, actor=worker.actor, case_id=case.id) == [
        family.id
    ]
    told = session.scalars(select(Notification).where(Notification.kind == "tracing")).all()
    assert len(told) == 1 and "1 名密接" in told[0].title
    # The lead must know whom to check on: names and rooms, in the inbox only (not chats).
    assert told[0].detail is not None and "林太太" not in told[0].body
    assert "林太太" in told[0].detail and "5-1-101" in told[0].detail
    again = service.protect(session=session, actor=worker.actor, case_id=case.id)
    assert (again.isolated, again.listed) == (0, 0)


def test_a_dismissed_contact_who_turns_up_through_another_case_shows_the_dismissal(
    session: Session, grid: Grid, worker: Persona, family: Person
) -> None:
    first = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    service.decide(
        session=session,
        actor=worker.actor,
        case_id=first.id,
        subject=("person", family.id),
        status=ContactStatus.dismissed,
        reason="外地出差",
    )
    other = Person(community_id=grid.community.id, household_id=grid.h5_101.id, name="林小弟")
    session.add(other)
    session.flush()
    second = service.open_case(
        session=session, actor=worker.actor, person_id=other.id, confirmed_at=NOW
    )
    view = service.case_view(session=session, actor=worker.actor, case_id=second.id)
    line = next(x for x in view.lines if x.contact.subject == ("person", family.id))
    assert [d.reason for d in line.contact.earlier_dismissals] == ["外地出差"]


def test_scope_and_role(session: Session, grid: Grid, worker: Persona, lead5: Persona) -> None:
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    with pytest.raises(Forbidden):
        service.case_view(session=session, actor=lead5.actor, case_id=case.id)
    elsewhere = make_persona(
        session,
        "其他社区干部",
        Role.community_worker,
        GridScope(ScopeLevel.compound, grid.other.id),
    )
    with pytest.raises(NotFound):
        service.case_view(session=session, actor=elsewhere.actor, case_id=case.id)


def test_times_that_cannot_be_are_refused(session: Session, grid: Grid, worker: Persona) -> None:
    with pytest.raises(service.TracingRefusal) as refused:
        service.open_case(
            session=session,
            actor=worker.actor,
            person_id=grid.resident5.id,
            confirmed_at=NOW,
            onset_at=NOW + dt.timedelta(days=1),
        )
    assert refused.value.field == "onset_at"


def test_a_lookback_past_the_retention_says_what_is_gone(session: Session, grid: Grid) -> None:
    result = service.trace_since(
        session, person_id=grid.resident5.id, since=(NOW - dt.timedelta(days=400)).date()
    )
    assert result.notes and "已按规定删除" in result.notes[0]


def test_cli_prints_the_contacts_as_json(
    session: Session, grid: Grid, family: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import contextmanager

    from fengchao import cli

    passage(session, grid, grid.resident5, gate=2, minutes_ago=10)
    passage(session, grid, grid.resident6, gate=2, minutes_ago=8)

    @contextmanager
    def scope(**_: object):  # type: ignore[no-untyped-def]
        yield session

    monkeypatch.setattr("fengchao.tracing.cli.session_scope", scope)
    since = (NOW - dt.timedelta(days=1)).date().isoformat()
    result = CliRunner().invoke(
        cli.app, ["trace", "case", str(grid.resident5.id), "--since", since, "--json"]
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["case"] == grid.resident5.id
    by_person = {c["person_id"]: c for c in output["contacts"]}
    assert by_person[family.id]["tier"] == "close"
    assert by_person[family.id]["reasons"][0]["kind"] == "household"
    assert by_person[grid.resident6.id]["reasons"][0]["kind"] == "co_passage"
    narrow = CliRunner().invoke(
        cli.app,
        [
            "trace",
            "case",
            str(grid.resident5.id),
            "--since",
            since,
            "--window-minutes",
            "1",
            "--json",
        ],
    )
    assert grid.resident6.id not in {c["person_id"] for c in json.loads(narrow.stdout)["contacts"]}
    bad = CliRunner().invoke(cli.app, ["trace", "case", "1", "--since", "yesterday"])
    assert bad.exit_code == 2


def test_queue_neighbours_and_tube_mates_from_the_sampling_site(
    session: Session, grid: Grid, worker: Persona
) -> None:
    from fengchao.sampling.models import SamplingRound, SamplingSite, Swab, Tube

    site = SamplingSite(community_id=grid.community.id, name="华润中央公园采样点")
    session.add(site)
    session.flush()
    round_ = SamplingRound(
        community_id=grid.community.id, site_id=site.id, name="全员", day=NOW.date()
    )
    session.add(round_)
    session.flush()
    people = [
        Person(community_id=grid.community.id, household_id=grid.h6_101.id, name=f"排队{i}")
        for i in range(6)
    ]
    session.add_all(people)
    session.flush()
    tubes = [
        Tube(community_id=grid.community.id, round_id=round_.id, barcode=f"T{i}", station="1")
        for i in range(2)
    ]
    session.add_all(tubes)
    session.flush()
    queue = [people[0], people[1], grid.resident5, people[2], people[3], people[4]]
    for i, person in enumerate(queue):
        session.add(
            Swab(
                community_id=grid.community.id,
                round_id=round_.id,
                tube_id=tubes[0 if i < 4 else 1].id,
                person_id=person.id,
                station="1",
                taken_at=NOW - dt.timedelta(hours=2, minutes=-i),
                key=f"k{i}",
            )
        )
    # Someone at another station at the same minute is not in the case's queue.
    other_tube = Tube(community_id=grid.community.id, round_id=round_.id, barcode="T9", station="2")
    session.add(other_tube)
    session.flush()
    session.add(
        Swab(
            community_id=grid.community.id,
            round_id=round_.id,
            tube_id=other_tube.id,
            person_id=people[5].id,
            station="2",
            taken_at=NOW - dt.timedelta(hours=2, minutes=-2),
            key="k9",
        )
    )
    session.flush()
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    view = service.case_view(session=session, actor=worker.actor, case_id=case.id)
    # (Everyone queued here lives in 6-1-101, so they are also each other's household
    # contacts through the chain: only the direct reasons are compared.)
    kinds = {
        line.contact.subject[1]: sorted(
            r.kind for r in line.contact.reasons if r.kind not in ("building", "chain")
        )
        for line in view.lines
    }
    assert kinds[people[1].id] == ["sampling_queue", "tube"]  # just before, same tube
    assert kinds[people[0].id] == ["sampling_queue", "tube"]
    assert kinds[people[2].id] == ["sampling_queue", "tube"]
    assert kinds[people[3].id] == ["sampling_queue"]  # two after, next tube
    assert kinds.get(people[4].id, []) == []  # three after: too far
    assert kinds.get(people[5].id, []) == []  # another station


def test_a_case_with_no_passages(session: Session, grid: Grid, worker: Persona) -> None:
    """Nobody passed a gate in the lookback: the case still opens, with the contacts the
    registry gives (the building) and none from the access record."""
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident6.id, confirmed_at=NOW
    )
    view = service.case_view(session=session, actor=worker.actor, case_id=case.id)
    kinds = {r.kind for line in view.lines for r in line.contact.reasons}
    assert "co_passage" not in kinds and kinds <= {"building", "household", "chain"}


def test_household_links_read_for_the_whole_community_give_the_same_chain(
    session: Session, grid: Grid, worker: Persona, family: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of close contacts: who lives where is read once for the community."""
    from fengchao.tracing.records import DatabaseRecords

    neighbour = Person(community_id=grid.community.id, household_id=grid.h6_101.id, name="王五")
    session.add(neighbour)
    session.flush()
    passage(session, grid, grid.resident5, gate=1, minutes_ago=60)
    passage(session, grid, grid.resident6, gate=1, minutes_ago=58)
    window = service.Window(NOW - dt.timedelta(days=1), NOW)
    ids = {"community_id": grid.community.id, "window": window}
    few = service.trace(session, person_id=grid.resident5.id, **ids)  # type: ignore[arg-type]
    monkeypatch.setattr(DatabaseRecords, "MANY", 0)
    many = service.trace(session, person_id=grid.resident5.id, **ids)  # type: ignore[arg-type]
    assert [(c.subject, c.tier) for c in many.contacts] == [
        (c.subject, c.tier) for c in few.contacts
    ]
    assert ("person", neighbour.id) in {c.subject for c in many.contacts}


def test_an_onset_long_before_the_confirmation_is_refused_as_a_typo(
    session: Session, grid: Grid, worker: Persona
) -> None:
    """An onset in 1900 (a slip of the date picker) would look back 126 years: refused,
    naming the field, before anything is written."""
    for field in ("onset_at", "sampled_at"):
        with pytest.raises(service.TracingRefusal) as refused:
            service.open_case(
                session=session,
                actor=worker.actor,
                person_id=grid.resident5.id,
                confirmed_at=NOW,
                **{field: dt.datetime(1900, 1, 1, tzinfo=dt.UTC)},  # type: ignore[arg-type]
            )
        assert refused.value.field == field and "30" in refused.value.message
    assert service.list_cases(session=session, actor=worker.actor) == []


def test_a_decision_from_a_stale_page_does_not_overwrite_a_colleagues(
    session: Session, grid: Grid, worker: Persona, family: Person
) -> None:
    """Two workers with the case open: one confirms, the other (page still showing the
    contact undecided) presses dismiss. Refused, saying what the contact is now; pressing
    the same button twice (a double submit) is not a conflict."""
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    decide = {
        "session": session,
        "actor": worker.actor,
        "case_id": case.id,
        "subject": ("person", family.id),
    }
    service.decide(**decide, status=ContactStatus.confirmed, reason="", shown="")  # type: ignore[arg-type]
    service.decide(**decide, status=ContactStatus.confirmed, reason="", shown="")  # type: ignore[arg-type]
    with pytest.raises(service.TracingRefusal) as refused:
        service.decide(**decide, status=ContactStatus.dismissed, reason="出差", shown="")  # type: ignore[arg-type]
    assert refused.value.status == 409 and "已确认" in refused.value.message
    view = service.case_view(session=session, actor=worker.actor, case_id=case.id)
    (line,) = [x for x in view.lines if x.contact.subject == ("person", family.id)]
    assert line.decision is not None and line.decision.status == ContactStatus.confirmed
    changed = service.decide(  # from a fresh page the worker may change it
        **decide,  # type: ignore[arg-type]
        status=ContactStatus.dismissed,
        reason="出差",
        shown="confirmed",
    )
    assert changed.status == ContactStatus.dismissed
