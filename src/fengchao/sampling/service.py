"""Sites, rounds, exemptions and slot plans of the sampling site; who a round covers; when
a person was last sampled (for the gate card)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import Label

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write
from fengchao.registry.models import (
    Building,
    Community,
    Compound,
    Household,
    Person,
    ResidenceStatus,
    Unit,
)
from fengchao.sampling import slots
from fengchao.sampling.models import (
    ExemptionKind,
    RoundScope,
    SamplingExemption,
    SamplingRound,
    SamplingSite,
    Swab,
    Tube,
)
from fengchao.web.i18n import _

TUBE_CAPACITIES = (1, 5, 10, 20)
NAME_MAX = 64


class SamplingRefused(Refusal):
    """A sampling request refused as given (names the field)."""

    status = 422


# --- who may act on which community -------------------------------------------------------


def actor_community(session: Session, actor: Actor) -> int | None:
    """The community an account below the street level belongs to."""
    if actor.community_id is not None or actor.scope.level == ScopeLevel.street:
        return actor.community_id
    match actor.scope.level:
        case ScopeLevel.community:
            return actor.scope.node_id
        case ScopeLevel.compound:
            return session.scalar(
                select(Compound.community_id).where(Compound.id == actor.scope.node_id)
            )
        case ScopeLevel.building:
            return session.scalar(
                select(Building.community_id).where(Building.id == actor.scope.node_id)
            )
    return None


def community_of(session: Session, actor: Actor, community_id: int) -> Community:
    """The community, if it lies in the actor's scope (a street sees its communities, a
    compound or building account the community it belongs to); NotFound otherwise."""
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound(f"community {community_id}")
    if actor.scope.level == ScopeLevel.street:
        if community.street_id != actor.scope.node_id:
            raise NotFound(f"community {community_id}")
    elif actor_community(session, actor) != community_id:
        raise NotFound(f"community {community_id}")
    return community


def community_ids(session: Session, actor: Actor) -> list[int]:
    if actor.scope.level == ScopeLevel.street:
        query = select(Community.id).where(Community.street_id == actor.scope.node_id)
        return list(session.scalars(query.order_by(Community.id)))
    found = actor_community(session, actor)
    return [found] if found is not None else []


def get_round(session: Session, actor: Actor, round_id: int) -> SamplingRound:
    found = session.get(SamplingRound, round_id)
    if found is None:
        raise NotFound(f"round {round_id}")
    community_of(session, actor, found.community_id)
    return found


def get_site(session: Session, actor: Actor, site_id: int) -> SamplingSite:
    found = session.get(SamplingSite, site_id)
    if found is None:
        raise NotFound(f"site {site_id}")
    community_of(session, actor, found.community_id)
    return found


def local_zone(session: Session, community_id: int) -> ZoneInfo:
    community = session.get(Community, community_id)
    return ZoneInfo(community.timezone if community else "Asia/Shanghai")


# --- sites ------------------------------------------------------------------------------


def parse_clock(text: str, field: str) -> dt.time:
    try:
        hours, minutes = text.strip().split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise SamplingRefused(_("时间格式应为 时:分，例如 07:30"), field=field) from None


def create_site(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    name: str,
    opens: str = "07:30",
    closes: str = "13:30",
    stations: int = 4,
    per_station_hour: int = slots.DEFAULT_PER_STATION_HOUR,
) -> SamplingSite:
    require(actor, Permission.sampling_manage)
    community_of(session, actor, community_id)
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise SamplingRefused(_("采样点名称不能为空，最多 64 个字符"), field="name")
    start, end = parse_clock(opens, "opens"), parse_clock(closes, "closes")
    if end <= start:
        raise SamplingRefused(_("结束时间应晚于开始时间"), field="closes")
    if not 1 <= stations <= 50:
        raise SamplingRefused(_("采样台数应在 1 到 50 之间"), field="stations")
    if not 1 <= per_station_hour <= 1000:
        raise SamplingRefused(_("每台每小时采样人数应在 1 到 1000 之间"), field="per_station_hour")
    begin_write(session)
    site = SamplingSite(
        community_id=community_id,
        name=name,
        opens=start.strftime("%H:%M"),
        closes=end.strftime("%H:%M"),
        stations=stations,
        per_station_hour=per_station_hour,
    )
    session.add(site)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="create",
        object_type="sampling_site",
        object_id=site.id,
        community_id=community_id,
    )
    return site


def sites(session: Session, actor: Actor) -> list[SamplingSite]:
    ids = community_ids(session, actor)
    query = select(SamplingSite).where(SamplingSite.community_id.in_(ids))
    return list(session.scalars(query.order_by(SamplingSite.id)))


# --- rounds -----------------------------------------------------------------------------


def _check_scope_ids(
    session: Session, community_id: int, scope: RoundScope, ids: Sequence[int]
) -> list[int]:
    if scope == RoundScope.community:
        return []
    if not ids:
        raise SamplingRefused(_("请选择这一轮覆盖的小区、楼栋或人员"), field="scope_ids")
    unique = sorted(set(ids))
    found: set[int]
    if scope == RoundScope.compounds:
        query = select(Compound.id).where(
            Compound.id.in_(unique), Compound.community_id == community_id
        )
    elif scope == RoundScope.buildings:
        query = select(Building.id).where(
            Building.id.in_(unique), Building.community_id == community_id
        )
    else:
        query = select(Person.id).where(Person.id.in_(unique), Person.community_id == community_id)
    found = set(session.scalars(query))
    missing = [i for i in unique if i not in found]
    if missing:
        raise SamplingRefused(
            _("这些编号不在本社区：{ids}").format(ids=", ".join(map(str, missing[:10]))),
            field="scope_ids",
        )
    return unique


def create_round(
    *,
    session: Session,
    actor: Actor,
    site_id: int,
    name: str,
    day: dt.date,
    scope: RoundScope = RoundScope.community,
    scope_ids: Sequence[int] = (),
    due_at: dt.datetime | None = None,
    tube_capacity: int = 10,
    household_tubes: bool = False,
    turnout: int = 90,
) -> SamplingRound:
    """A new round at a site. Refused (naming the field): an empty name, a tube size other
    than 1, 5, 10 or 20, ids outside the community."""
    require(actor, Permission.sampling_manage)
    site = get_site(session, actor, site_id)
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise SamplingRefused(_("轮次名称不能为空，最多 64 个字符"), field="name")
    if tube_capacity not in TUBE_CAPACITIES:
        raise SamplingRefused(_("每管人数只能是 1、5、10 或 20"), field="tube_capacity")
    if not 1 <= turnout <= 100:
        raise SamplingRefused(_("预计到场率应在 1% 到 100% 之间"), field="turnout")
    ids = _check_scope_ids(session, site.community_id, scope, scope_ids)
    begin_write(session)
    found = SamplingRound(
        community_id=site.community_id,
        site_id=site.id,
        name=name,
        day=day,
        due_at=due_at,
        scope=scope,
        scope_ids=ids,
        tube_capacity=tube_capacity,
        household_tubes=household_tubes,
        turnout=turnout,
        created_by=actor.user_id or None,
    )
    session.add(found)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="create",
        object_type="sampling_round",
        object_id=found.id,
        community_id=site.community_id,
        scope=scope.value,
    )
    return found


def rounds(session: Session, actor: Actor, *, limit: int = 50) -> list[SamplingRound]:
    ids = community_ids(session, actor)
    query = select(SamplingRound).where(SamplingRound.community_id.in_(ids))
    return list(session.scalars(query.order_by(SamplingRound.id.desc()).limit(limit)))


def set_round_closed(*, session: Session, actor: Actor, round_id: int, closed: bool) -> None:
    require(actor, Permission.sampling_manage)
    begin_write(session)
    found = get_round(session, actor, round_id)
    found.closed = closed
    audit(
        session=session,
        actor=actor,
        action="close" if closed else "reopen",
        object_type="sampling_round",
        object_id=found.id,
        community_id=found.community_id,
    )


def household_filter(found: SamplingRound) -> ColumnElement[bool]:
    """The households a round covers (for a list of people: theirs)."""
    match found.scope:
        case RoundScope.community:
            return Household.community_id == found.community_id
        case RoundScope.compounds:
            return Household.compound_id.in_(found.scope_ids)
        case RoundScope.buildings:
            return Household.building_id.in_(found.scope_ids)
        case RoundScope.people:
            return Household.id.in_(
                select(Person.household_id).where(Person.id.in_(found.scope_ids))
            )
    raise ValueError(found.scope)


def person_filter(found: SamplingRound) -> ColumnElement[bool]:
    """The people a round expects: living there (not away, not moved out); for a list of
    people, those listed."""
    if found.scope == RoundScope.people:
        return Person.id.in_(found.scope_ids)
    return Person.residence_status == ResidenceStatus.living


# --- exemptions -------------------------------------------------------------------------


def add_exemption(
    *,
    session: Session,
    actor: Actor,
    round_id: int,
    person_id: int,
    kind: ExemptionKind,
    note: str = "",
) -> SamplingExemption:
    """Exempt a person from a round with a reason; a home visit needs a note (where, who)."""
    require(actor, Permission.sampling_manage)
    begin_write(session)
    found = get_round(session, actor, round_id)
    person = session.get(Person, person_id)
    if person is None or person.community_id != found.community_id:
        # Typed on the round page: said at the field (the same for one elsewhere).
        raise SamplingRefused(_("本社区没有这个人员编号"), field="person_id")
    note = note.strip()
    if len(note) > 200:
        raise SamplingRefused(_("说明最多 200 个字符"), field="note")
    if kind == ExemptionKind.other and not note:
        raise SamplingRefused(_("请写明免采原因"), field="note")
    existing = session.scalar(
        select(SamplingExemption).where(
            SamplingExemption.round_id == round_id, SamplingExemption.person_id == person_id
        )
    )
    if existing is None:
        existing = SamplingExemption(
            community_id=found.community_id, round_id=round_id, person_id=person_id
        )
        session.add(existing)
    existing.kind = kind
    existing.note = note
    existing.created_by = actor.user_id or None
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="exempt",
        object_type="person",
        object_id=person_id,
        community_id=found.community_id,
        kind=kind.value,
    )
    return existing


# --- slot plans -------------------------------------------------------------------------


def building_loads(
    session: Session, community_id: int, households: ColumnElement[bool] | None = None
) -> tuple[list[slots.BuildingLoad], dict[int, str], dict[int, str]]:
    """Every building of the community with its units and living people, in walking order,
    and the names of buildings and units for showing the plan."""
    buildings = session.execute(
        select(Building.id, Building.name, Compound.name)
        .join(Compound, Compound.id == Building.compound_id)
        .where(Building.community_id == community_id)
        .order_by(Building.compound_id, Building.sort_key, Building.id)
    ).all()
    units = session.execute(
        select(Unit.id, Unit.building_id, Unit.name)
        .where(Unit.community_id == community_id)
        .order_by(Unit.sort_key, Unit.id)
    ).all()
    counts_query = (
        select(Household.unit_id, func.count(Person.id))
        .join(Person, Person.household_id == Household.id)
        .where(
            Household.community_id == community_id,
            Person.residence_status == ResidenceStatus.living,
        )
        .group_by(Household.unit_id)
    )
    if households is not None:
        counts_query = counts_query.where(households)
    counts = dict(session.execute(counts_query).all())
    by_building: dict[int, list[slots.UnitLoad]] = {}
    for unit_id, building_id, _name in units:
        by_building.setdefault(building_id, []).append(
            slots.UnitLoad(unit_id, int(counts.get(unit_id, 0)))
        )
    loads = [
        slots.BuildingLoad(b_id, tuple(by_building.get(b_id, ()))) for b_id, _n, _c in buildings
    ]
    building_names = {
        b_id: _("{c} {b}号楼").format(c=compound, b=name) for b_id, name, compound in buildings
    }
    unit_names = {unit_id: name for unit_id, _b, name in units}
    return loads, building_names, unit_names


def plan_for_community(
    *,
    session: Session,
    community_id: int,
    start: dt.time,
    end: dt.time,
    stations: int,
    per_station_hour: int = slots.DEFAULT_PER_STATION_HOUR,
    turnout: float = slots.DEFAULT_TURNOUT,
) -> slots.Plan:
    """Slots for every building of a community (nothing saved)."""
    loads, _b, _u = building_loads(session, community_id)
    day = slots.SiteDay(start, end, stations, per_station_hour, turnout)
    return slots.plan_slots(loads, day)


def plan_round(*, session: Session, actor: Actor, round_id: int) -> slots.Plan:
    """Plan a round's slots at its site and keep the plan on the round."""
    require(actor, Permission.sampling_manage)
    begin_write(session)
    found = get_round(session, actor, round_id)
    site = session.get(SamplingSite, found.site_id)
    assert site is not None
    loads, _b, _u = building_loads(session, found.community_id, household_filter(found))
    # A building with nobody expected is given no time (the command line lists every one).
    loads = [b for b in loads if b.people > 0]
    day = slots.SiteDay(
        parse_clock(site.opens, "opens"),
        parse_clock(site.closes, "closes"),
        site.stations,
        site.per_station_hour,
        found.turnout / 100,
    )
    try:
        plan = slots.plan_slots(loads, day)
    except slots.PlanError as exc:
        raise SamplingRefused(str(exc), field=exc.field) from None
    found.slot_plan = plan.as_json()
    audit(
        session=session,
        actor=actor,
        action="plan",
        object_type="sampling_round",
        object_id=found.id,
        community_id=found.community_id,
    )
    return plan


