"""Duty: the volunteer register, sign-up and availability, posts and shift templates,
computing and repairing the roster through ``solver.py``, check-in/out and hours served.

Times are stored in UTC; shifts are planned in the community's local time (the solver sees
naive local times: a night shift is one that covers 02:00 there).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fengchao.auth.service import (
    Actor,
    Forbidden,
    NotFound,
    Permission,
    Refusal,
    audit,
    require,
)
from fengchao.db import begin_write, utcnow
from fengchao.duty import solver
from fengchao.duty.models import (
    Assignment,
    AssignmentStatus,
    AvailabilityException,
    Certificate,
    CheckIn,
    Identity,
    Post,
    PostKind,
    RepairProposal,
    RepairStatus,
    Shift,
    ShiftTemplate,
    Volunteer,
)
from fengchao.registry import scope as grid
from fengchao.registry.models import Community
from fengchao.web.i18n import _

# Periods of the day a volunteer states availability in (the gate's three shifts).
PERIODS: dict[str, tuple[int, int]] = {"night": (0, 8), "day": (8, 16), "evening": (16, 24)}
# Skills that count only with a valid certificate (sampling needs a medical one).
CERTIFIED = frozenset({"medical", "tracing"})
SKILL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CHECK_IN_EARLY = dt.timedelta(minutes=30)
LATE_AFTER = dt.timedelta(minutes=15)


class DutyRefused(Refusal):
    """A duty action refused as asked (names the field)."""

    status = 422


# --------------------------------------------------------------------------- access


def _community(session: Session, actor: Actor, community_id: int) -> Community:
    require(actor, Permission.duty_manage)
    if not any(
        c.id == community_id for c in grid.communities_in_scope(session=session, scope=actor.scope)
    ):
        raise NotFound(f"community {community_id}")
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound(f"community {community_id}")
    return community


def manageable_communities(*, session: Session, actor: Actor) -> list[Community]:
    require(actor, Permission.duty_manage)
    return grid.communities_in_scope(session=session, scope=actor.scope)


def community_for(*, session: Session, actor: Actor, community_id: int | None) -> Community:
    """The community asked for, or the first the actor manages when none is named (403
    without ``duty.manage``, 404 for one outside the actor's scope)."""
    for row in manageable_communities(session=session, actor=actor):
        if community_id is None or row.id == community_id:
            return row
    raise NotFound(f"community {community_id}")


def week_of(community: Community, day: dt.date | None, now: dt.datetime | None = None) -> dt.date:
    """The Monday of the week of ``day``; by default next week in the community's time."""
    if day is not None:
        return monday_of(day)
    today = (now or utcnow()).astimezone(_zone(community)).date()
    return monday_of(today + dt.timedelta(days=7))


def _zone(community: Community) -> ZoneInfo:
    return ZoneInfo(community.timezone or "Asia/Shanghai")


zone_of = _zone


def volunteer_community(*, session: Session, volunteer: Volunteer) -> Community:
    """The community a volunteer serves (for its time zone)."""
    community = session.get(Community, volunteer.community_id)
    if community is None:
        raise NotFound(f"community {volunteer.community_id}")
    return community


def _volunteer(session: Session, actor: Actor, volunteer_id: int) -> Volunteer:
    """A volunteer the actor may change: their own record, or any in a managed community."""
    volunteer = session.get(Volunteer, volunteer_id)
    if volunteer is None:
        raise NotFound(f"volunteer {volunteer_id}")
    if volunteer.user_id == actor.user_id and actor.can(Permission.duty_self):
        return volunteer
    _community(session, actor, volunteer.community_id)
    return volunteer


def local(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A stored UTC time as naive local time (what the solver and the pages use)."""
    return moment.astimezone(zone).replace(tzinfo=None)


def to_utc(naive: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return naive.replace(tzinfo=zone).astimezone(dt.UTC)


# --------------------------------------------------------------------------- register


def _skills(values: Iterable[str]) -> list[str]:
    skills = sorted({v.strip().lower() for v in values if v.strip()})
    for skill in skills:
        if not SKILL_NAME.match(skill):
            raise DutyRefused(
                _("技能“{s}”不合规：请用小写英文字母、数字、- 或 _").format(s=skill), field="skills"
            )
    return skills


def _check_volunteer_fields(name: str, phone: str | None, max_hours_week: int) -> str:
    name = name.strip()
    if not name or len(name) > 64:
        raise DutyRefused(_("姓名不能为空，最多 64 个字"), field="name")
    if phone and not re.fullmatch(r"1\d{10}", phone):
        raise DutyRefused(_("手机号应为 11 位数字，以 1 开头"), field="phone")
    if not 0 <= max_hours_week <= 84:
        raise DutyRefused(_("每周时长应在 0 到 84 小时之间"), field="max_hours_week")
    return name


def register_volunteer(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    name: str,
    phone: str | None = None,
    identity: Identity | str = Identity.resident,
    skills: Iterable[str] = (),
    max_hours_week: int = 24,
    building_id: int | None = None,
    person_id: int | None = None,
    user_id: int | None = None,
    weekly: Iterable[str] = (),
) -> Volunteer:
    """Add a volunteer to the register (a community worker's act)."""
    _community(session, actor, community_id)
    begin_write(session)
    name = _check_volunteer_fields(name, phone, max_hours_week)
    try:
        identity = Identity(identity)
    except ValueError:
        raise DutyRefused(_("身份不在可选范围内"), field="identity") from None
    volunteer = Volunteer(
        community_id=community_id,
        name=name,
        phone=phone or None,
        identity=identity,
        skills=_skills(skills),
        max_hours_week=max_hours_week,
        building_id=building_id,
        person_id=person_id,
        user_id=user_id,
        weekly=_weekly(weekly),
    )
    session.add(volunteer)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="duty.volunteer_add",
        object_type="duty_volunteer",
        object_id=volunteer.id,
        community_id=community_id,
    )
    return volunteer


def sign_up(
    *,
    session: Session,
    actor: Actor,
    name: str,
    phone: str | None,
    identity: Identity | str,
    weekly: Iterable[str] = (),
    max_hours_week: int = 16,
) -> Volunteer:
    """A volunteer signs themselves up from the phone page (their account, their community)."""
    require(actor, Permission.duty_self)
    if actor.community_id is None:
        raise DutyRefused(_("您的账号不属于某个社区，无法报名"), field="name")
    begin_write(session)
    existing = my_volunteer(session=session, actor=actor)
    name = _check_volunteer_fields(name, phone, max_hours_week)
    try:
        identity = Identity(identity)
    except ValueError:
        raise DutyRefused(_("身份不在可选范围内"), field="identity") from None
    if existing is not None:
        existing.name, existing.phone, existing.identity = name, phone or None, identity
        existing.weekly, existing.max_hours_week = _weekly(weekly), max_hours_week
        return existing
    volunteer = Volunteer(
        community_id=actor.community_id,
        name=name,
        phone=phone or None,
        identity=identity,
        user_id=actor.user_id,
        weekly=_weekly(weekly),
        max_hours_week=max_hours_week,
    )
    session.add(volunteer)
    session.flush()
    return volunteer


def my_volunteer(*, session: Session, actor: Actor) -> Volunteer | None:
    return session.scalars(
        select(Volunteer).where(Volunteer.user_id == actor.user_id).order_by(Volunteer.id)
    ).first()


def _weekly(values: Iterable[str]) -> list[str]:
    out = set()
    for value in values:
        day, _sep, period = value.partition("-")
        if not (day.isdigit() and 0 <= int(day) <= 6 and period in PERIODS):
            raise DutyRefused(_("可服务时段“{v}”不合规").format(v=value), field="weekly")
        out.add(f"{int(day)}-{period}")
    return sorted(out)


def set_availability(
    *,
    session: Session,
    actor: Actor,
    volunteer_id: int,
    weekly: Iterable[str],
    max_hours_week: int | None = None,
) -> Volunteer:
    volunteer = _volunteer(session, actor, volunteer_id)
    begin_write(session)
    volunteer.weekly = _weekly(weekly)
    if max_hours_week is not None:
        _check_volunteer_fields(volunteer.name, None, max_hours_week)
        volunteer.max_hours_week = max_hours_week
    return volunteer


def set_my_availability(
    *,
    session: Session,
    actor: Actor,
    weekly: Iterable[str],
    max_hours_week: int | None = None,
    away: Iterable[dt.date] = (),
) -> Volunteer:
    """The signed-in volunteer's own weekly pattern (replaced), weekly hours and days away
    (added); 404 for an account that has not signed up. Checked whole before anything is
    written."""
    require(actor, Permission.duty_self)
    volunteer = my_volunteer(session=session, actor=actor)
    if volunteer is None:
        raise NotFound("volunteer")
    weekly = list(weekly)
    _weekly(weekly)
    if max_hours_week is not None:
        _check_volunteer_fields(volunteer.name, None, max_hours_week)
    days = sorted(set(away))
    set_availability(
        session=session,
        actor=actor,
        volunteer_id=volunteer.id,
        weekly=weekly,
        max_hours_week=max_hours_week,
    )
    for day in days:
        add_exception(session=session, actor=actor, volunteer_id=volunteer.id, day=day)
    return volunteer


def add_exception(
    *,
    session: Session,
    actor: Actor,
    volunteer_id: int,
    day: dt.date,
    period: str = "all",
    available: bool = False,
) -> AvailabilityException:
    """A day away (or an extra day) that overrides the weekly pattern."""
    volunteer = _volunteer(session, actor, volunteer_id)
    if period != "all" and period not in PERIODS:
        raise DutyRefused(_("时段不合规"), field="period")
    begin_write(session)
    row = session.scalars(
        select(AvailabilityException).where(
            AvailabilityException.volunteer_id == volunteer.id,
            AvailabilityException.day == day,
            AvailabilityException.period == period,
        )
    ).first()
    if row is None:
        row = AvailabilityException(volunteer_id=volunteer.id, day=day, period=period)
        session.add(row)
    row.available = available
    session.flush()
    return row


def add_certificate(
    *,
    session: Session,
    actor: Actor,
    volunteer_id: int,
    skill: str,
    name: str = "",
    expires_on: dt.date | None = None,
) -> Certificate:
    volunteer = _volunteer(session, actor, volunteer_id)
    _community(session, actor, volunteer.community_id)  # only staff record certificates
    (skill,) = _skills([skill]) or [""]
    if not skill:
        raise DutyRefused(_("请填写证书对应的技能"), field="skill")
    begin_write(session)
    certificate = Certificate(
        volunteer_id=volunteer.id, skill=skill, name=name.strip()[:100], expires_on=expires_on
    )
    session.add(certificate)
    session.flush()
    return certificate


def valid_skills(volunteer: Volunteer, on: dt.date) -> frozenset[str]:
    """Declared skills, where a skill in ``CERTIFIED`` counts only with a certificate that
    has not expired on ``on``."""
    certified = {
        c.skill for c in volunteer.certificates if c.expires_on is None or c.expires_on >= on
    }
    declared = {s for s in volunteer.skills if s not in CERTIFIED}
    return frozenset(declared | certified)


def available_for(volunteer: Volunteer, start: dt.datetime) -> bool:
    """Is the volunteer free at this local start time (weekly pattern, then exceptions)?"""
    period = next(p for p, (a, b) in PERIODS.items() if a <= start.hour < b)
    free = f"{start.weekday()}-{period}" in volunteer.weekly
    for exception in volunteer.exceptions:
        if exception.day == start.date() and exception.period in ("all", period):
            free = exception.available
    return free


@dataclass
class VolunteerRow:
    volunteer: Volunteer
    skills: frozenset[str]
    hours_served: float
    shifts_ahead: int
    expired: list[Certificate]


def register(*, session: Session, actor: Actor, community_id: int) -> list[VolunteerRow]:
    """The register of a community: each volunteer with valid skills and hours served."""
    _community(session, actor, community_id)
    volunteers = list(
        session.scalars(
            select(Volunteer)
            .where(Volunteer.community_id == community_id)
            .options(selectinload(Volunteer.certificates))
            .order_by(Volunteer.name, Volunteer.id)
        )
    )
    served = hours_served(session=session, volunteer_ids=[v.id for v in volunteers])
    today = utcnow().date()
    ahead: dict[int, int] = defaultdict(int)
    for volunteer_id in session.scalars(
        select(Assignment.volunteer_id)
        .join(Shift)
        .where(
            Shift.community_id == community_id,
            Shift.starts_at >= utcnow(),
            Assignment.status == AssignmentStatus.assigned,
        )
    ):
        ahead[volunteer_id] += 1
    return [
        VolunteerRow(
            volunteer=v,
            skills=valid_skills(v, today),
            hours_served=served.get(v.id, 0.0),
            shifts_ahead=ahead[v.id],
            expired=[c for c in v.certificates if c.expires_on and c.expires_on < today],
        )
        for v in volunteers
    ]


# --------------------------------------------------------------------------- posts


def create_post(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    name: str,
    kind: PostKind | str = PostKind.gate,
    place: str = "",
) -> Post:
    _community(session, actor, community_id)
    name = name.strip()
    if not name or len(name) > 64:
        raise DutyRefused(_("岗位名称不能为空，最多 64 个字"), field="name")
    try:
        kind = PostKind(kind)
    except ValueError:
        raise DutyRefused(_("岗位类别不在可选范围内"), field="kind") from None
    begin_write(session)
    if session.scalars(
        select(Post).where(Post.community_id == community_id, Post.name == name)
    ).first():
        raise DutyRefused(_("已有同名岗位"), field="name")
    post = Post(community_id=community_id, name=name, kind=kind, place=place.strip()[:100])
    session.add(post)
    session.flush()
    return post


def add_template(
    *,
    session: Session,
    actor: Actor,
    post_id: int,
    name: str,
    starts: dt.time,
    ends: dt.time,
    min_people: int = 1,
    max_people: int = 2,
    skills: Iterable[str] = (),
    weekdays: Sequence[int] = tuple(range(7)),
) -> ShiftTemplate:
    """A recurring shift of a post; contradictory demand is refused with the field named."""
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"post {post_id}")
    _community(session, actor, post.community_id)
    if not name.strip():
        raise DutyRefused(_("班次名称不能为空"), field="name")
    if min_people < 0:
        raise DutyRefused(_("最少人数不能为负"), field="min_people")
    if max_people < min_people or max_people < 1:
        raise DutyRefused(
            _("最多人数（{hi}）不能少于最少人数（{lo}）").format(hi=max_people, lo=min_people),
            field="max_people",
        )
    if starts == ends:
        raise DutyRefused(_("开始和结束时间不能相同"), field="ends")
    days = sorted({int(d) for d in weekdays})
    if not days or any(not 0 <= d <= 6 for d in days):
        raise DutyRefused(_("请至少选一天"), field="weekdays")
    begin_write(session)
    template = ShiftTemplate(
        post_id=post.id,
        name=name.strip()[:32],
        starts=starts,
        ends=ends,
        min_people=min_people,
        max_people=max_people,
        skills=_skills(skills),
        weekdays=days,
    )
    session.add(template)
    session.flush()
    return template


def posts(*, session: Session, actor: Actor, community_id: int) -> list[Post]:
    _community(session, actor, community_id)
    return list(
        session.scalars(
            select(Post)
            .where(Post.community_id == community_id)
            .options(selectinload(Post.templates))
            .order_by(Post.id)
        )
    )


# --------------------------------------------------------------------------- the roster


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def ensure_shifts(*, session: Session, community: Community, monday: dt.date) -> list[Shift]:
    """The week's shifts, made from the templates where they do not exist yet."""
    zone = _zone(community)
    begin_write(session)
    start = to_utc(dt.datetime.combine(monday, dt.time()), zone)
    existing = {
        (s.post_id, s.starts_at): s
        for s in session.scalars(
            select(Shift).where(
                Shift.community_id == community.id,
                Shift.starts_at >= start,
                Shift.starts_at < start + dt.timedelta(days=7),
            )
        )
    }
    templates = session.scalars(
        select(ShiftTemplate)
        .join(Post)
        .where(Post.community_id == community.id, Post.active.is_(True))
        .order_by(ShiftTemplate.id)
    )
    for template in templates:
        for offset in range(7):
            day = monday + dt.timedelta(days=offset)
            if day.weekday() not in template.weekdays:
                continue
            begins = dt.datetime.combine(day, template.starts)
            ends = dt.datetime.combine(day, template.ends)
            if ends <= begins:
                ends += dt.timedelta(days=1)
            key = (template.post_id, to_utc(begins, zone))
            if key in existing:
                continue
            shift = Shift(
                community_id=community.id,
                post_id=template.post_id,
                template_id=template.id,
                name=template.name,
                starts_at=key[1],
                ends_at=to_utc(ends, zone),
                min_people=template.min_people,
                max_people=template.max_people,
                skills=list(template.skills),
            )
            session.add(shift)
            existing[key] = shift
    session.flush()
    return sorted(existing.values(), key=lambda s: (s.starts_at, s.post_id))


def _problem(
    session: Session,
    community: Community,
    shifts: Sequence[Shift],
    *,
    now: dt.datetime,
    current: bool,
) -> solver.Problem:
    zone = _zone(community)
    volunteers = list(
        session.scalars(
            select(Volunteer)
            .where(Volunteer.community_id == community.id, Volunteer.active.is_(True))
            .options(selectinload(Volunteer.certificates), selectinload(Volunteer.exceptions))
            .order_by(Volunteer.id)
        )
    )
    plan = [
        solver.Shift(
            id=str(s.id),
            post=str(s.post_id),
            start=local(s.starts_at, zone),
            end=local(s.ends_at, zone),
            min=s.min_people,
            max=s.max_people,
            skills=frozenset(s.skills),
        )
        for s in shifts
    ]
    pairs = frozenset(
        (str(a.shift_id), str(a.volunteer_id))
        for s in shifts
        for a in s.assignments
        if a.status == AssignmentStatus.assigned
    )
    dropped = {
        (str(a.shift_id), str(a.volunteer_id))
        for s in shifts
        for a in s.assignments
        if a.status == AssignmentStatus.cancelled
    }
    # Certificates must still be valid on the last day planned (a conservative reading).
    last_day = max((p.start.date() for p in plan), default=local(now, zone).date())
    people = []
    for volunteer in volunteers:
        mine = str(volunteer.id)
        available = frozenset(
            p.id
            for p in plan
            if p.start >= local(now, zone)
            and (p.id, mine) not in dropped  # someone who dropped out is not asked again
            # A standing assignment stays possible in a repair even if the weekly pattern
            # changed since: only the person who cancelled moves.
            and (available_for(volunteer, p.start) or (current and (p.id, mine) in pairs))
        )
        people.append(
            solver.Volunteer(
                id=mine,
                skills=valid_skills(volunteer, last_day),
                available=available,
                max_hours_week=volunteer.max_hours_week,
            )
        )
    known = {p.id for p in people}
    return solver.Problem(
        shifts=tuple(plan),
        volunteers=tuple(people),
        current=frozenset(p for p in pairs if p[1] in known) if current else frozenset(),
        frozen_before=local(now, zone),
    )


@dataclass
class RosterOutcome:
    shifts: int
    assignments: int
    holes: list[solver.Hole]
    gap: float
    seconds: float
    hours_spread: float
    nights_spread: int


def compute_roster(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    monday: dt.date,
    time_limit: float = 10.0,
    now: dt.datetime | None = None,
) -> RosterOutcome:
    """Compute (or recompute) a week's roster through the solver and save it.

    Shifts already started keep their people; every later assignment is computed afresh
    (volunteers who dropped out of a shift are not put back on it).
    """
    community = _community(session, actor, community_id)
    now = now or utcnow()
    begin_write(session)
    shifts = ensure_shifts(session=session, community=community, monday=monday)
    problem = _problem(session, community, shifts, now=now, current=True)
    frozen = {s.id for s in shifts if s.starts_at <= now}
    # Keep the past as it is; let the solver place everyone else afresh.
    problem = solver.Problem(
        shifts=problem.shifts,
        volunteers=problem.volunteers,
        rules=problem.rules,
        current=frozenset(p for p in problem.current if int(p[0]) in frozen),
        frozen_before=problem.frozen_before,
    )
    try:
        result = solver.solve(problem, time_limit=time_limit)
    except solver.ProblemError as error:
        raise DutyRefused(str(error), field="roster") from None
    chosen = {(int(s), int(v)) for s, v in result.assignments}
    by_id = {s.id: s for s in shifts}
    for shift in shifts:
        if shift.id in frozen:
            continue
        for assignment in list(shift.assignments):
            if assignment.status != AssignmentStatus.assigned:
                continue
            if (shift.id, assignment.volunteer_id) not in chosen:
                session.delete(assignment)
    session.flush()
    have = {
        (a.shift_id, a.volunteer_id)
        for s in shifts
        for a in s.assignments
        if a.status == AssignmentStatus.assigned
    }
    for shift_id, volunteer_id in sorted(chosen - have):
        shift = by_id[shift_id]
        cancelled = next((a for a in shift.assignments if a.volunteer_id == volunteer_id), None)
        if cancelled is not None:  # the solver never picks them: they are not available
            continue
        shift.assignments.append(
            Assignment(shift_id=shift_id, volunteer_id=volunteer_id, source="solver")
        )
    session.flush()
    reasons = {int(h.shift): h for h in result.holes}
    for shift in shifts:
        if shift.id not in frozen:
            hole = reasons.get(shift.id)
            shift.hole = (
                {"code": hole.code, "missing": hole.missing, "reason": hole.reason, **hole.detail}
                if hole
                else None
            )
            _choose_lead(session, shift)
    audit(
        session=session,
        actor=actor,
        action="duty.roster_compute",
        object_type="community",
        object_id=community_id,
        community_id=community_id,
        week=monday.isoformat(),
        holes=len(result.holes),
    )
    return RosterOutcome(
        shifts=len(shifts),
        assignments=len(result.assignments),
        holes=result.holes,
        gap=result.gap,
        seconds=result.seconds,
        hours_spread=result.hours_spread,
        nights_spread=result.nights_spread,
    )


def _choose_lead(session: Session, shift: Shift) -> None:
    """The shift's lead: a party member first (党员亮身份), then whoever has the skill."""
    on = [a.volunteer for a in shift.assignments if a.status == AssignmentStatus.assigned]
    if shift.lead_id in {v.id for v in on}:
        return
    on.sort(key=lambda v: (v.identity != Identity.party_member, "lead" not in v.skills, v.id))
    shift.lead_id = on[0].id if on else None


@dataclass
class ShiftView:
    shift: Shift
    start: dt.datetime  # local
    end: dt.datetime
    people: list[Volunteer]
    lead: Volunteer | None
    missing: int
    checked_in: set[int] = field(default_factory=set)
    assignments: list[Assignment] = field(default_factory=list)  # those standing (roster)


@dataclass
class RosterView:
    community: Community
    monday: dt.date
    days: list[dt.date]
    posts: list[Post]
    cells: dict[tuple[int, dt.date], list[ShiftView]]
    coverage: dict[int, tuple[int, int]]  # post → (people placed, people required)
    load: list[tuple[Volunteer, float, int]]  # volunteer, hours, nights
    holes: list[ShiftView]


def roster(*, session: Session, actor: Actor, community_id: int, monday: dt.date) -> RosterView:
    """The week as the roster page shows it: posts × days, coverage, load, holes."""
    community = _community(session, actor, community_id)
    zone = _zone(community)
    start = to_utc(dt.datetime.combine(monday, dt.time()), zone)
    shifts = list(
        session.scalars(
            select(Shift)
            .where(
                Shift.community_id == community_id,
                Shift.starts_at >= start,
                Shift.starts_at < start + dt.timedelta(days=7),
            )
            .options(selectinload(Shift.assignments).selectinload(Assignment.volunteer))
            .order_by(Shift.starts_at, Shift.post_id)
        )
    )
    checked = set(
        session.scalars(
            select(CheckIn.assignment_id)
            .join(Assignment)
            .where(Assignment.shift_id.in_([s.id for s in shifts]))
        )
    )
    cells: dict[tuple[int, dt.date], list[ShiftView]] = defaultdict(list)
    coverage: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    hours: dict[int, float] = defaultdict(float)
    nights: dict[int, int] = defaultdict(int)
    people_by_id: dict[int, Volunteer] = {}
    holes = []
    for shift in shifts:
        on = [a for a in shift.assignments if a.status == AssignmentStatus.assigned]
        people = [a.volunteer for a in on]
        begin, end = local(shift.starts_at, zone), local(shift.ends_at, zone)
        view = ShiftView(
            shift=shift,
            start=begin,
            end=end,
            people=people,
            lead=next((v for v in people if v.id == shift.lead_id), None),
            missing=max(0, shift.min_people - len(people)),
            checked_in={a.volunteer_id for a in on if a.id in checked},
            assignments=on,
        )
        cells[shift.post_id, begin.date()].append(view)
        coverage[shift.post_id][0] += min(len(people), shift.min_people)
        coverage[shift.post_id][1] += shift.min_people
        plan = solver.Shift(str(shift.id), "", begin, end)
        for volunteer in people:
            people_by_id[volunteer.id] = volunteer
            hours[volunteer.id] += plan.minutes / 60
            nights[volunteer.id] += plan.is_night
        if view.missing:
            holes.append(view)
    post_rows = list(
        session.scalars(select(Post).where(Post.community_id == community_id).order_by(Post.id))
    )
    load = sorted(
        ((people_by_id[i], hours[i], nights[i]) for i in people_by_id),
        key=lambda row: (-row[1], row[0].name),
    )
    return RosterView(
        community=community,
        monday=monday,
        days=[monday + dt.timedelta(days=i) for i in range(7)],
        posts=post_rows,
        cells=cells,
        coverage={k: (v[0], v[1]) for k, v in coverage.items()},
        load=load,
        holes=holes,
    )


def hole_text(hole: dict[str, object] | None) -> str:
    """Why a shift is short, in the reader's language (from the solver's code and figures)."""
    if not hole:
        return ""
    code, skill = hole.get("code"), str(hole.get("skill") or "")
    available = hole.get("available", 0)
    if code == "no_skill":
        return _("没有人具备技能“{s}”（或证书已过期）").format(s=skill)
    if code == "no_volunteers":
        return _("还没有志愿者")
    if code == "unavailable":
        if skill:
            return _("具备技能“{s}”的人这个时段都没空").format(s=skill)
        return _("这个时段没有人有空")
    if code == "too_few":
        return _("这个时段有空的只有 {n} 人，都已排在本班").format(n=available)
    if code == "started":
        return _("班次已开始")
    wording = {
        "same_day": _("{n} 人当天已有班次"),
        "rest": _("{n} 人休息时间不足"),
        "night_morning": _("{n} 人刚值完夜班"),
        "week_hours": _("{n} 人本周时长已满"),
        "nights": _("{n} 人连续夜班已达上限"),
        "not_found": _("{n} 人未能排入（计算时间用完）"),
    }
    parts = [text.format(n=hole[key]) for key, text in wording.items() if hole.get(key)]
    if parts:
        return _("这个时段有空的 {n} 人都排不开：{parts}").format(
            n=available, parts="；".join(parts)
        )
    return str(hole.get("reason", ""))


@dataclass(frozen=True)
class WindowHole:
    """A shift short of people in a window (for the dashboard)."""

    shift_id: int
    post: str
    start: dt.datetime  # local
    end: dt.datetime
    missing: int
    why: str


@dataclass(frozen=True)
class WindowCoverage:
    """How well the shifts starting in a window are staffed: people placed (at most each
    shift's minimum) against people required, and the holes."""

    shifts: int
    placed: int
    required: int
    holes: list[WindowHole]


def window_coverage(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    start: dt.datetime,
    end: dt.datetime,
) -> WindowCoverage:
    """Shifts of a community starting in [start, end): counted from the assignments in two
    queries (the next 24 hours hold a few dozen shifts)."""
    community = _community(session, actor, community_id)
    zone = _zone(community)
    shifts = session.execute(
        select(Shift.id, Shift.name, Shift.starts_at, Shift.ends_at, Shift.min_people,
               Shift.hole, Post.name)
        .join(Post, Post.id == Shift.post_id)
        .where(Shift.community_id == community_id, Shift.starts_at >= start,
               Shift.starts_at < end)
        .order_by(Shift.starts_at, Shift.post_id)
    ).all()  # fmt: skip
    on: dict[int, int] = defaultdict(int)
    if shifts:
        for shift_id in session.scalars(
            select(Assignment.shift_id).where(
                Assignment.shift_id.in_([row[0] for row in shifts]),
                Assignment.status == AssignmentStatus.assigned,
            )
        ):
            on[shift_id] += 1
    placed = required = 0
    holes = []
    for shift_id, _name, starts, ends, minimum, hole, post in shifts:
        placed += min(on[shift_id], minimum)
        required += minimum
        if on[shift_id] < minimum:
            holes.append(
                WindowHole(shift_id, post, local(starts, zone), local(ends, zone),
                           minimum - on[shift_id], hole_text(hole))
            )  # fmt: skip
    return WindowCoverage(len(shifts), placed, required, holes)


def post_roster(*, session: Session, actor: Actor, community_id: int, monday: dt.date) -> int:
    """Send the week's roster to the community's group chats (and those below it): one line
    per shift with the names on it and any hole; no phone numbers. Returns the lines sent."""
    from fengchao.notify import service as notify

    view = roster(session=session, actor=actor, community_id=community_id, monday=monday)
    begin_write(session)
    lines = []
    for post in view.posts:
        for day in view.days:
            for cell in view.cells.get((post.id, day), []):
                names = "、".join(v.name for v in cell.people) or "—"
                short = _("（缺 {n} 人）").format(n=cell.missing) if cell.missing else ""
                lines.append(
                    f"{post.name} {day:%m-%d} {cell.shift.name} "
                    f"{cell.start:%H:%M}–{cell.end:%H:%M}：{names}{short}"
                )
    if not lines:
        raise DutyRefused(_("本周还没有排班"), field="week")
    notify.send(
        session=session,
        community_id=community_id,
        kind="duty_roster",
        title=_("{w} 起一周值班表").format(w=monday.strftime("%m-%d")),
        to=[f"group@community:{community_id}+below"],
        body="\n".join(lines)[:19_000],
        link=f"/duty/roster?week={monday.isoformat()}",
        key=f"duty-roster-{community_id}-{monday.isoformat()}-{utcnow():%Y%m%d%H%M}",
        source="duty",
    )
    audit(
        session=session,
        actor=actor,
        action="duty.roster_post",
        object_type="community",
        object_id=community_id,
        community_id=community_id,
        week=monday.isoformat(),
    )
    return len(lines)


# --------------------------------------------------------------------------- repair


def cancel_assignment(
    *, session: Session, actor: Actor, assignment_id: int, now: dt.datetime | None = None
) -> RepairProposal:
    """A volunteer drops out: the assignment is cancelled at once and a repair that changes
    the fewest other assignments is proposed (applied only on confirmation)."""
    now = now or utcnow()
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"assignment {assignment_id}")
    shift = assignment.shift
    community = _community(session, actor, shift.community_id)
    begin_write(session)
    if shift.starts_at <= now:
        raise DutyRefused(_("该班次已经开始或已结束，不能取消"), field="assignment")
    if assignment.status != AssignmentStatus.assigned:
        raise DutyRefused(_("该安排已经取消"), field="assignment")
    zone = _zone(community)
    # The shifts around it: a week either side, so rest and weekly hours are respected.
    near = list(
        session.scalars(
            select(Shift)
            .where(
                Shift.community_id == community.id,
                Shift.starts_at >= shift.starts_at - dt.timedelta(days=7),
                Shift.starts_at < shift.starts_at + dt.timedelta(days=7),
            )
            .options(selectinload(Shift.assignments))
        )
    )
    problem = _problem(session, community, near, now=now, current=True)
    try:
        result = solver.repair(
            problem, [(str(shift.id), str(assignment.volunteer_id))], now=local(now, zone)
        )
    except solver.ProblemError as error:
        raise DutyRefused(str(error), field="assignment") from None
    assignment.status = AssignmentStatus.cancelled
    assignment.cancelled_at = now
    proposal = RepairProposal(
        community_id=community.id,
        assignment_id=assignment.id,
        diff={
            "added": [[int(s), int(v)] for s, v in result.added],
            "removed": [[int(s), int(v)] for s, v in result.removed],
        },
        holes=[
            {"shift": int(h.shift), "missing": h.missing, "reason": h.reason}
            for h in result.holes
            if int(h.shift) == shift.id or h.shift in {s for s, _ in result.added + result.removed}
        ],
        created_by=actor.user_id or None,
    )
    session.add(proposal)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="duty.cancel",
        object_type="duty_assignment",
        object_id=assignment.id,
        community_id=community.id,
        changes=len(result.added) + len(result.removed),
    )
    return proposal


