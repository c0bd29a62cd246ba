"""The access record (通行记录): search in scope, a person's timeline, counts per hour,
the XLSX export and the purge of events past their keeping time.

A row is visible to an account when the gate or the person's home lies in its scope: a
building lead sees the passages of their building's residents, a guard or property staff
of a compound the passages at its gates and of its residents. Searches are audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from fengchao.access.models import AccessEvent, Gate
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, audit, require
from fengchao.db import begin_write
from fengchao.registry.models import Building, Community, Person, Vehicle
from fengchao.settings import get_settings
from fengchao.tabular import Sheet, xlsx_bytes
from fengchao.vision.plate_rules import normalise_plate
from fengchao.web.i18n import _

MAX_ROWS = 500
MAX_EXPORT_ROWS = 50_000


def event_in_scope(actor: Actor) -> ColumnElement[bool]:
    from fengchao.access.service import is_system

    if is_system(actor):
        return true()
    scope = actor.scope
    match scope.level:
        case ScopeLevel.street:
            return AccessEvent.community_id.in_(
                select(Community.id).where(Community.street_id == scope.node_id).scalar_subquery()
            )
        case ScopeLevel.community:
            return AccessEvent.community_id == scope.node_id
        case ScopeLevel.compound:
            return or_(
                AccessEvent.compound_id == scope.node_id,
                AccessEvent.building_id.in_(
                    select(Building.id)
                    .where(Building.compound_id == scope.node_id)
                    .scalar_subquery()
                ),
            )
        case ScopeLevel.building:
            return AccessEvent.building_id == scope.node_id
    raise ValueError(scope.level)


@dataclass(frozen=True)
class EventFilter:
    """What to search the record by; None means any. Times are UTC-aware."""

    person_id: int | None = None
    household_id: int | None = None
    vehicle_id: int | None = None
    plate: str | None = None
    gate_id: int | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    method: str | None = None
    decision: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.person_id is not None:
            where.append(AccessEvent.person_id == self.person_id)
        if self.household_id is not None:
            where.append(AccessEvent.household_id == self.household_id)
        if self.vehicle_id is not None:
            where.append(AccessEvent.vehicle_id == self.vehicle_id)
        if self.plate:
            plate = normalise_plate(self.plate)
            where.append(
                or_(
                    AccessEvent.plate_read == plate,
                    AccessEvent.vehicle_id.in_(
                        select(Vehicle.id).where(Vehicle.plate == plate).scalar_subquery()
                    ),
                )
            )
        if self.gate_id is not None:
            where.append(AccessEvent.gate_id == self.gate_id)
        if self.start is not None:
            where.append(AccessEvent.occurred_at >= self.start)
        if self.end is not None:
            where.append(AccessEvent.occurred_at < self.end)
        if self.method:
            where.append(AccessEvent.method == self.method)
        if self.decision:
            where.append(AccessEvent.decision == self.decision)
        return where

    def audit_detail(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, dt.datetime) else v)
            for k, v in self.__dict__.items()
            if v is not None and v != ""
        }


@dataclass(frozen=True)
class EventRow:
    """One event as the record's pages and API show it (a masked ID number only)."""

    id: int
    occurred_at: dt.datetime
    server_time: dt.datetime
    gate_id: int
    gate_name: str
    direction: str
    method: str
    decision: str
    reasons: list[str]
    person_id: int | None
    person_name: str | None
    id_mask: str | None
    household_id: int | None
    vehicle_id: int | None
    plate: str | None
    match_how: str | None
    masked: bool
    temperature: float | None
    retest_temperature: float | None
    alert_level: str
    late: bool
    clock_off: bool
    operator_name: str | None


@dataclass
class SearchResult:
    rows: list[EventRow]
    more: bool
    filters: EventFilter = field(default_factory=EventFilter)