@dataclass(frozen=True)
class ScheduleRow:
    start: str
    end: str
    building: str
    units: str
    expected: int


def schedule_rows(session: Session, found: SamplingRound) -> list[ScheduleRow]:
    """The saved plan as rows a building lead reads: time, building, units, people."""
    if not found.slot_plan:
        return []
    _loads, building_names, unit_names = building_loads(session, found.community_id)
    rows = []
    for slot in found.slot_plan.get("slots", []):
        for piece in slot["buildings"]:
            units = piece["units"]
            rows.append(
                ScheduleRow(
                    slot["start"],
                    slot["end"],
                    building_names.get(piece["building_id"], str(piece["building_id"])),
                    _("全部单元")
                    if units is None
                    else ", ".join(_("{u} 单元").format(u=unit_names.get(u, u)) for u in units),
                    piece["expected"],
                )
            )
    return rows


# --- the gate card ----------------------------------------------------------------------


def last_sampled_at(session: Session, person_id: int) -> dt.datetime | None:
    """When the person was last swabbed at any round (None: never)."""
    return session.scalar(select(func.max(Swab.taken_at)).where(Swab.person_id == person_id))


def last_sampled_column(
    person_id: ColumnElement[int] | QueryableAttribute[int],
) -> Label[dt.datetime]:
    """``last_sampled_at`` as a column of another slice's query about people: the gate card
    reads it in the query that finds the person (one round trip per decision, not two)."""
    return (
        select(func.max(Swab.taken_at))
        .where(Swab.person_id == person_id)
        .scalar_subquery()
        .label("last_sampled")
    )