@dataclass
class DiffLine:
    shift: Shift
    start: dt.datetime
    volunteer: Volunteer
    added: bool


def repair_view(
    *, session: Session, actor: Actor, repair_id: int
) -> tuple[RepairProposal, list[DiffLine]]:
    proposal = session.get(RepairProposal, repair_id)
    if proposal is None:
        raise NotFound(f"repair {repair_id}")
    community = _community(session, actor, proposal.community_id)
    zone = _zone(community)
    lines = []
    for key, added in (("added", True), ("removed", False)):
        for shift_id, volunteer_id in proposal.diff.get(key, []):
            shift = session.get(Shift, shift_id)
            volunteer = session.get(Volunteer, volunteer_id)
            if shift is None or volunteer is None:
                continue
            lines.append(DiffLine(shift, local(shift.starts_at, zone), volunteer, added))
    lines.sort(key=lambda line: (line.start, not line.added))
    return proposal, lines


def confirm_repair(
    *, session: Session, actor: Actor, repair_id: int, now: dt.datetime | None = None
) -> RepairProposal:
    """Apply a proposed repair and tell everyone it moves (their inbox)."""
    from fengchao.notify import service as notify

    now = now or utcnow()
    proposal, lines = repair_view(session=session, actor=actor, repair_id=repair_id)
    begin_write(session)
    if proposal.status != RepairStatus.proposed:
        raise DutyRefused(_("该调整已经处理过"), field="repair")
    if any(line.shift.starts_at <= now for line in lines):
        raise DutyRefused(_("调整涉及的班次已经开始，请重新取消并生成调整"), field="repair")
    community = session.get(Community, proposal.community_id)
    assert community is not None
    for line in lines:
        existing = session.scalars(
            select(Assignment).where(
                Assignment.shift_id == line.shift.id,
                Assignment.volunteer_id == line.volunteer.id,
            )
        ).first()
        if line.added:
            if existing is None:
                session.add(
                    Assignment(
                        shift_id=line.shift.id, volunteer_id=line.volunteer.id, source="repair"
                    )
                )
            else:
                existing.status, existing.source = AssignmentStatus.assigned, "repair"
        elif existing is not None:
            session.delete(existing)
    proposal.status = RepairStatus.confirmed
    proposal.decided_at = now
    session.flush()
    for shift in {line.shift for line in lines}:
        session.refresh(shift)
        _choose_lead(session, shift)
    for line in lines:
        if line.volunteer.user_id is None:
            continue
        when = f"{line.start:%m-%d %H:%M} {line.shift.post.name} {line.shift.name}"
        title = (_("新增值班：{w}") if line.added else _("取消值班：{w}")).format(w=when)
        notify.send(
            session=session,
            community_id=community.id,
            kind="duty",
            title=title,
            to=[f"user:{line.volunteer.user_id}"],
            body=_("排班已调整，请查看“我的值班”。"),
            link="/duty/me",
            key=f"duty-repair-{proposal.id}-{line.shift.id}-{line.volunteer.id}",
            source="duty",
            now=now,
        )
    audit(
        session=session,
        actor=actor,
        action="duty.repair_confirm",
        object_type="duty_repair",
        object_id=proposal.id,
        community_id=community.id,
    )
    return proposal