def _rows_query(actor: Actor, filters: EventFilter):  # type: ignore[no-untyped-def]
    return (
        select(
            AccessEvent,
            Gate.name.label("gate_name"),
            Person.name.label("person_name"),
            Person.id_mask,
            Vehicle.plate.label("vehicle_plate"),
        )
        .join(Gate, Gate.id == AccessEvent.gate_id)
        .outerjoin(Person, Person.id == AccessEvent.person_id)
        .outerjoin(Vehicle, Vehicle.id == AccessEvent.vehicle_id)
        .where(event_in_scope(actor), *filters.conditions())
    )


def _row(found: object) -> EventRow:
    event: AccessEvent = found.AccessEvent  # type: ignore[attr-defined]
    return EventRow(
        id=event.id,
        occurred_at=event.occurred_at,
        server_time=event.server_time,
        gate_id=event.gate_id,
        gate_name=found.gate_name,  # type: ignore[attr-defined]
        direction=event.direction,
        method=event.method,
        decision=event.decision,
        reasons=list(event.reasons),
        person_id=event.person_id,
        person_name=found.person_name,  # type: ignore[attr-defined]
        id_mask=found.id_mask,  # type: ignore[attr-defined]
        household_id=event.household_id,
        vehicle_id=event.vehicle_id,
        plate=found.vehicle_plate or event.plate_read,  # type: ignore[attr-defined]
        match_how=event.match_how,
        masked=event.masked,
        temperature=event.temperature,
        retest_temperature=event.retest_temperature,
        alert_level=event.alert_level,
        late=event.late,
        clock_off=event.clock_off,
        operator_name=event.operator_name,
    )


def search(
    *,
    session: Session,
    actor: Actor,
    filters: EventFilter,
    limit: int = 100,
    offset: int = 0,
    audited: bool = True,
) -> SearchResult:
    """Events in the actor's scope matching ``filters``, newest first; audited as
    "access_search" with the filters (ids and times only)."""
    require(actor, Permission.access_read)
    limit = max(1, min(limit, MAX_ROWS))
    query = _rows_query(actor, filters).order_by(
        AccessEvent.occurred_at.desc(), AccessEvent.id.desc()
    )
    found = session.execute(query.limit(limit + 1).offset(offset)).all()
    if audited:
        audit(
            session=session, actor=actor, action="access_search", object_type="access_event",
            **filters.audit_detail(),
        )  # fmt: skip
    return SearchResult([_row(r) for r in found[:limit]], len(found) > limit, filters)


def get_event(*, session: Session, actor: Actor, event_id: int) -> EventRow:
    require(actor, Permission.access_read)
    found = session.execute(
        _rows_query(actor, EventFilter()).where(AccessEvent.id == event_id)
    ).first()
    if found is None:
        raise NotFound(f"event {event_id}")
    audit(session=session, actor=actor, action="access_event_read", object_type="access_event",
          object_id=event_id)  # fmt: skip
    return _row(found)


def timeline(
    *,
    session: Session,
    actor: Actor,
    person_id: int,
    days: int = 14,
    now: dt.datetime | None = None,
) -> SearchResult:
    """One person's passages over the last ``days`` days, newest first (uses the
    (person, time) index)."""
    now = now or dt.datetime.now(dt.UTC)
    filters = EventFilter(person_id=person_id, start=now - dt.timedelta(days=days))
    return search(session=session, actor=actor, filters=filters, limit=MAX_ROWS)


def local_zone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def _hour_bucket(session: Session, start: dt.datetime) -> ColumnElement[int]:
    """Whole hours from ``start`` to an event's time, computed by the database (a day's
    events are counted there, not fetched)."""
    epoch = int(start.timestamp())
    if session.get_bind().dialect.name == "sqlite":
        seconds = cast(func.strftime("%s", AccessEvent.occurred_at), Integer)
        return cast((seconds - epoch) / 3600, Integer)
    return cast(
        func.floor((func.extract("epoch", AccessEvent.occurred_at) - epoch) / 3600), Integer
    )


