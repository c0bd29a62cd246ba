"""Sweeps (扫楼清户): a campaign over a node of the grid with a deadline, a checklist of every
household for each building's lead, the visits recorded at each door, progress per building
and for the whole, and what a visit found: needs become help requests, changes to the
registry become proposals a community worker confirms (``registry.edits``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import (
    Actor,
    GridScope,
    NotFound,
    Permission,
    Refusal,
    audit,
    require,
)
from fengchao.db import begin_write, utcnow
from fengchao.gridwork import help as help_service
from fengchao.gridwork import rules
from fengchao.gridwork.models import (
    HelpCategory,
    HelpUrgency,
    Sweep,
    SweepTarget,
    SweepVisit,
    VisitOutcome,
)
from fengchao.gridwork.scoping import place_in_scope, require_worker
from fengchao.registry import edits
from fengchao.registry import scope as grid
from fengchao.registry.models import (
    Building,
    CareTag,
    Compound,
    Household,
    Person,
    ResidenceStatus,
    Unit,
)
from fengchao.web.i18n import _

TITLE_MAX, NOTE_MAX, PEOPLE_MAX = 100, 200, 30


class SweepRefused(Refusal):
    status = 422


# --- campaigns -----------------------------------------------------------------------------


def create(
    *,
    session: Session,
    actor: Actor,
    title: str,
    level: ScopeLevel | str,
    node_id: int,
    deadline: dt.datetime | None,
    now: dt.datetime | None = None,
) -> Sweep:
    """Start a sweep over a node (a community, compound or building) within the actor's
    scope: every household there goes on the checklist. Refused: no title, a deadline in
    the past, a node without households."""
    require(actor, Permission.gridwork_manage)
    now = now or utcnow()
    title = rules.clean_text(title, TITLE_MAX + 1).replace("\n", " ")
    if not title:
        raise SweepRefused(_("请写上这次扫楼的名称"), field="title")
    if len(title) > TITLE_MAX:
        raise SweepRefused(_("名称太长（最多 {n} 个字）").format(n=TITLE_MAX), field="title")
    if deadline is None:
        raise SweepRefused(_("请填写截止时间"), field="deadline")
    if deadline <= now:
        raise SweepRefused(_("截止时间已经过去了，请选一个以后的时间"), field="deadline")
    try:
        level = ScopeLevel(level)
    except ValueError:
        raise SweepRefused(_("请选择扫楼范围"), field="node") from None
    if level == ScopeLevel.street or not grid.node_in_scope(
        session=session, scope=actor.scope, level=level, node_id=node_id
    ):
        raise NotFound(f"{level} {node_id}")
    lineage = grid.node_lineage(session=session, level=level, node_id=node_id)
    community_id = next(n for lv, n in lineage if lv == ScopeLevel.community)
    where = {
        ScopeLevel.community: Household.community_id == node_id,
        ScopeLevel.compound: Household.compound_id == node_id,
        ScopeLevel.building: Household.building_id == node_id,
    }[level]
    begin_write(session)
    households = session.execute(
        select(Household.id, Household.compound_id, Household.building_id).where(where)
    ).all()
    if not households:
        raise SweepRefused(_("这个范围内没有登记任何一户，无法扫楼"), field="node")
    sweep = Sweep(
        community_id=community_id, title=title, node_level=level, node_id=node_id,
        deadline=deadline, created_by=actor.user_id or None, created_by_name=actor.display_name,
        created_at=now,
    )  # fmt: skip
    session.add(sweep)
    session.flush()
    rows = [
        {
            "sweep_id": sweep.id,
            "community_id": community_id,
            "compound_id": c,
            "building_id": b,
            "household_id": h,
            "outcome": VisitOutcome.pending,
            "visits": 0,
            "needs": False,
        }
        for h, c, b in households
    ]
    for start in range(0, len(rows), 2000):
        session.execute(insert(SweepTarget), rows[start : start + 2000])
    audit(session=session, actor=actor, action="create", object_type="sweep",
          object_id=sweep.id, community_id=community_id, households=len(rows))  # fmt: skip
    return sweep


def active(*, session: Session, actor: Actor) -> list[Sweep]:
    """Sweeps not closed that have households in the actor's scope, newest first."""
    require_worker(actor)
    # Per open sweep, one probe of the (sweep, building) index, not a scan of every target.
    mine = (
        select(SweepTarget.id)
        .where(SweepTarget.sweep_id == Sweep.id, place_in_scope(actor.scope, SweepTarget))
        .exists()
    )
    return list(
        session.scalars(
            select(Sweep).where(Sweep.closed_at.is_(None), mine).order_by(Sweep.id.desc()).limit(20)
        )
    )