def discard_repair(*, session: Session, actor: Actor, repair_id: int) -> RepairProposal:
    proposal, _lines = repair_view(session=session, actor=actor, repair_id=repair_id)
    begin_write(session)
    if proposal.status == RepairStatus.proposed:
        proposal.status = RepairStatus.discarded
        proposal.decided_at = utcnow()
    return proposal


# --------------------------------------------------------------------------- check-in


def _person_volunteer(session: Session, community_id: int, code: str) -> Volunteer:
    from fengchao.access import codes

    resolved = codes.resolve_code(session, code.strip(), community_id=community_id)
    volunteer = session.scalars(
        select(Volunteer).where(
            Volunteer.person_id == resolved.person_id, Volunteer.community_id == community_id
        )
    ).first()
    if volunteer is None:
        raise DutyRefused(_("此通行码的主人不是本社区登记的志愿者"), field="code")
    return volunteer


class IdempotencyConflict(DutyRefused):
    """The same idempotency key was used before at this post with another request."""

    status = 409


# The header a client names its request with; a refusal about the key names it.
KEY_FIELD = "Idempotency-Key"


@dataclass
class CheckStep:
    """A check-in or check-out done at a post, or the one a retry with its key gets back."""

    row: CheckIn
    volunteer: Volunteer
    action: str  # "in" or "out"
    replayed: bool = False