def announce_schedule(*, session: Session, actor: Actor, round_id: int) -> int:
    """Send each building's slot to its building lead and its group chat; the same plan
    announced twice is sent once. Returns the buildings told."""
    import hashlib
    import json

    from fengchao.auth.models import Role
    from fengchao.notify import service as notify

    require(actor, Permission.sampling_manage)
    begin_write(session)
    found = get_round(session, actor, round_id)
    if not found.slot_plan:
        raise SamplingRefused(_("请先生成分时段安排"), field="plan")
    digest = hashlib.sha256(json.dumps(found.slot_plan, sort_keys=True).encode()).hexdigest()[:16]
    site = session.get(SamplingSite, found.site_id)
    by_building: dict[int, list[str]] = {}
    for slot in found.slot_plan.get("slots", []):
        for piece in slot["buildings"]:
            by_building.setdefault(piece["building_id"], []).append(
                f"{slot['start']}–{slot['end']}"
            )
    for building_id, times in by_building.items():
        notify.send(
            session=session,
            community_id=found.community_id,
            kind="sampling_schedule",
            title=_("{round}：本楼采样时间 {times}").format(
                round=found.name, times="、".join(times)
            ),
            body=_("地点：{site}，{day}。请按时段下楼，带好居民码或身份证。").format(
                site=site.name if site else "", day=found.day.isoformat()
            ),
            to=[
                notify.Recipient.at(Role.building_lead, ScopeLevel.building, building_id),
                notify.Recipient.group(ScopeLevel.building, building_id),
            ],
            key=f"sampling-schedule-{found.id}-{building_id}-{digest}",
            source="sampling",
        )
    audit(
        session=session,
        actor=actor,
        action="announce",
        object_type="sampling_round",
        object_id=found.id,
        community_id=found.community_id,
        buildings=len(by_building),
    )
    return len(by_building)