def get(*, session: Session, actor: Actor, sweep_id: int) -> Sweep:
    require_worker(actor)
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or not session.scalar(
        select(SweepTarget.id)
        .where(SweepTarget.sweep_id == sweep_id, place_in_scope(actor.scope, SweepTarget))
        .limit(1)
    ):
        raise NotFound(f"sweep {sweep_id}")
    return sweep


def close_sweep(*, session: Session, actor: Actor, sweep_id: int) -> Sweep:
    require(actor, Permission.gridwork_manage)
    begin_write(session)
    sweep = get(session=session, actor=actor, sweep_id=sweep_id)
    sweep.closed_at = sweep.closed_at or utcnow()
    audit(session=session, actor=actor, action="close", object_type="sweep",
          object_id=sweep.id, community_id=sweep.community_id)  # fmt: skip
    return sweep


# --- progress ------------------------------------------------------------------------------


@dataclass
class Progress:
    """Households of a sweep by the outcome of their latest visit."""

    label: str = ""
    building_id: int | None = None
    total: int = 0
    visited: int = 0
    nobody_home: int = 0
    refused: int = 0
    needs: int = 0

    @property
    def done(self) -> int:
        return self.visited + self.refused

    @property
    def pending(self) -> int:
        return self.total - self.visited - self.nobody_home - self.refused

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass
class SweepProgress:
    sweep: Sweep
    whole: Progress
    buildings: list[Progress] = field(default_factory=list)


def progress(
    *, session: Session, actor: Actor, sweep_id: int, sweep: Sweep | None = None
) -> SweepProgress:
    """Progress per building within the actor's scope, and the sum of them. ``sweep``: one
    :func:`active` returned for this actor (its scope check is then not made again)."""
    require_worker(actor)
    if sweep is None or sweep.id != sweep_id:
        sweep = get(session=session, actor=actor, sweep_id=sweep_id)

    def n(outcome: VisitOutcome) -> Any:
        return func.sum(case((SweepTarget.outcome == outcome, 1), else_=0))

    rows = session.execute(
        select(
            SweepTarget.building_id,
            Compound.name,
            Building.name,
            func.count(),
            n(VisitOutcome.visited),
            n(VisitOutcome.nobody_home),
            n(VisitOutcome.refused),
            func.sum(case((SweepTarget.needs.is_(True), 1), else_=0)),
        )
        .join(Building, Building.id == SweepTarget.building_id)
        .join(Compound, Compound.id == SweepTarget.compound_id)
        .where(SweepTarget.sweep_id == sweep.id, place_in_scope(actor.scope, SweepTarget))
        .group_by(SweepTarget.building_id, Compound.name, Building.name, Building.sort_key)
        .order_by(Building.sort_key, SweepTarget.building_id)
    )
    whole = Progress(label=_("合计"))
    buildings = []
    for building_id, compound, building, total, visited, nobody, refused, needs in rows:
        item = Progress(_("{c} {b}号楼").format(c=compound, b=building), building_id, total,
                        int(visited or 0), int(nobody or 0), int(refused or 0),
                        int(needs or 0))  # fmt: skip
        buildings.append(item)
        for name in ("total", "visited", "nobody_home", "refused", "needs"):
            setattr(whole, name, getattr(whole, name) + getattr(item, name))
    return SweepProgress(sweep, whole, buildings)


