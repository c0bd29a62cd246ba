"""Quick device decisions decided in groups (group commit, ``access.device_api.decide_group``),
on committed sessions as production runs them: each decision of a group is answered as it
would be alone, a refusal does not touch its neighbours, a key used twice in one group or
a household's last pass taken from two groups at once are decided right."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from fengchao.access import device_api as api
from fengchao.access import flows, schemas
from fengchao.access import service as access
from fengchao.access.models import AccessEvent, QuotaUse
from fengchao.app import create_app
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.notify.models import Notification
from fengchao.registry.models import Person, Relation
from tests.conftest import build_grid


@dataclass
class World:
    engine: Engine
    app: Any
    east_key: str
    garage_key: str
    people: list[int]  # members of one household (5-1-101)
    neighbour: int  # a person of another household
    plate: str


@pytest.fixture(scope="module")
def world(own_database: Engine) -> Iterator[World]:
    with Session(own_database, expire_on_commit=False) as session:
        grid = build_grid(session)
        east = access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id,
                                  name="东门", kind="pedestrian")  # fmt: skip
        garage = access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id,
                                    name="车库口", kind="vehicle")  # fmt: skip
        _d1, east_key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                             gate_id=east.id, name="东门平板")  # fmt: skip
        _d2, garage_key = access.create_device(session=session, actor=SYSTEM_ACTOR,
                                               gate_id=garage.id, name="车库相机")  # fmt: skip
        members = [
            Person(community_id=grid.community.id, household_id=grid.h5_101.id,
                   name=f"家人{i}", relation=Relation.family)
            for i in range(20)
        ]  # fmt: skip
        session.add_all(members)
        from fengchao.registry.models import Vehicle

        session.add(Vehicle(community_id=grid.community.id, household_id=grid.h5_101.id,
                            plate="闽A12345"))  # fmt: skip
        session.commit()
        people = [m.id for m in members]
        neighbour = grid.resident6.id
        community_id = grid.community.id
    yield World(own_database, create_app(engine=own_database), east_key, garage_key, people,
                neighbour, "闽A12345")  # fmt: skip
    with Session(own_database) as session:
        access.set_level(session=session, actor=SYSTEM_ACTOR, community_id=community_id,
                         level="normal")  # fmt: skip
        session.commit()


def _pending(world: World, body: dict[str, Any], key: str | None, *, garage: bool = False) -> Any:
    request = Request({"type": "http", "app": world.app, "headers": [], "method": "POST",
                       "path": api.DeviceDecisions.PATH})  # fmt: skip
    device_key = world.garage_key if garage else world.east_key
    return api._Pending(request, schemas.PassageIn.model_validate(body), b"", device_key, key,
                        contextvars.copy_context())  # fmt: skip


def _outcome(pending: Any) -> dict[str, Any] | BaseException:
    exc = pending.answer.exception(timeout=30)
    if exc is not None:
        return exc  # type: ignore[no-any-return]
    return schemas.DecisionOut.model_validate_json(pending.answer.result()).model_dump()


def _events(world: World) -> dict[int, AccessEvent]:
    with Session(world.engine) as session:
        return {e.id: e for e in session.scalars(select(AccessEvent))}


def test_a_group_answers_each_decision_as_alone_and_a_refusal_leaves_the_rest(
    world: World,
) -> None:
    before = set(_events(world))
    group = [
        _pending(
            world, {"direction": "in", "method": "person", "value": str(world.people[0])}, "g1-a"
        ),
        _pending(world, {"direction": "in", "method": "person", "value": "999999"}, "g1-b"),
        _pending(
            world, {"direction": "out", "method": "person", "value": str(world.neighbour)}, "g1-c"
        ),
        _pending(
            world, {"direction": "in", "method": "plate", "value": "闽a12345"}, "g1-d", garage=True
        ),
        _pending(
            world, {"direction": "in", "method": "plate", "value": "京Z99999"}, "g1-e", garage=True
        ),
    ]
    api.decide_group(group)
    first, unknown, neighbour, car, stranger = (_outcome(p) for p in group)
    assert isinstance(unknown, flows.BadPassage) and unknown.field == "value"
    assert isinstance(first, dict) and isinstance(neighbour, dict)
    assert isinstance(car, dict) and isinstance(stranger, dict)
    assert first["decision"] == "allow" and first["person_id"] == world.people[0]
    assert neighbour["decision"] == "allow" and neighbour["person_id"] == world.neighbour
    assert car["decision"] == "allow" and car["plate_read"] == "闽A12345"
    assert car["match_how"] == "exact" and car["vehicle_id"] is not None
    assert stranger["decision"] == "deny" and stranger["reasons"] == ["unknown_vehicle"]
    # One event per answered decision, each the decision it answered (the ids given after
    # the group's one INSERT belong to the right rows).
    events = _events(world)
    new = set(events) - before
    assert new == {first["event_id"], neighbour["event_id"], car["event_id"],
                   stranger["event_id"]}  # fmt: skip
    assert events[first["event_id"]].person_id == world.people[0]
    assert events[first["event_id"]].idem_key == "g1-a"
    assert events[neighbour["event_id"]].person_id == world.neighbour
    assert events[car["event_id"]].vehicle_id == car["vehicle_id"]
    assert events[stranger["event_id"]].decision == "deny"
    # A retry of an answered decision, in a later group, is answered with the first answer.
    retry = _pending(world, {"direction": "in", "method": "person",
                             "value": str(world.people[0])}, "g1-a")  # fmt: skip
    api.decide_group([retry])
    again = _outcome(retry)
    assert isinstance(again, dict) and again["replayed"]
    assert again["event_id"] == first["event_id"]
    assert len(_events(world)) == len(events)


def test_a_key_used_twice_in_one_group_is_one_passage_and_another_body_is_refused(
    world: World,
) -> None:
    body = {"direction": "in", "method": "person", "value": str(world.people[1])}
    other = {"direction": "out", "method": "person", "value": str(world.people[1])}
    group = [
        _pending(world, body, "g2-a"),
        _pending(world, body, "g2-a"),  # the same request sent twice at once
        _pending(world, other, "g2-a"),  # the same key, another body
        _pending(world, body, "g2-b"),
    ]
    before = len(_events(world))
    api.decide_group(group)
    first, twice, conflict, fourth = (_outcome(p) for p in group)
    assert isinstance(first, dict) and isinstance(twice, dict) and isinstance(fourth, dict)
    assert first["decision"] == "allow" and not first["replayed"]
    assert twice["replayed"] and twice["event_id"] == first["event_id"]
    assert isinstance(conflict, flows.IdempotencyConflict)
    assert fourth["decision"] == "allow" and fourth["event_id"] != first["event_id"]
    assert len(_events(world)) == before + 2


def test_the_last_pass_of_a_household_goes_once_across_two_groups_at_once(
    world: World,
) -> None:
    """Closed management, one pass a household: twenty members at two gates, decided in
    two groups side by side (two threads, two transactions)."""
    with Session(world.engine) as session:
        community_id = session.scalar(select(Person.community_id).limit(1))
        access.set_level(session=session, actor=SYSTEM_ACTOR, community_id=community_id,
                         level="closed")  # fmt: skip
        session.query(QuotaUse).delete()
        session.commit()
    groups: list[list[Any]] = [[], []]
    for n, person_id in enumerate(world.people):
        body = {"direction": "out", "method": "person", "value": str(person_id)}
        groups[n % 2].append(_pending(world, body, f"g3-{n}"))
    start = threading.Barrier(2)

    def decide(group: list[Any]) -> None:
        start.wait()
        api.decide_group(group)

    threads = [threading.Thread(target=decide, args=(g,)) for g in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = [_outcome(p) for g in groups for p in g]
    assert all(isinstance(a, dict) for a in answers), answers
    decisions = [a["decision"] for a in answers if isinstance(a, dict)]
    assert decisions.count("allow") == 1 and decisions.count("deny") == 19
    refused = [a["reasons"] for a in answers if isinstance(a, dict) and a["decision"] == "deny"]
    assert all("quota_used" in r for r in refused)
    with Session(world.engine) as session:
        assert session.scalar(select(func.sum(QuotaUse.used))) == 1
        access.set_level(session=session, actor=SYSTEM_ACTOR, community_id=community_id,
                         level="normal")  # fmt: skip
        session.commit()


def test_the_device_route_answers_before_the_middleware_as_the_app_would(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    grouped: list[object] = []
    submit = api.DecisionGroups.submit

    def counted(self: api.DecisionGroups, pending: Any) -> Any:
        grouped.append(pending)
        return submit(self, pending)

    monkeypatch.setattr(api.DecisionGroups, "submit", counted)
    client = TestClient(world.app)
    url = api.DeviceDecisions.PATH
    headers = {"X-Device-Key": world.east_key, "Idempotency-Key": "g4-a"}
    body = {"direction": "in", "method": "person", "value": str(world.people[2])}
    answer = client.post(url, json=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["decision"] == "allow"
    assert len(grouped) == 1
    # The headers every answer of the app carries.
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    assert answer.headers["x-content-type-options"] == "nosniff"
    # A refusal is answered by the app as any refusal: the field, in the user's language.
    client.cookies.set("fc_lang", "en")
    refused = client.post(
        url, json={**body, "value": "999999"}, headers={**headers, "Idempotency-Key": "g4-b"}
    )
    client.cookies.clear()
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "value"
    assert "999999" in refused.json()["detail"] and "本社区" not in refused.json()["detail"]
    assert refused.headers["cache-control"] == "no-store"
    # A revoked or unknown key: 401, naming the header.
    stranger = client.post(url, json=body, headers={"X-Device-Key": "fcd_nothing"})
    assert stranger.status_code == 401
    assert stranger.json()["errors"][0]["field"] == "X-Device-Key"
    # Not a quick decision, or not JSON at all: the whole app's way, as before.
    broken = client.post(url, content=b"{not json", headers=headers)
    assert broken.status_code == 422
    too_big = client.post(url, content=b"x" * (10 * 1024 * 1024), headers=headers)
    assert too_big.status_code == 413


def test_a_fever_in_a_group_is_told_with_its_own_event_and_the_order_is_kept(
    world: World,
) -> None:
    """A fever's alert links to its event, so that event is written at once; the group's
    events before it are written first, in the order the decisions were made."""

    def person(n: int, key: str, **more: object) -> Any:
        body = {"direction": "in", "method": "person", "value": str(world.people[n]), **more}
        return _pending(world, body, key)

    group = [person(3, "g5-a"), person(4, "g5-b", temperature=38.4), person(5, "g5-c")]
    api.decide_group(group)
    before, fever, after = (_outcome(p) for p in group)
    assert isinstance(before, dict) and isinstance(fever, dict) and isinstance(after, dict)
    assert before["decision"] == "allow" and after["decision"] == "allow"
    assert fever["decision"] == "deny" and fever["reasons"][0] == "fever"
    assert before["event_id"] < fever["event_id"] < after["event_id"]
    events = _events(world)
    assert events[fever["event_id"]].temperature == 38.4
    assert events[fever["event_id"]].person_id == world.people[4]
    with Session(world.engine) as session:
        links = session.scalars(select(Notification.link).where(Notification.kind == "fever"))
        assert f"/access/events/{fever['event_id']}" in list(links)


def test_a_used_key_with_a_body_refused_in_the_group_is_still_a_conflict(world: World) -> None:
    """A key used before, sent again with another body that the group would refuse (an
    unknown person, a bad temperature): 409 as alone, not the refusal (on PostgreSQL the
    group's keys are checked by its INSERT, which a refused decision never reaches)."""
    first = _pending(world, {"direction": "in", "method": "person",
                             "value": str(world.neighbour)}, "g9-a")  # fmt: skip
    api.decide_group([first])
    answered = _outcome(first)
    assert isinstance(answered, dict) and answered["decision"] == "allow"
    before = len(_events(world))
    unknown = _pending(world, {"direction": "in", "method": "person", "value": "999999"}, "g9-a")
    fever = _pending(world, {"direction": "in", "method": "person", "temperature": 45,
                             "value": str(world.neighbour)}, "g9-a")  # fmt: skip
    valid = _pending(world, {"direction": "in", "method": "person",
                             "value": str(world.neighbour)}, "g9-b")  # fmt: skip
    api.decide_group([unknown, fever, valid])
    assert isinstance(_outcome(unknown), flows.IdempotencyConflict)
    assert isinstance(_outcome(fever), flows.IdempotencyConflict)
    alone = _outcome(valid)
    assert isinstance(alone, dict) and alone["decision"] == "allow"
    assert len(_events(world)) == before + 1


def _call(
    app: Any, headers: dict[str, str] | list[tuple[str, str]], messages: list[dict[str, Any]]
) -> list[Any]:
    """The app called as a server would, the request's messages given in order."""
    sent: list[Any] = []
    pairs = headers.items() if isinstance(headers, dict) else headers

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": api.DeviceDecisions.PATH,
        "raw_path": api.DeviceDecisions.PATH.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in pairs],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip
    with contextlib.suppress(Exception):
        asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_gone_before_its_body_is_in_is_not_decided(world: World) -> None:
    """A device that left mid-body (its Content-Length not reached, even with a JSON body
    that reads whole) is not decided: nothing written, as before the fast path."""
    body = json.dumps({"direction": "in", "method": "person",
                       "value": str(world.neighbour)}).encode()  # fmt: skip
    headers = {"Content-Length": str(len(body) + 10), "Content-Type": "application/json",
               "X-Device-Key": world.east_key, "Idempotency-Key": "gone-1"}  # fmt: skip
    _call(world.app, headers, [{"type": "http.request", "body": body, "more_body": True},
                               {"type": "http.disconnect"}])  # fmt: skip
    assert not [e for e in _events(world).values() if e.idem_key == "gone-1"]


