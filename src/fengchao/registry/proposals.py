"""The queue of building leads' proposed changes (变更申请): what waits for a community
worker in their scope, confirming (applied as the lead proposed, unless the record changed
meanwhile and the worker did not say to apply anyway), rejecting with a reason the lead
sees, and withdrawing one's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from fengchao.auth.service import Actor, Forbidden, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.registry import edits
from fengchao.registry.importer import field_label
from fengchao.registry.models import (
    Building,
    ChangeProposal,
    ChangeVia,
    Household,
    Person,
    ProposalState,
)
from fengchao.registry.scope import building_in_scope
from fengchao.web.i18n import _

STATE_LABELS = {
    ProposalState.pending: "待确认",
    ProposalState.applied: "已生效",
    ProposalState.rejected: "未通过",
    ProposalState.withdrawn: "已撤回",
}


class ProposalClosed(Refusal):
    """The proposal was already decided or withdrawn."""

    status = 409


@dataclass
class ProposalView:
    """A proposal with what a decision needs: the place, the person, and for each field
    the value when proposed, now, and proposed."""

    proposal: ChangeProposal
    address: str
    compound: str
    person_name: str | None
    rows: list[tuple[str, Any, Any, Any]] = field(default_factory=list)

    @property
    def changed_meanwhile(self) -> bool:
        return any(then != now for _name, then, now, _new in self.rows)


def _proposal_scope(actor: Actor) -> Any:
    in_scope = select(Building.id).where(building_in_scope(actor.scope))
    return ChangeProposal.building_id.in_(in_scope)


def list_proposals(
    *,
    session: Session,
    actor: Actor,
    state: ProposalState | None = ProposalState.pending,
    mine: bool = False,
    person_id: int | None = None,
    household_id: int | None = None,
    limit: int = 200,
) -> list[ProposalView]:
    """Proposals in the actor's scope (a lead's own when ``mine``), newest first."""
    require(actor, Permission.registry_read)
    query = select(ChangeProposal).where(_proposal_scope(actor)).order_by(ChangeProposal.id.desc())
    if state is not None:
        query = query.where(ChangeProposal.state == state)
    if mine:
        query = query.where(ChangeProposal.proposed_by == actor.user_id)
    if person_id is not None:
        query = query.where(ChangeProposal.person_id == person_id)
    if household_id is not None:
        query = query.where(ChangeProposal.household_id == household_id)
    proposals = list(session.scalars(query.limit(limit)))
    households = {
        h.id: h
        for h in session.scalars(
            select(Household)
            .options(
                joinedload(Household.unit),
                joinedload(Household.building),
                joinedload(Household.compound),
            )
            .where(Household.id.in_({p.household_id for p in proposals}))
        )
    }
    people = {
        p.id: p
        for p in session.scalars(
            select(Person).where(Person.id.in_({p.person_id for p in proposals if p.person_id}))
        )
    }
    views = []
    for proposal in proposals:
        household = households[proposal.household_id]
        person = people.get(proposal.person_id) if proposal.person_id else None
        view = ProposalView(
            proposal,
            household.address,
            household.compound.name,
            person.name if person else proposal.changes.get("name", [None, None])[1],
        )
        for name, (then, new) in proposal.changes.items():
            now = household.vacant if name == "vacant" else edits.stored(person, name)
            view.rows.append((name, then, now, new))
        views.append(view)
    return views


def _open_proposal(session: Session, actor: Actor, proposal_id: int) -> ChangeProposal:
    proposal = session.scalar(
        select(ChangeProposal).where(ChangeProposal.id == proposal_id, _proposal_scope(actor))
    )
    if proposal is None:
        raise NotFound(f"proposal {proposal_id}")
    if proposal.state != ProposalState.pending:
        raise ProposalClosed(_("这条申请已处理过了"))
    return proposal


def decide(
    *,
    session: Session,
    actor: Actor,
    proposal_id: int,
    approve: bool,
    note: str = "",
    force: bool = False,
) -> ChangeProposal:
    """Confirm (apply) or reject a proposal. A proposal whose fields changed since it was
    made is applied only with ``force`` (the worker has seen the current values)."""
    require(actor, Permission.registry_write)
    begin_write(session)
    proposal = _open_proposal(session, actor, proposal_id)
    note = " ".join(note.split())[: edits.DECISION_NOTE_MAX]
    if approve:
        _apply(session, actor, proposal, force)
        proposal.state = ProposalState.applied
    else:
        if not note:
            raise edits.InvalidFields({"note": _("请写明不通过的原因，楼栋长会看到")})
        proposal.state = ProposalState.rejected
    proposal.decided_by, proposal.decided_by_name = actor.user_id, actor.display_name
    proposal.decided_at = utcnow()
    proposal.decision_note = note or None
    audit(
        session=session,
        actor=actor,
        action="decide",
        object_type="proposal",
        object_id=proposal.id,
        community_id=proposal.community_id,
        approved=approve,
    )
    return proposal


def _apply(session: Session, actor: Actor, proposal: ChangeProposal, force: bool) -> None:
    household = session.get(Household, proposal.household_id)
    assert household is not None
    changes = {name: list(pair) for name, pair in proposal.changes.items()}
    if proposal.action == edits.HOUSEHOLD_VACANT:
        then, new = changes["vacant"]
        if household.vacant != then and not force:
            raise edits.StaleRecord(_("这一户的空置状态在申请后已有变动，请核对后再确认"))
        household.vacant = bool(new)
        session.flush()
        edits.record(session, actor, household, None, proposal.action, changes, ChangeVia.proposal,
                proposal.id)  # fmt: skip
        return
    if proposal.action == edits.PERSON_CREATE:
        person = edits.create(session, household, changes)
    else:
        found = session.get(Person, proposal.person_id) if proposal.person_id else None
        if found is None:
            raise NotFound(f"person {proposal.person_id}")
        person = found
        moved = [n for n, (then, _new) in changes.items() if edits.stored(person, n) != then]
        if moved and not force:
            raise edits.StaleRecord(
                _("申请提交后，{fields} 已有变动；请核对当前值后选择“仍然确认”或“不通过”").format(
                    fields="、".join(_(field_label(n)) for n in moved)
                )
            )
        edits.assign(person, changes)
        session.flush()
    edits.record(session, actor, household, person.id, proposal.action, changes, ChangeVia.proposal,
            proposal.id)  # fmt: skip


def withdraw(*, session: Session, actor: Actor, proposal_id: int) -> ChangeProposal:
    """A lead takes back their own pending proposal."""
    require(actor, Permission.registry_read)
    begin_write(session)
    proposal = _open_proposal(session, actor, proposal_id)
    if proposal.proposed_by != actor.user_id:
        raise Forbidden("not the proposer")
    proposal.state = ProposalState.withdrawn
    proposal.decided_at = utcnow()
    audit(
        session=session,
        actor=actor,
        action="withdraw",
        object_type="proposal",
        object_id=proposal.id,
        community_id=proposal.community_id,
    )
    return proposal


def queue(
    *, session: Session, actor: Actor, state: ProposalState | None, mine: bool
) -> list[ProposalView]:
    """The queue page's proposals (names and proposed values: audited as a read)."""
    views = list_proposals(session=session, actor=actor, state=state, mine=mine)
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="proposals",
        state=state.value if state else "all",
        results=len(views),
    )
    return views


def pending_count(*, session: Session, actor: Actor) -> int:
    """Proposals waiting for this worker (0 for roles that cannot decide)."""
    if not actor.can(Permission.registry_write):
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(ChangeProposal)
            .where(ChangeProposal.state == ProposalState.pending, _proposal_scope(actor))
        )
        or 0
    )