# --- the checklist -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistRow:
    target_id: int
    household_id: int
    address: str
    unit: str
    outcome: VisitOutcome
    visits: int
    people: int
    needs: bool


def checklist(
    *, session: Session, actor: Actor, sweep_id: int, building_id: int
) -> tuple[Sweep, str, list[ChecklistRow]]:
    """Every household of one building on the sweep, unit by unit, room by room, with the
    outcome of its latest visit and how many people are registered there."""
    sweep = get(session=session, actor=actor, sweep_id=sweep_id)
    if not grid.node_in_scope(
        session=session, scope=actor.scope, level=ScopeLevel.building, node_id=building_id
    ):
        raise NotFound(f"building {building_id}")
    people = (
        select(func.count())
        .where(
            Person.household_id == SweepTarget.household_id,
            Person.residence_status != ResidenceStatus.moved_out,
        )
        .correlate(SweepTarget)
        .scalar_subquery()
    )
    rows = session.execute(
        select(SweepTarget, Building.name, Unit.name, Household.room, people)
        .join(Household, Household.id == SweepTarget.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .join(Building, Building.id == SweepTarget.building_id)
        .where(SweepTarget.sweep_id == sweep.id, SweepTarget.building_id == building_id)
        .order_by(Unit.sort_key, Unit.id, func.length(Household.room), Household.room)
    ).all()
    if not rows:
        raise NotFound(f"building {building_id} in sweep {sweep_id}")
    label = grid.scope_label(session=session, scope=GridScope(ScopeLevel.building, building_id))
    result = [
        ChecklistRow(
            t.id, t.household_id, f"{b}-{u}-{room}", u, t.outcome, t.visits, int(n or 0), t.needs
        )
        for t, b, u, room, n in rows
    ]
    return sweep, label, result


def lead_building(actor: Actor) -> int | None:
    """The building a lead's checklist opens on (a lead is scoped to one building)."""
    return actor.scope.node_id if actor.scope.level == ScopeLevel.building else None


# --- visits --------------------------------------------------------------------------------


@dataclass
class VisitForm:
    """What a lead records at a door."""

    outcome: str
    people_home: int | None = None
    home: list[int] = field(default_factory=list)  # registered members seen at home
    fever: bool = False
    elderly_alone: bool = False
    needs_medicine: bool = False
    needs_food: bool = False
    note: str = ""
    # Registry changes: {person_id: {"health_status": …, "residence_status": …,
    # "elderly_alone": True}} and a new member's name.
    changes: dict[int, dict[str, object]] = field(default_factory=dict)
    new_member: str = ""
    key: str | None = None


@dataclass(frozen=True)
class TargetView:
    sweep: Sweep
    target: SweepTarget
    address: str
    members: list[Person]
    last: SweepVisit | None


def target(*, session: Session, actor: Actor, sweep_id: int, target_id: int) -> TargetView:
    """A household on the checklist with its members (audited: names)."""
    require_worker(actor)
    row = session.execute(
        select(SweepTarget, Household)
        .join(Household, Household.id == SweepTarget.household_id)
        .where(
            SweepTarget.id == target_id,
            SweepTarget.sweep_id == sweep_id,
            place_in_scope(actor.scope, SweepTarget),
        )
    ).first()
    if row is None:
        raise NotFound(f"sweep target {target_id}")
    item, household = row
    sweep = session.get(Sweep, sweep_id)
    assert sweep is not None
    members = [p for p in household.people if p.residence_status != ResidenceStatus.moved_out]
    last = session.scalar(
        select(SweepVisit)
        .where(SweepVisit.target_id == item.id)
        .order_by(SweepVisit.id.desc())
        .limit(1)
    )
    audit(session=session, actor=actor, action="read", object_type="household",
          object_id=household.id, community_id=household.community_id, via="sweep")  # fmt: skip
    return TargetView(sweep, item, household.address, members, last)


@dataclass(frozen=True)
class Recorded:
    visit: SweepVisit
    requests: list[int]
    proposals: int
    applied: int
    duplicate: bool = False
    building_id: int | None = None


@dataclass(frozen=True)
class VisitTarget:
    """A household on a sweep's checklist as a visit needs it (read before the write)."""

    target_id: int
    sweep_id: int
    household_id: int
    community_id: int
    building_id: int


def visit_target(*, session: Session, actor: Actor, sweep_id: int, target_id: int) -> VisitTarget:
    """The target a visit is recorded for, in the actor's scope, on a sweep still open: one
    read, taken before the write lock (404 outside the scope; refused once the sweep ended)."""
    require_worker(actor)
    row = session.execute(
        select(
            SweepTarget.household_id,
            SweepTarget.community_id,
            SweepTarget.building_id,
            Sweep.closed_at,
        )
        .join(Sweep, Sweep.id == SweepTarget.sweep_id)
        .where(
            SweepTarget.id == target_id,
            SweepTarget.sweep_id == sweep_id,
            place_in_scope(actor.scope, SweepTarget),
        )
    ).first()
    if row is None:
        raise NotFound(f"sweep target {target_id}")
    household_id, community_id, building_id, closed_at = row
    if closed_at is not None:
        raise SweepRefused(_("这次扫楼已经结束"), field="outcome")
    return VisitTarget(target_id, sweep_id, household_id, community_id, building_id)


def record_visit(
    *,
    session: Session,
    actor: Actor,
    sweep_id: int,
    target_id: int,
    form: VisitForm,
    now: dt.datetime | None = None,
    target: VisitTarget | None = None,
) -> Recorded:
    """Record one visit to a household on the sweep (a lead: only in their building).
    Needs found become help requests; registry changes become proposals (applied at once
    when a community worker records the visit). A retried submission with the same key
    counts once. ``target``: :func:`visit_target`, when the caller read it already.

    Everything is read and checked first; the write is then one short transaction: the
    visit inserted, the checklist row updated in place (no read of it), the audit row."""
    require_worker(actor)
    now = now or utcnow()
    try:
        outcome = VisitOutcome(form.outcome)
    except ValueError:
        raise SweepRefused(_("请选择走访结果"), field="outcome") from None
    if outcome == VisitOutcome.pending:
        raise SweepRefused(_("请选择走访结果"), field="outcome")
    if form.people_home is not None and not 0 <= form.people_home <= PEOPLE_MAX:
        raise SweepRefused(
            _("在家人数应在 0 到 {n} 之间").format(n=PEOPLE_MAX), field="people_home"
        )
    note = rules.clean_text(form.note, NOTE_MAX + 1)
    if len(note) > NOTE_MAX:
        raise SweepRefused(_("备注太长（最多 {n} 个字）").format(n=NOTE_MAX), field="note")
    new_member = rules.clean_text(form.new_member, edits.NAME_MAX + 1).replace("\n", " ")
    if form.key is not None and not 8 <= len(form.key) <= 64:
        raise SweepRefused(_("提交编号不对，请刷新页面"), field="key")
    if target is None or (target.target_id, target.sweep_id) != (target_id, sweep_id):
        target = visit_target(session=session, actor=actor, sweep_id=sweep_id, target_id=target_id)
    found = outcome == VisitOutcome.visited
    home = sorted(set(form.home)) if found else []
    if home:
        members = set(
            session.scalars(
                select(Person.id).where(
                    Person.household_id == target.household_id, Person.id.in_(home)
                )
            )
        )
        if len(members) != len(home):
            raise NotFound("person not of this household")
    people_home = form.people_home if form.people_home is not None else len(home) or None

    begin_write(session)
    visit = _insert_visit(
        session,
        sweep_id=sweep_id, target_id=target_id, community_id=target.community_id,
        household_id=target.household_id, outcome=outcome,
        people_home=people_home if found else None, home=home,
        fever=found and form.fever, elderly_alone=found and form.elderly_alone,
        needs_medicine=found and form.needs_medicine, needs_food=found and form.needs_food,
        note=note or None, recorded_by=actor.user_id or None,
        recorded_by_name=actor.display_name, recorded_at=now, key=form.key or None,
    )  # fmt: skip
    if visit is None:
        # A retry of a submission already stored, or the same one stored a moment ago by
        # another connection (PostgreSQL: our insert waited for its commit): one visit.
        earlier = session.scalar(select(SweepVisit).where(SweepVisit.key == form.key))
        if earlier is None:
            raise RuntimeError("a visit key conflicted but no visit has it")
        if earlier.target_id != target_id:
            raise SweepRefused(_("提交编号不对，请刷新页面"), field="key")
        return Recorded(earlier, [], 0, 0, duplicate=True, building_id=target.building_id)
    session.execute(
        update(SweepTarget)
        .where(SweepTarget.id == target_id)
        .values(
            outcome=outcome,
            visits=SweepTarget.visits + 1,
            last_visit_at=now,
            needs=bool(visit.fever or visit.needs_medicine or visit.needs_food),
        )
        # A checklist row loaded in this session (a test's) is updated in memory too.
        .execution_options(synchronize_session="evaluate")
    )

    wanted = []
    if visit.needs_medicine:
        wanted.append((HelpCategory.medicine, HelpUrgency.normal))
    if visit.needs_food:
        wanted.append((HelpCategory.food, HelpUrgency.normal))
    if visit.fever:
        wanted.append((HelpCategory.medical_visit, HelpUrgency.urgent))
    requests = []
    for category, urgency in wanted:
        made = help_service.submit(
            session=session, actor=actor, household_id=target.household_id, category=category,
            urgency=urgency, details=note, visit_id=visit.id,
            now=now,
        )  # fmt: skip
        requests.append(made.request.id)

    proposals = applied = 0
    if found and (form.changes or new_member):
        proposals, applied = _registry_changes(
            session, actor, target.household_id, form, new_member
        )
    audit(session=session, actor=actor, action="visit", object_type="household",
          object_id=target.household_id, community_id=target.community_id, sweep=sweep_id,
          outcome=outcome.value, requests=len(requests), proposals=proposals)  # fmt: skip
    return Recorded(visit, requests, proposals, applied, building_id=target.building_id)


def _insert_visit(session: Session, **values: Any) -> SweepVisit | None:
    """Store a visit unless one with its key is stored: None then. One statement (INSERT …
    ON CONFLICT (key) DO NOTHING RETURNING), so a new visit costs no look-up of its key,
    and two submissions of one key at the same instant cannot both insert: on PostgreSQL
    the second waits for the first's commit and then inserts nothing."""
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        make(SweepVisit)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[SweepVisit.key])
        .returning(SweepVisit)
    )
    return session.scalars(statement).first()