def _at_post(
    session: Session, actor: Actor, post: Post, code: str | None, volunteer_id: int | None
) -> tuple[Volunteer, str]:
    """Who is checking in or out, and how: by their resident code (the post's staff), or by
    the volunteer's id (typed at the post, or the volunteer on their own page)."""
    if code:
        _community(session, actor, post.community_id)
        return _person_volunteer(session, post.community_id, code), "code"
    if volunteer_id is not None:
        volunteer = _volunteer(session, actor, volunteer_id)
        return volunteer, "self" if volunteer.user_id == actor.user_id else "typed"
    raise DutyRefused(_("请扫描通行码或选择志愿者"), field="code")


def _keyed(
    session: Session, post: Post, volunteer: Volunteer, action: str, key: str | None
) -> CheckIn | None:
    """The row an earlier request with this key made at this post (None without one); the
    same key for another volunteer is refused."""
    if key is None:
        return None
    column = CheckIn.in_key if action == "in" else CheckIn.out_key
    row = session.scalars(select(CheckIn).where(CheckIn.post_id == post.id, column == key)).first()
    if row is not None and row.volunteer_id != volunteer.id:
        raise IdempotencyConflict(
            _("幂等键 {key} 已用于另一个请求").format(key=key[:40]), field=KEY_FIELD
        )
    return row