def _gate_scope(session: Session, actor: Actor, gate_id: int | None) -> ColumnElement[bool]:
    """The scope filter for a gate's events: none when the gate itself is in the actor's
    scope (every event there is then visible, and the count reads the (gate, time) index
    alone), else the events' own filter."""
    from fengchao.access.service import gate_in_scope

    if gate_id is not None:
        visible = session.scalar(select(Gate.id).where(Gate.id == gate_id, gate_in_scope(actor)))
        if visible is not None:
            return AccessEvent.gate_id == gate_id
        return and_(AccessEvent.gate_id == gate_id, event_in_scope(actor))
    return event_in_scope(actor)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = local_zone()
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def hourly_counts(
    *, session: Session, actor: Actor, day: dt.date, gate_id: int | None = None
) -> list[dict[str, int]]:
    """Passages per local hour of ``day`` (allowed, refused, pending), for the dashboard:
    counted by the database, one grouped query."""
    require(actor, Permission.access_read)
    first, last = _day_bounds(day)
    bucket = _hour_bucket(session, first).label("hour")
    found = session.execute(
        select(bucket, AccessEvent.decision, func.count())
        .where(
            _gate_scope(session, actor, gate_id),
            AccessEvent.occurred_at >= first,
            AccessEvent.occurred_at < last,
        )
        .group_by(bucket, AccessEvent.decision)
    ).all()
    hours = round((last - first).total_seconds() / 3600)  # 23 or 25 on a DST day
    counts = [{"hour": h, "allow": 0, "deny": 0, "pending": 0} for h in range(hours)]
    for hour, decision, count in found:
        if 0 <= hour < hours and decision in ("allow", "deny", "pending"):
            counts[hour][decision] += count
    return counts


def busiest_hour(*, session: Session, actor: Actor, gate_id: int, day: dt.date) -> tuple[int, int]:
    """(local hour, passages) of a gate's busiest hour on ``day``."""
    require(actor, Permission.access_read)
    first, last = _day_bounds(day)
    bucket = _hour_bucket(session, first).label("hour")
    found = session.execute(
        select(bucket, func.count())
        .where(
            _gate_scope(session, actor, gate_id),
            AccessEvent.occurred_at >= first,
            AccessEvent.occurred_at < last,
        )
        .group_by(bucket)
    ).all()
    if not found:
        return 0, 0
    hour, count = max(found, key=lambda r: (r[1], -r[0]))
    return int(hour), int(count)


@dataclass(frozen=True)
class TrafficCount:
    """Passages of one local hour counted by direction, method kind and decision (for the
    dashboard). ``kind`` is face, plate, code, visitor (a visitor's pass by code or plate)
    or other (a picked person, a PIN); ``fever`` counts those with a fever reason."""

    hour: int  # whole hours since the first day's local midnight
    direction: str
    kind: str
    decision: str
    count: int
    fever: int


NEW_IDS = 2000  # more new events than this are counted by the time index instead


def traffic(
    *,
    session: Session,
    actor: Actor,
    first_day: dt.date,
    days: int = 1,
    above_id: int = 0,
    upto_id: int | None = None,
) -> list[TrafficCount]:
    """Passages in the actor's scope per local hour from ``first_day`` over ``days`` days,
    by direction, method kind and decision: one grouped query; nothing is fetched but the
    counts. ``above_id``/``upto_id`` limit it to events with ids in (above_id, upto_id], so
    a caller that kept the counts up to an id adds only what came since (read along the
    primary key). Not audited: counts name nobody."""
    require(actor, Permission.access_read)
    first, _end = _day_bounds(first_day)
    _start, last = _day_bounds(first_day + dt.timedelta(days=days - 1))
    bucket = _hour_bucket(session, first).label("hour")
    ids: list[ColumnElement[bool]] = []
    if above_id:
        ids.append(AccessEvent.id > above_id)
    if upto_id is not None:
        ids.append(AccessEvent.id <= upto_id)
    visitor = or_(
        AccessEvent.method == "pass",
        AccessEvent.match_how == "visitor_pass",
        cast(AccessEvent.detail, String).like('%"pass_id"%'),
    )
    kind = case(
        (visitor, "visitor"),
        (AccessEvent.method.in_(("face", "plate", "code")), AccessEvent.method),
        else_="other",
    ).label("kind")
    fever = func.sum(case((cast(AccessEvent.reasons, String).like('%"fever%'), 1), else_=0)).label(
        "fever"
    )
    if above_id:
        # The events since a known id are usually few: name them by the primary key, or the
        # planner walks the day's whole stretch of the (community, time) index for them.
        new = list(session.scalars(select(AccessEvent.id).where(*ids).limit(NEW_IDS + 1)))
        if not new:
            return []
        if len(new) <= NEW_IDS:
            ids = [AccessEvent.id.in_(new)]
    found = session.execute(
        select(bucket, AccessEvent.direction, kind, AccessEvent.decision, func.count(), fever)
        .where(
            event_in_scope(actor),
            AccessEvent.occurred_at >= first,
            AccessEvent.occurred_at < last,
            *ids,
        )
        .group_by(bucket, AccessEvent.direction, kind, AccessEvent.decision)
    ).all()
    return [
        TrafficCount(int(h), str(d), str(k), str(dec), int(n), int(f or 0))
        for h, d, k, dec, n, f in found
    ]


