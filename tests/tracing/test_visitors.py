"""Visitor passes as a contact source, both ways: visitors a case's household received, and
a visitor as the case (the households they visited, the people at the gate with them)."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.access.models import AccessEvent
from fengchao.auth.service import Forbidden
from fengchao.db import utcnow
from fengchao.registry.models import HealthStatus, Person
from fengchao.tracing import service
from fengchao.visitors.models import PassKind, PassStatus, VisitorPass
from tests.conftest import Grid, Persona
from tests.tracing.test_cases import passage

NOW = utcnow()


def visit(session: Session, grid: Grid, *, hours_ago: float, gate: int = 3) -> VisitorPass:
    """A visitor's pass to 5-1-101 (resident 5's home), used at ``gate``: the gate's event
    names the pass, not a person."""
    came = NOW - dt.timedelta(hours=hours_ago)
    row = VisitorPass(
        community_id=grid.community.id,
        compound_id=grid.park.id,
        kind=PassKind.visitor,
        status=PassStatus.active,
        name="访客甲",
        phone="13800001111",
        host_household_id=grid.h5_101.id,
        host_building_id=grid.b5.id,
        host_place="5-1-101",
        gate_ids=[gate],
        valid_from=came - dt.timedelta(minutes=10),
        valid_until=came + dt.timedelta(hours=2),
        entries_used=1,
        last_in_at=came,
        last_out_at=came + dt.timedelta(hours=1),
    )
    session.add(row)
    session.flush()
    session.add(
        AccessEvent(
            community_id=grid.community.id,
            compound_id=grid.park.id,
            gate_id=gate,
            direction="in",
            method="pass",
            decision="allow",
            reasons=[],
            building_id=grid.b5.id,
            alert_level="normal",
            occurred_at=came,
            server_time=came,
            detail={"pass_id": row.id, "pass_kind": "visitor"},
        )
    )
    session.flush()
    return row


def test_a_visitor_the_case_household_received_is_a_close_contact(
    session: Session, grid: Grid, worker: Persona
) -> None:
    guest = visit(session, grid, hours_ago=5)
    case = service.open_case(
        session=session, actor=worker.actor, person_id=grid.resident5.id, confirmed_at=NOW
    )
    view = service.case_view(session=session, actor=worker.actor, case_id=case.id)
    found = {line.contact.subject: line.contact for line in view.lines}
    contact = found[("visitor", guest.id)]
    assert contact.tier == "close" and [r.kind for r in contact.reasons] == ["visitor"]
    evidence = contact.reasons[0].evidence
    assert evidence["pass_id"] == guest.id and evidence["household_id"] == grid.h5_101.id
    assert evidence["gate_id"] == 3 and evidence["role"] == "guest" and "entered_at" in evidence


def test_a_visitor_as_the_case(
    session: Session,
    grid: Grid,
    worker: Persona,
    lead5: Persona,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guest = visit(session, grid, hours_ago=5)
    passage(session, grid, grid.resident6, gate=3, minutes_ago=5 * 60 - 2)  # 2 min after
    # On the command line: the households visited and the people at the gate with them.
    from fengchao import cli

    @contextmanager
    def scope(**_: object):  # type: ignore[no-untyped-def]
        yield session

    monkeypatch.setattr("fengchao.tracing.cli.session_scope", scope)
    since = (NOW - dt.timedelta(days=2)).date().isoformat()
    args = ["trace", "case", "--visitor-pass", str(guest.id), "--since", since, "--json"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["visitor_pass"] == guest.id
    kinds = {c["person_id"]: [r["kind"] for r in c["reasons"]] for c in output["contacts"]}
    assert kinds[grid.resident5.id] == ["visitor"] and kinds[grid.resident6.id] == ["co_passage"]
    neither = CliRunner().invoke(cli.app, ["trace", "case", "--since", since])
    assert neither.exit_code == 2
    # As a case on the pages' service: no registry person, no health status to set.
    case = service.open_case(
        session=session, actor=worker.actor, visitor_pass_id=guest.id, confirmed_at=NOW
    )
    assert case.person_id is None and case.visitor_pass_id == guest.id
    again = service.open_case(
        session=session, actor=worker.actor, visitor_pass_id=guest.id, confirmed_at=NOW
    )
    assert again.id == case.id
    view = service.case_view(session=session, actor=worker.actor, case_id=case.id)
    assert ("person", grid.resident5.id) in {line.contact.subject for line in view.lines}
    assert len(view.results) == 2
    assert session.get(Person, grid.resident5.id).health_status == HealthStatus.normal  # type: ignore[union-attr]
    with pytest.raises(Forbidden):
        service.case_view(session=session, actor=lead5.actor, case_id=case.id)