def check_in(
    *,
    session: Session,
    actor: Actor,
    post_id: int,
    code: str | None = None,
    volunteer_id: int | None = None,
    key: str | None = None,
    now: dt.datetime | None = None,
) -> CheckIn:
    """Check a volunteer in at a post, by their resident code or typed by the post's staff
    (or by the volunteer themselves from their page). Refuses a second check-in, a check-in
    at the wrong post and one with no shift now; a retry with the same ``key`` gets the
    first check-in back."""
    return check_at_post(
        session=session, actor=actor, post_id=post_id, action="in", code=code,
        volunteer_id=volunteer_id, key=key, now=now,
    ).row  # fmt: skip


def check_out(
    *,
    session: Session,
    actor: Actor,
    post_id: int,
    code: str | None = None,
    volunteer_id: int | None = None,
    key: str | None = None,
    now: dt.datetime | None = None,
) -> CheckIn:
    return check_at_post(
        session=session, actor=actor, post_id=post_id, action="out", code=code,
        volunteer_id=volunteer_id, key=key, now=now,
    ).row  # fmt: skip


def check_at_post(
    *,
    session: Session,
    actor: Actor,
    post_id: int,
    action: str,
    code: str | None = None,
    volunteer_id: int | None = None,
    key: str | None = None,
    now: dt.datetime | None = None,
) -> CheckStep:
    """A check-in (``action`` "in") or check-out ("out") at a post. With an idempotency
    ``key``, a retry gets the first answer (``replayed``) rather than a refusal, and the
    same key for someone else is refused (409)."""
    now = now or utcnow()
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"post {post_id}")
    if action not in ("in", "out"):
        raise DutyRefused(_("操作应为签到或签退"), field="action")
    volunteer, method = _at_post(session, actor, post, code, volunteer_id)
    if volunteer.community_id != post.community_id:
        raise NotFound(f"post {post_id}")
    begin_write(session)
    earlier = _keyed(session, post, volunteer, action, key)
    if earlier is not None:
        return CheckStep(earlier, volunteer, action, replayed=True)
    if action == "out":
        return CheckStep(_check_out(session, post, volunteer, key, now), volunteer, action)
    return _check_in(session, post, volunteer, method, key, now)