def _registry_changes(
    session: Session, actor: Actor, household_id: int, form: VisitForm, new_member: str
) -> tuple[int, int]:
    """Changes the lead saw at the door, through the registry's own edit path: a lead's
    become proposals (变更申请) a worker confirms, a worker's apply at once."""
    proposals = applied = 0
    members = {
        p.id: p for p in session.scalars(select(Person).where(Person.household_id == household_id))
    }
    for person_id, wanted in form.changes.items():
        person = members.get(person_id)
        if person is None:
            raise NotFound(f"person {person_id}")
        submitted: dict[str, object] = {}
        for name in ("health_status", "residence_status"):
            value = wanted.get(name)
            if value and value != edits.stored(person, name):
                submitted[name] = value
        if wanted.get("elderly_alone") and CareTag.elderly_alone not in person.care_tags:
            submitted["care_tags"] = sorted({*person.care_tags, CareTag.elderly_alone.value})
        if not submitted:
            continue
        result = edits.edit_person(
            session=session, actor=actor, person_id=person_id, version=None, submitted=submitted
        )
        applied += result.applied
        proposals += not result.applied
    if new_member:
        result = edits.add_person(
            session=session, actor=actor, household_id=household_id,
            submitted={"name": new_member},
        )  # fmt: skip
        applied += result.applied
        proposals += not result.applied
    return proposals, applied