def settled_event_id(*, session: Session, before: dt.datetime) -> int:
    """The highest event id below which every event has been committed, as far as can be
    told: the highest id among the newest 5,000 events whose server time is before
    ``before`` (a flow's write lasts milliseconds, so an event older than a few seconds
    that is not there yet will not come). 0 when there are none."""
    newest = select(func.coalesce(func.max(AccessEvent.id), 0)).scalar_subquery()
    found = session.scalar(
        select(func.max(AccessEvent.id)).where(
            AccessEvent.id > newest - 5000, AccessEvent.server_time < before
        )
    )
    return int(found or 0)


HEADER = ("时间", "出入口", "方向", "方式", "结果", "原因", "姓名", "身份证号（遮蔽）",
          "车牌", "体温", "复测体温", "防控等级", "补传", "时钟偏差", "操作员")  # fmt: skip


def export_xlsx(*, session: Session, actor: Actor, filters: EventFilter) -> bytes:
    """The matching events as a workbook; ID numbers masked for every role (the record is
    for tracing passages, not identities). Audited as "access_export"."""
    require(actor, Permission.access_read)
    from fengchao.access.flows import reason_text

    zone = local_zone()
    query = (
        _rows_query(actor, filters)
        .order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())
        .limit(MAX_EXPORT_ROWS)
    )
    rows = []
    for found in session.execute(query):
        row = _row(found)
        rows.append(
            (
                row.occurred_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                row.gate_name,
                _("进") if row.direction == "in" else _("出"),
                row.method,
                row.decision,
                "；".join(reason_text(r) for r in row.reasons),
                row.person_name or "",
                row.id_mask or "",
                row.plate or "",
                row.temperature,
                row.retest_temperature,
                row.alert_level,
                _("是") if row.late else "",
                _("是") if row.clock_off else "",
                row.operator_name or "",
            )
        )
    audit(
        session=session, actor=actor, action="access_export", object_type="access_event",
        rows=len(rows), **filters.audit_detail(),
    )  # fmt: skip
    return xlsx_bytes([Sheet(_("通行记录"), [_(h) for h in HEADER], rows, text_columns=("H",))])


def purge_events(*, session: Session, now: dt.datetime | None = None, dry_run: bool = False) -> int:
    """Delete access events older than ``access.event_keep_days`` (by server time); with
    ``dry_run`` only count them. Deleted in batches, each its own short write."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=get_settings().access.event_keep_days)
    old = select(AccessEvent.id).where(AccessEvent.server_time < cutoff)
    if dry_run:
        return session.scalar(select(func.count()).select_from(old.subquery())) or 0
    total = 0
    while True:
        begin_write(session)
        batch = list(session.scalars(old.limit(5000)))
        if not batch:
            session.commit()
            return total
        session.execute(delete(AccessEvent).where(AccessEvent.id.in_(batch)))
        session.commit()
        total += len(batch)