def _check_in(
    session: Session,
    post: Post,
    volunteer: Volunteer,
    method: str,
    key: str | None,
    now: dt.datetime,
) -> CheckStep:
    mine = list(
        session.scalars(
            select(Assignment)
            .join(Shift)
            .where(
                Assignment.volunteer_id == volunteer.id,
                Assignment.status == AssignmentStatus.assigned,
                Shift.starts_at <= now + CHECK_IN_EARLY,
                Shift.ends_at > now,
            )
        )
    )
    here = [a for a in mine if a.shift.post_id == post.id]
    if not here:
        if mine:
            raise DutyRefused(
                _("{n} 现在应在“{p}”值班，不是这里").format(
                    n=volunteer.name, p=mine[0].shift.post.name
                ),
                field="post",
            )
        raise DutyRefused(_("{n} 此时在这里没有班次").format(n=volunteer.name), field="code")
    assignment = here[0]
    done = session.scalars(select(CheckIn).where(CheckIn.assignment_id == assignment.id)).first()
    if done is not None:
        raise _already_in(session, post, volunteer, done)
    row = CheckIn(
        assignment_id=assignment.id,
        volunteer_id=volunteer.id,
        post_id=post.id,
        method=method,
        checked_in_at=now,
        in_key=key,
    )
    try:
        # Two requests at once (PostgreSQL): the second meets the unique assignment (or
        # key) and answers as if it had come after the first.
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        earlier = _keyed(session, post, volunteer, "in", key)
        if earlier is not None:
            return CheckStep(earlier, volunteer, "in", replayed=True)
        done = session.scalars(
            select(CheckIn).where(CheckIn.assignment_id == assignment.id)
        ).first()
        if done is None:
            raise
        raise _already_in(session, post, volunteer, done) from None
    return CheckStep(row, volunteer, "in")


