"""The first page of each role: a building lead's to-do list (本楼待办) and a community
worker's overview (社区概况). Guards land on the room check (``search.room_check``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, and_, case, cast, func, select
from sqlalchemy.orm import Session, joinedload

from fengchao.auth.service import Actor, Permission, audit, require
from fengchao.registry import completeness, proposals
from fengchao.registry import figures as figures_cache
from fengchao.registry.models import (
    CareTag,
    ChangeProposal,
    HealthStatus,
    Household,
    Person,
    ProposalState,
    RecordChange,
    ResidenceStatus,
)
from fengchao.registry.scope import household_in_scope
from fengchao.settings import get_settings

# Whom a lead visits first: the ill before the isolated, the isolated before those who
# need care, and of those the elderly living alone first.
_URGENCY = {
    HealthStatus.positive: 0,
    HealthStatus.central_isolation: 1,
    HealthStatus.home_isolation: 2,
}
LIST_LIMIT = 60


def _urgency(person: Person) -> tuple[int, int, str]:
    health = _URGENCY.get(person.health_status, 3)
    care = 0 if CareTag.elderly_alone in person.care_tags else 1 if person.care_tags else 2
    return (health, care, person.household.address)


@dataclass
class LeadTodo:
    """What a building lead has to do, in order."""

    empty_households: list[Household]
    empty_total: int
    attention: list[Person]
    attention_total: int
    no_phone: list[Person]
    no_phone_total: int
    my_pending: int
    households: int
    people: int


def lead_todo(*, session: Session, actor: Actor) -> LeadTodo:
    """Empty flats to visit, people who need attention, people without a phone, in the
    lead's scope; audited (the lists name people)."""
    require(actor, Permission.registry_read)
    scope = household_in_scope(actor.scope)
    has_people = select(Person.id).where(Person.household_id == Household.id).exists()
    empty_query = select(Household).where(scope, Household.vacant.is_(False), ~has_people)
    empty_total = session.scalar(select(func.count()).select_from(empty_query.subquery())) or 0
    empty = list(
        session.scalars(
            empty_query.options(joinedload(Household.unit), joinedload(Household.building))
            .order_by(Household.building_id, Household.unit_id, Household.room)
            .limit(LIST_LIMIT)
        )
    )
    living = Person.residence_status != ResidenceStatus.moved_out
    people_in_scope = (
        select(Person)
        .join(Household, Household.id == Person.household_id)
        .options(
            joinedload(Person.household).joinedload(Household.unit),
            joinedload(Person.household).joinedload(Household.building),
        )
        .where(scope, living)
    )
    needs_care = Person.health_status.in_(_URGENCY) | (cast(Person.care_tags, String) != "[]")
    # A building has a few dozen such people; a wide scope is capped before sorting.
    cared_for = session.scalars(people_in_scope.where(needs_care).limit(20 * LIST_LIMIT))
    attention = sorted(cared_for, key=_urgency)
    no_phone_query = people_in_scope.where(Person.phone.is_(None))
    no_phone_total = (
        session.scalar(select(func.count()).select_from(no_phone_query.subquery())) or 0
    )
    no_phone = list(session.scalars(no_phone_query.order_by(Household.id).limit(LIST_LIMIT)))
    households = session.scalar(select(func.count()).select_from(Household).where(scope)) or 0
    people = (
        session.scalar(
            select(func.count())
            .select_from(Person)
            .join(Household, Household.id == Person.household_id)
            .where(scope, living)
        )
        or 0
    )
    mine = (
        session.scalar(
            select(func.count())
            .select_from(ChangeProposal)
            .where(
                ChangeProposal.proposed_by == actor.user_id,
                ChangeProposal.state == ProposalState.pending,
            )
        )
        or 0
    )
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="todo",
        attention=len(attention),
        empty=empty_total,
        no_phone=no_phone_total,
    )
    return LeadTodo(
        empty, empty_total, attention[:LIST_LIMIT], len(attention), no_phone, no_phone_total,
        mine, households, people,
    )  # fmt: skip


@dataclass
class Overview:
    """The community (or the worker's part of it) at a glance."""

    households: int
    people: int
    health: dict[HealthStatus, int]
    residence: dict[ResidenceStatus, int]
    care: dict[CareTag, int]
    changes_today: int
    coverage: completeness.Figures = field(default_factory=completeness.Figures)
    recent_changes: list[tuple[RecordChange, str, str]] = field(default_factory=list)
    pending_proposals: int = 0


def local_midnight() -> dt.datetime:
    zone = ZoneInfo(get_settings().timezone)
    now = dt.datetime.now(zone)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


