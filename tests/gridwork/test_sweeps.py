"""Sweeps: creating one, the checklist, visits within the lead's building, needs that become
help requests, registry changes that wait for a worker's confirmation, progress."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Forbidden, NotFound
from fengchao.gridwork import sweeps
from fengchao.gridwork.models import (
    HelpCategory,
    HelpRequest,
    Sweep,
    SweepTarget,
    SweepVisit,
    VisitOutcome,
)
from fengchao.registry import proposals
from fengchao.registry.models import (
    Building,
    ChangeProposal,
    HealthStatus,
    Person,
    ProposalState,
)
from tests.conftest import Grid, Persona
from tests.gridwork.conftest import T0


def _target(session: Session, sweep: Sweep, household_id: int) -> SweepTarget:
    found = session.scalar(
        select(SweepTarget).where(
            SweepTarget.sweep_id == sweep.id, SweepTarget.household_id == household_id
        )
    )
    assert found is not None
    return found


def test_sweep_puts_every_household_of_the_compound_on_the_checklists(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona
) -> None:
    _sweep, label, rows = sweeps.checklist(
        session=session, actor=lead5.actor, sweep_id=sweep.id, building_id=grid.b5.id
    )
    assert len(rows) == 8 and {r.outcome for r in rows} == {VisitOutcome.pending}
    assert rows[0].address == "5-1-101" and rows[0].people == 1
    assert "5" in label


def test_sweep_deadline_in_the_past_is_refused(
    session: Session, grid: Grid, worker: Persona
) -> None:
    with pytest.raises(sweeps.SweepRefused) as refused:
        sweeps.create(
            session=session, actor=worker.actor, title="扫楼", level=ScopeLevel.building,
            node_id=grid.b5.id, deadline=T0 - dt.timedelta(minutes=1), now=T0,
        )  # fmt: skip
    assert refused.value.field == "deadline"


def test_sweep_over_a_building_with_no_households_is_refused(
    session: Session, grid: Grid, worker: Persona
) -> None:
    empty = Building(community_id=grid.community.id, compound_id=grid.park.id, name="9")
    session.add(empty)
    session.flush()
    with pytest.raises(sweeps.SweepRefused) as refused:
        sweeps.create(
            session=session, actor=worker.actor, title="扫楼", level=ScopeLevel.building,
            node_id=empty.id, deadline=T0 + dt.timedelta(days=1), now=T0,
        )  # fmt: skip
    assert refused.value.field == "node"


def test_lead_cannot_start_a_sweep(session: Session, grid: Grid, lead5: Persona) -> None:
    with pytest.raises(Forbidden):
        sweeps.create(
            session=session, actor=lead5.actor, title="扫楼", level=ScopeLevel.building,
            node_id=grid.b5.id, deadline=T0 + dt.timedelta(days=1), now=T0,
        )  # fmt: skip


def test_visit_outside_the_leads_building_is_not_found(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona
) -> None:
    other = _target(session, sweep, grid.h6_101.id)
    with pytest.raises(NotFound):
        sweeps.record_visit(
            session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=other.id,
            form=sweeps.VisitForm(outcome="visited"),
        )  # fmt: skip
    with pytest.raises(NotFound):
        sweeps.checklist(
            session=session, actor=lead5.actor, sweep_id=sweep.id, building_id=grid.b6.id
        )
    assert session.scalar(select(SweepVisit.id)) is None


def test_nobody_home_then_visited_counts_in_progress(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona, worker: Persona
) -> None:
    target = _target(session, sweep, grid.h5_101.id)
    for outcome in ("nobody_home", "visited"):
        sweeps.record_visit(
            session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=target.id,
            form=sweeps.VisitForm(outcome=outcome, people_home=1), now=T0,
        )  # fmt: skip
    assert target.outcome == VisitOutcome.visited and target.visits == 2
    data = sweeps.progress(session=session, actor=worker.actor, sweep_id=sweep.id)
    assert data.whole.total == 16 and data.whole.visited == 1 and data.whole.pending == 15
    b5 = next(b for b in data.buildings if b.building_id == grid.b5.id)
    assert (b5.total, b5.visited, b5.percent) == (8, 1, 12)
    mine = sweeps.progress(session=session, actor=lead5.actor, sweep_id=sweep.id)
    assert [b.building_id for b in mine.buildings] == [grid.b5.id]


def test_a_retried_visit_is_recorded_once(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona
) -> None:
    target = _target(session, sweep, grid.h5_101.id)
    form = sweeps.VisitForm(outcome="visited", key="k" * 32)
    first = sweeps.record_visit(
        session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=target.id, form=form
    )
    again = sweeps.record_visit(
        session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=target.id, form=form
    )
    assert again.duplicate and again.visit.id == first.visit.id and target.visits == 1


def test_needs_found_at_the_door_become_help_requests(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona
) -> None:
    target = _target(session, sweep, grid.h5_101.id)
    recorded = sweeps.record_visit(
        session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=target.id,
        form=sweeps.VisitForm(outcome="visited", needs_medicine=True, fever=True,
                              note="降压药"), now=T0,
    )  # fmt: skip
    made = list(session.scalars(select(HelpRequest).where(HelpRequest.id.in_(recorded.requests))))
    assert {r.category for r in made} == {HelpCategory.medicine, HelpCategory.medical_visit}
    assert all(r.household_id == grid.h5_101.id and r.source == "sweep" for r in made)
    assert target.needs


def test_registry_changes_wait_for_a_workers_confirmation(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona, worker: Persona
) -> None:
    target = _target(session, sweep, grid.h5_101.id)
    person = grid.resident5
    recorded = sweeps.record_visit(
        session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=target.id,
        form=sweeps.VisitForm(
            outcome="visited",
            changes={person.id: {"health_status": "home_isolation", "elderly_alone": True}},
            new_member="林小平",
        ),
    )  # fmt: skip
    assert recorded.proposals == 2 and recorded.applied == 0
    assert person.health_status == HealthStatus.normal
    pending = list(
        session.scalars(select(ChangeProposal).where(ChangeProposal.state == ProposalState.pending))
    )
    assert len(pending) == 2
    for proposal in pending:
        proposals.decide(session=session, actor=worker.actor, proposal_id=proposal.id, approve=True)
    session.refresh(person)
    assert person.health_status == HealthStatus.home_isolation
    assert "elderly_alone" in person.care_tags
    assert session.scalar(select(Person).where(Person.name == "林小平")) is not None


def test_who_is_home_names_members_of_the_household_only(
    session: Session, grid: Grid, sweep: Sweep, lead5: Persona
) -> None:
    target = _target(session, sweep, grid.h5_101.id)
    recorded = sweeps.record_visit(
        session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=target.id,
        form=sweeps.VisitForm(outcome="visited", home=[grid.resident5.id]),
    )  # fmt: skip
    assert recorded.visit.home == [grid.resident5.id] and recorded.visit.people_home == 1
    other = _target(session, sweep, grid.h5_101.id + 1)
    with pytest.raises(NotFound):
        sweeps.record_visit(
            session=session, actor=lead5.actor, sweep_id=sweep.id, target_id=other.id,
            form=sweeps.VisitForm(outcome="visited", home=[grid.resident6.id]),
        )  # fmt: skip