def _already_in(session: Session, post: Post, volunteer: Volunteer, done: CheckIn) -> DutyRefused:
    zone = _zone(session.get(Community, post.community_id))  # type: ignore[arg-type]
    return DutyRefused(
        _("{n} 已在 {t} 签到").format(
            n=volunteer.name, t=f"{local(done.checked_in_at, zone):%H:%M}"
        ),
        field="code",
    )


def _check_out(
    session: Session, post: Post, volunteer: Volunteer, key: str | None, now: dt.datetime
) -> CheckIn:
    row = session.scalars(
        select(CheckIn)
        .where(
            CheckIn.volunteer_id == volunteer.id,
            CheckIn.post_id == post.id,
            CheckIn.checked_out_at.is_(None),
        )
        .order_by(CheckIn.checked_in_at.desc())
    ).first()
    if row is None:
        raise DutyRefused(_("{n} 在这里没有未签退的签到").format(n=volunteer.name), field="code")
    row.checked_out_at = now
    row.out_key = key
    return row


def hours_served(*, session: Session, volunteer_ids: Sequence[int]) -> dict[int, float]:
    """Hours between check-in and check-out (capped at the shift's end), per volunteer."""
    if not volunteer_ids:
        return {}
    rows = session.execute(
        select(CheckIn.volunteer_id, CheckIn.checked_in_at, CheckIn.checked_out_at, Shift.ends_at)
        .join(Assignment, CheckIn.assignment_id == Assignment.id)
        .join(Shift, Assignment.shift_id == Shift.id)
        .where(CheckIn.volunteer_id.in_(volunteer_ids), CheckIn.checked_out_at.is_not(None))
    )
    out: dict[int, float] = defaultdict(float)
    for volunteer_id, began, ended, shift_end in rows:
        if ended is None:
            continue
        stop = min(ended, shift_end + dt.timedelta(hours=1))
        out[volunteer_id] += max(0.0, (stop - began).total_seconds() / 3600)
    return {k: round(v, 2) for k, v in out.items()}