@dataclass(frozen=True)
class _Counts:
    households: int
    health: dict[str, int]
    residence: dict[str, int]
    coverage: completeness.Figures
    care: dict[CareTag, int]


def _count(session: Session, scope: ColumnElement[bool]) -> _Counts:
    """The overview's counts: one pass over the people, one over the households, one over
    the people with care tags."""
    # One pass over the people in scope gives the health and residence counts and three of
    # the coverage figures.
    health: dict[str, int] = {}
    residence: dict[str, int] = {}
    n = phones = faces = ids = 0
    for health_status, residence_status, count, phone, face, id_number in session.execute(
        select(
            Person.health_status,
            Person.residence_status,
            func.count(),
            func.count(Person.phone),
            func.count(Person.face_enrolled_at),
            func.count(Person.id_number_hash),
        )
        .join(Household, Household.id == Person.household_id)
        .where(scope)
        .group_by(Person.health_status, Person.residence_status)
    ):
        health[str(health_status)] = health.get(str(health_status), 0) + count
        residence[str(residence_status)] = residence.get(str(residence_status), 0) + count
        n, phones, faces, ids = n + count, phones + phone, faces + face, ids + id_number
    # The four coverage figures need no duplicate search: cheaper than the full report.
    has_people = select(Person.id).where(Person.household_id == Household.id).exists()
    total, occupied, registered = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Household.vacant.is_(False), 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((and_(Household.vacant.is_(False), has_people), 1), else_=0)), 0
            ),
        ).where(scope)
    ).one()
    coverage = completeness.Figures.from_counts(
        households=total, occupied=int(occupied), registered=int(registered), people=n,
        with_phone=phones, with_face=faces, with_id=ids, duplicates=0, living_in_vacant=0,
    )  # fmt: skip
    care: dict[CareTag, int] = dict.fromkeys(CareTag, 0)
    for tags in session.scalars(
        select(Person.care_tags)
        .join(Household, Household.id == Person.household_id)
        .where(scope, cast(Person.care_tags, String) != "[]")
    ):
        for tag in tags:
            if tag in care:
                care[CareTag(tag)] += 1
    return _Counts(total, health, residence, coverage, care)


def overview(*, session: Session, actor: Actor) -> Overview:
    """Counts by health, residence and care need, and today's changes, in scope."""
    require(actor, Permission.registry_read)
    scope = household_in_scope(actor.scope)
    counts = figures_cache.cached(
        ("overview", actor.scope.level, actor.scope.node_id),
        figures_cache.fingerprint(session, scope),
        lambda: _count(session, scope),
    )
    health, residence, total = counts.health, counts.residence, counts.households
    coverage, care = counts.coverage, counts.care
    since = local_midnight()
    today = (
        select(RecordChange, Household, Person.name)
        .join(Household, Household.id == RecordChange.household_id)
        .outerjoin(Person, Person.id == RecordChange.person_id)
        .where(scope, RecordChange.at >= since)
    )
    counted_today = today.with_only_columns(RecordChange.id).subquery()
    changes_today = session.scalar(select(func.count()).select_from(counted_today)) or 0
    recent = [
        (change, household.address, name or "")
        for change, household, name in session.execute(
            today.options(joinedload(Household.unit), joinedload(Household.building))
            .order_by(RecordChange.id.desc())
            .limit(20)
        )
    ]
    audit(
        session=session, actor=actor, action="read", object_type="overview",
        changes_today=changes_today,
    )  # fmt: skip
    return Overview(
        households=total,
        people=sum(health.values()),
        health={s: health.get(s.value, 0) for s in HealthStatus},
        residence={s: residence.get(s.value, 0) for s in ResidenceStatus},
        care=dict(care),
        changes_today=changes_today,
        coverage=coverage,
        recent_changes=recent,
        pending_proposals=proposals.pending_count(session=session, actor=actor),
    )


@dataclass(frozen=True)
class Registration:
    """People registered in scope and the four coverage figures (for the dashboard)."""

    households: int
    people: int
    health: dict[str, int]
    coverage: completeness.Figures


def registration(
    *, session: Session, actor: Actor, current: tuple[Any, ...] | None = None
) -> Registration:
    """The overview's counts without its lists (kept between requests while the registry
    of the scope has not changed: ``current`` is the scope's fingerprint when the caller
    already read it); not audited: counts name nobody."""
    require(actor, Permission.registry_read)
    scope = household_in_scope(actor.scope)
    counts = figures_cache.cached(
        ("overview", actor.scope.level, actor.scope.node_id),
        current if current is not None else figures_cache.fingerprint(session, scope),
        lambda: _count(session, scope),
    )
    people = sum(counts.health.values())
    return Registration(counts.households, people, dict(counts.health), counts.coverage)