@dataclass(frozen=True)
class ExemptionRow:
    person_id: int
    name: str
    place: str
    kind: ExemptionKind
    note: str


def exemptions(*, session: Session, actor: Actor, round_id: int) -> list[ExemptionRow]:
    """A round's exemptions within the actor's scope; those marked ``home_visit`` are the
    list for sampling at home (上门采样)."""
    from fengchao.registry.scope import household_in_scope

    require(actor, Permission.sampling_coverage)
    found = get_round(session, actor, round_id)
    rows = session.execute(
        select(SamplingExemption, Person.name, Building.name, Unit.name, Household.room)
        .join(Person, Person.id == SamplingExemption.person_id)
        .join(Household, Household.id == Person.household_id)
        .join(Building, Building.id == Household.building_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(SamplingExemption.round_id == found.id, household_in_scope(actor.scope))
        .order_by(SamplingExemption.kind, Building.sort_key, Building.id, Household.room)
    ).all()
    return [
        ExemptionRow(e.person_id, name, f"{b}-{u}-{room}", e.kind, e.note)
        for e, name, b, u, room in rows
    ]


# --- for contact tracing ----------------------------------------------------------------


@dataclass(frozen=True)
class SwabRecord:
    """One swab as contact tracing reads it (no names: tracing resolves people itself)."""

    swab_id: int
    person_id: int
    site_id: int
    round_id: int
    tube_id: int
    tube_barcode: str
    station: str
    at: dt.datetime


def _records(session: Session, *where: ColumnElement[bool]) -> list[SwabRecord]:
    rows = session.execute(
        select(Swab, SamplingRound.site_id, Tube.barcode)
        .join(SamplingRound, SamplingRound.id == Swab.round_id)
        .join(Tube, Tube.id == Swab.tube_id)
        .where(*where)
        .order_by(Swab.taken_at, Swab.id)
    ).all()
    return [
        SwabRecord(s.id, s.person_id, site_id, s.round_id, s.tube_id, barcode, s.station,
                   s.taken_at)
        for s, site_id, barcode in rows
    ]  # fmt: skip


def swabs_of(
    session: Session, person_id: int, since: dt.datetime, until: dt.datetime
) -> list[SwabRecord]:
    """A person's swabs in a time window, oldest first."""
    return _records(
        session, Swab.person_id == person_id, Swab.taken_at >= since, Swab.taken_at <= until
    )


def tube_mates(session: Session, tube_id: int) -> list[SwabRecord]:
    """Everyone swabbed into a tube (the person asked about included)."""
    return _records(session, Swab.tube_id == tube_id)


def queue_around(session: Session, swab_id: int, neighbours: int) -> list[SwabRecord]:
    """The ``neighbours`` swabs registered just before and just after one at the same
    station of the same round (the people who stood beside that person in its queue)."""
    swab = session.get(Swab, swab_id)
    if swab is None or neighbours <= 0:
        return []
    same = (Swab.round_id == swab.round_id, Swab.station == swab.station, Swab.id != swab.id)
    earlier = or_(
        Swab.taken_at < swab.taken_at, and_(Swab.taken_at == swab.taken_at, Swab.id < swab.id)
    )
    later = or_(
        Swab.taken_at > swab.taken_at, and_(Swab.taken_at == swab.taken_at, Swab.id > swab.id)
    )
    before = session.scalars(
        select(Swab.id).where(*same, earlier)
        .order_by(Swab.taken_at.desc(), Swab.id.desc()).limit(neighbours)
    ).all()  # fmt: skip
    after = session.scalars(
        select(Swab.id).where(*same, later)
        .order_by(Swab.taken_at, Swab.id).limit(neighbours)
    ).all()  # fmt: skip
    return _records(session, Swab.id.in_({*before, *after}))