def late_check_in_alerts(*, session: Session, now: dt.datetime | None = None) -> int:
    """Tell each shift's lead (else the community's workers) who has not checked in 15
    minutes after the start. Idempotent: one message per missing assignment."""
    from fengchao.notify import service as notify

    now = now or utcnow()
    begin_write(session)
    rows = session.scalars(
        select(Assignment)
        .join(Shift)
        .where(
            Assignment.status == AssignmentStatus.assigned,
            Shift.starts_at <= now - LATE_AFTER,
            Shift.starts_at > now - dt.timedelta(hours=6),
            ~Assignment.id.in_(select(CheckIn.assignment_id)),
        )
        .options(selectinload(Assignment.shift), selectinload(Assignment.volunteer))
    )
    sent = 0
    for assignment in rows:
        shift = assignment.shift
        lead = session.get(Volunteer, shift.lead_id) if shift.lead_id else None
        if lead is not None and lead.user_id and lead.id != assignment.volunteer_id:
            to = [f"user:{lead.user_id}"]
        else:
            to = [f"community_worker@community:{shift.community_id}"]
        community = session.get(Community, shift.community_id)
        assert community is not None
        start = local(shift.starts_at, _zone(community))
        notify.send(
            session=session,
            community_id=shift.community_id,
            kind="duty_late",
            title=_("{n} 未签到：{p} {t}").format(
                n=assignment.volunteer.name, p=shift.post.name, t=f"{start:%m-%d %H:%M}"
            ),
            to=to,
            urgency="urgent",
            link=f"/duty/roster?week={monday_of(start.date()).isoformat()}",
            key=f"duty-late-{assignment.id}",
            source="duty",
            now=now,
        )
        sent += 1
    return sent


# --------------------------------------------------------------------------- my page


@dataclass
class MyDuty:
    volunteer: Volunteer
    upcoming: list[ShiftView]
    hours_served: float


def my_duty(*, session: Session, actor: Actor, now: dt.datetime | None = None) -> MyDuty | None:
    require(actor, Permission.duty_self)
    volunteer = my_volunteer(session=session, actor=actor)
    if volunteer is None:
        return None
    now = now or utcnow()
    community = session.get(Community, volunteer.community_id)
    assert community is not None
    zone = _zone(community)
    assignments = session.scalars(
        select(Assignment)
        .join(Shift)
        .where(
            Assignment.volunteer_id == volunteer.id,
            Assignment.status == AssignmentStatus.assigned,
            Shift.ends_at > now,
        )
        .order_by(Shift.starts_at)
    )
    upcoming = [
        ShiftView(
            shift=a.shift,
            start=local(a.shift.starts_at, zone),
            end=local(a.shift.ends_at, zone),
            people=[],
            lead=None,
            missing=0,
        )
        for a in assignments
    ]
    served = hours_served(session=session, volunteer_ids=[volunteer.id]).get(volunteer.id, 0.0)
    return MyDuty(volunteer=volunteer, upcoming=upcoming, hours_served=served)


def volunteer_shifts(
    *, session: Session, actor: Actor, volunteer_id: int
) -> tuple[Volunteer, list[ShiftView]]:
    """Every shift of one volunteer from a week ago on (the calendar export)."""
    volunteer = _volunteer(session, actor, volunteer_id)
    community = session.get(Community, volunteer.community_id)
    assert community is not None
    zone = _zone(community)
    rows = session.scalars(
        select(Assignment)
        .join(Shift)
        .where(
            Assignment.volunteer_id == volunteer.id,
            Assignment.status == AssignmentStatus.assigned,
            Shift.ends_at > utcnow() - dt.timedelta(days=7),
        )
        .order_by(Shift.starts_at)
    )
    return volunteer, [
        ShiftView(
            a.shift, local(a.shift.starts_at, zone), local(a.shift.ends_at, zone), [], None, 0
        )
        for a in rows
    ]


__all__ = ["DutyRefused", "Forbidden"]