def test_a_header_sent_twice_is_read_as_the_app_reads_it(world: World) -> None:
    """Two X-Device-Key headers: the fast path takes the first, as the app does (it took
    the last, so that a refusal decided again by the app could come out otherwise)."""
    body = json.dumps({"direction": "in", "method": "person",
                       "value": str(world.neighbour)}).encode()  # fmt: skip
    headers = [("Content-Length", str(len(body))), ("Content-Type", "application/json"),
               ("X-Device-Key", "not-a-key"), ("X-Device-Key", world.east_key),
               ("Idempotency-Key", "twice-1")]  # fmt: skip
    sent = _call(world.app, headers, [{"type": "http.request", "body": body}])
    assert sent and sent[0]["status"] == 401
    assert not [e for e in _events(world).values() if e.idem_key == "twice-1"]


def test_a_commit_that_fails_is_every_decision_s_answer_and_nothing_is_written_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that raised may still have happened (a connection lost while it was
    acknowledged): the group's decisions are not decided again, or a decision without an
    idempotency key would be stored twice; each device hears of the error."""
    from sqlalchemy.exc import OperationalError

    from fengchao import db

    real = db.finish

    def commit_then_fail(session: Session) -> None:
        real(session)
        raise OperationalError("COMMIT", {}, Exception("connection lost after COMMIT"))

    monkeypatch.setattr(db, "finish", commit_then_fail)
    before = len(_events(world))
    bodies = [
        {"direction": "in", "method": "person", "value": str(world.people[n])} for n in (6, 7)
    ]
    group = [_pending(world, body, None) for body in bodies]
    api.decide_group(group)
    assert all(isinstance(_outcome(p), OperationalError) for p in group)
    assert len(_events(world)) == before + 2
