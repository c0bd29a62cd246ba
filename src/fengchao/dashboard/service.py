"""The community at a glance (M16): every section's figures for one grid node and one
local day, gathered through the other slices' services (never their tables).

The account's scope is narrowed to the node asked for (a node within its scope, else
:class:`NotFound`), and each slice's service then filters by that narrower scope exactly
as it filters by the account's own: a building lead asking for their building sees what
the slices show them, nothing more. A section the role does not cover is left out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from fengchao.access import policy
from fengchao.access import service as access
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, GridScope, NotFound, Permission, require
from fengchao.dashboard import figures as f
from fengchao.dashboard import traffic as kept_traffic
from fengchao.db import utcnow
from fengchao.duty import service as duty
from fengchao.gridwork import help as help_service
from fengchao.gridwork import sweeps as sweep_service
from fengchao.gridwork.scoping import may_work
from fengchao.registry import figures as figures_cache
from fengchao.registry import homes
from fengchao.registry import scope as grid
from fengchao.registry import service as registry
from fengchao.registry.scope import household_in_scope
from fengchao.sampling import coverage as sampling_coverage
from fengchao.sampling import service as sampling
from fengchao.settings import get_settings
from fengchao.tracing import service as tracing
from fengchao.web.i18n import _


def zone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """A local day as UTC instants [start, end)."""
    start = dt.datetime.combine(day, dt.time(), zone())
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone())
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def today() -> dt.date:
    return dt.datetime.now(zone()).date()


# --- the node ------------------------------------------------------------------------------


def parse_node(text: str | None) -> tuple[ScopeLevel, int] | None:
    """``community:3`` → (community, 3); None for anything else."""
    if not text or ":" not in text:
        return None
    level, _sep, number = text.partition(":")
    if level not in ScopeLevel.__members__ or not number.isdigit() or len(number) > 9:
        return None
    return ScopeLevel(level), int(number)


def narrowed(
    *, session: Session, actor: Actor, level: ScopeLevel | None = None, node_id: int | None = None
) -> tuple[Actor, f.Node]:
    """The actor limited to a node within its scope (its own node by default), and the node.
    A node outside the scope, or no such node: :class:`NotFound`."""
    require(actor, Permission.dashboard_read)
    if level is None or node_id is None:
        level, node_id = actor.scope.level, actor.scope.node_id
    lineage = grid.node_lineage(session=session, level=level, node_id=node_id)
    if (actor.scope.level, actor.scope.node_id) not in lineage:
        raise NotFound(f"{level}:{node_id}")
    community = next((n for lv, n in lineage if lv == ScopeLevel.community), None)
    scope = GridScope(level, node_id)
    label = grid.scope_label(session=session, scope=scope)
    node = f.Node(level.value, node_id, label, community)
    if scope == actor.scope:
        return actor, node
    return dataclasses.replace(actor, scope=scope, community_id=community), node


def choices(*, session: Session, actor: Actor) -> list[f.Node]:
    """The nodes an account may narrow the dashboard to: its own node, then each community,
    compound and building below it."""
    own = GridScope(actor.scope.level, actor.scope.node_id)
    found = [
        f.Node(own.level.value, own.node_id, grid.scope_label(session=session, scope=own),
               actor.community_id)
    ]  # fmt: skip
    for choice in grid.nodes_in_scope(session=session, scope=actor.scope):
        if (choice.level, choice.node_id) != (own.level, own.node_id):
            found.append(f.Node(choice.level.value, choice.node_id, choice.label,
                                choice.community_id))  # fmt: skip
    return found


# --- sections ------------------------------------------------------------------------------


def alert_figure(*, session: Session, actor: Actor, node: f.Node) -> f.AlertFigure | None:
    if not actor.can(Permission.access_read) or node.community_id is None:
        return None
    settings = access.alert_settings(session=session, community_id=node.community_id)
    places = {s.place: s.level for s in settings}
    community_level = places.get("community", "normal")
    overrides = []
    own_compound = _compound_of(session, node)
    for s in settings:
        if s.compound_id is None or s.level == community_level:
            continue
        if own_compound is not None and s.compound_id != own_compound:
            continue
        label = grid.scope_label(
            session=session, scope=GridScope(ScopeLevel.compound, s.compound_id)
        )
        overrides.append((label, _(access.LEVEL_LABELS[policy.AlertLevel(s.level)])))
    level = community_level
    if own_compound is not None:
        level = places.get(f"compound:{own_compound}", community_level)
    label = _(access.LEVEL_LABELS[policy.AlertLevel(level)])
    return f.AlertFigure(level, label, overrides)


def _compound_of(session: Session, node: f.Node) -> int | None:
    if node.level == ScopeLevel.compound:
        return node.node_id
    if node.level == ScopeLevel.building:
        lineage = grid.node_lineage(
            session=session, level=ScopeLevel.building, node_id=node.node_id
        )
        return next((n for lv, n in lineage if lv == ScopeLevel.compound), None)
    return None


def registry_fingerprint(session: Session, actor: Actor) -> tuple[object, ...]:
    """What changes whenever the registry of the actor's scope does (read once a request:
    the registration and the sampling figures are both kept under it)."""
    return figures_cache.fingerprint(session, household_in_scope(actor.scope))


def registration_figure(
    *, session: Session, actor: Actor, current: tuple[object, ...] | None = None
) -> f.RegistrationFigure | None:
    if not actor.can(Permission.registry_read):
        return None
    found = homes.registration(session=session, actor=actor, current=current)
    c = found.coverage
    return f.RegistrationFigure(
        households=found.households,
        occupied=c.occupied_households,
        registered=c.registered_households,
        people=found.people,
        household_pct=c.household_coverage,
        phone_pct=c.phone_coverage,
        face_pct=c.face_coverage,
        id_pct=c.id_coverage,
    )


def traffic_days(
    *, session: Session, actor: Actor, first_day: dt.date, days: int, now: dt.datetime | None = None
) -> list[f.DayTraffic] | None:
    if not actor.can(Permission.access_read):
        return None
    return kept_traffic.days(
        session=session, actor=actor, first_day=first_day, count=days, now=now or utcnow()
    )


def _round_for(session: Session, actor: Actor, node: f.Node, day: dt.date) -> int | None:
    """The round of ``day`` in the node's community; else, for today, the latest round
    still open that began before it."""
    found = [
        r
        for r in sampling.rounds(session, actor, limit=20)
        if r.community_id == node.community_id and r.day <= day
    ]
    exact = [r for r in found if r.day == day]
    if exact:
        return exact[0].id
    if day == today():
        still_open = [r for r in found if not r.closed]
        return still_open[0].id if still_open else None
    return None


def sampling_figure(
    *,
    session: Session,
    actor: Actor,
    node: f.Node,
    day: dt.date,
    registry_print: tuple[object, ...] | None = None,
) -> f.SamplingFigure | None:
    if not actor.can(Permission.sampling_coverage) or node.community_id is None:
        return None
    round_id = _round_for(session, actor, node, day)
    if round_id is None:
        return None
    # Kept between requests while neither the round's swabs nor the registry change.
    current = (
        *sampling_coverage.fingerprint(session=session, round_id=round_id),
        *(registry_print or registry_fingerprint(session, actor)),
    )
    community_id = node.community_id
    return figures_cache.cached(
        ("dashboard-sampling", str(session.get_bind().engine.url), round_id, actor.scope),
        current,
        lambda: _sampling(session, actor, round_id, community_id),
    )


def _sampling(session: Session, actor: Actor, round_id: int, community_id: int) -> f.SamplingFigure:
    report = sampling_coverage.coverage(session=session, actor=actor, round_id=round_id)
    places = registry.building_places(session=session, community_id=community_id)
    cells = [
        f.BuildingCell(
            b.building_id,
            places.get(b.building_id, ("", b.name))[0],
            places.get(b.building_id, ("", b.name))[1],
            b.expected,
            b.sampled,
        )
        for b in report.buildings
    ]
    target = report.per_hour[0][2] if report.per_hour else 0
    return f.SamplingFigure(
        round_id=round_id,
        name=report.round.name,
        day=report.round.day,
        expected=report.expected,
        sampled=report.sampled,
        exempt=report.exempt,
        target_per_hour=target,
        per_hour=[(hour, swabs) for hour, swabs, _target in report.per_hour],
        buildings=cells,
    )


def roster_figure(
    *, session: Session, actor: Actor, node: f.Node, start: dt.datetime, end: dt.datetime
) -> f.RosterFigure | None:
    """Shifts of the node's community (duty is kept per community) in [start, end)."""
    if not actor.can(Permission.duty_manage) or node.community_id is None:
        return None
    found = duty.window_coverage(
        session=session, actor=actor, community_id=node.community_id, start=start, end=end
    )
    return f.RosterFigure(
        start.astimezone(zone()), end.astimezone(zone()), found.shifts, found.placed,
        found.required, found.holes,
    )  # fmt: skip


def help_figure(
    *, session: Session, actor: Actor, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> f.HelpFigure | None:
    if not may_work(actor):
        return None
    rows = help_service.open_rows(session=session, actor=actor)
    made, closed = help_service.flow(session=session, actor=actor, start=start, end=end)
    return f.help_figure(rows, now, made, closed)


def sweep_figures(*, session: Session, actor: Actor) -> list[f.SweepFigure] | None:
    if not may_work(actor):
        return None
    out = []
    for sweep in sweep_service.active(session=session, actor=actor)[:5]:
        found = sweep_service.progress(session=session, actor=actor, sweep_id=sweep.id)
        whole = found.whole
        out.append(
            f.SweepFigure(sweep.id, sweep.title, whole.total, whole.done, whole.nobody_home,
                          whole.needs)
        )  # fmt: skip
    return out


def tracing_figure(
    *, session: Session, actor: Actor, start: dt.datetime, end: dt.datetime
) -> f.TracingFigure | None:
    if not actor.can(Permission.tracing_manage) or actor.community_id is None:
        return None
    found = tracing.follow_up(session=session, actor=actor, start=start, end=end)
    return f.TracingFigure(found.open_cases, found.new_cases, found.contacts, found.not_isolated)


# --- whole days ----------------------------------------------------------------------------


def day_figures(
    *,
    session: Session,
    actor: Actor,
    node: f.Node,
    day: dt.date,
    traffic: f.DayTraffic | None = None,
    now: dt.datetime | None = None,
) -> f.DayFigures:
    """Every section for ``node`` (``actor`` already narrowed to it) on ``day``. For today
    the roster is the next 24 hours from ``now``; for another day, that day's shifts."""
    now = now or utcnow()
    start, end = day_bounds(day)
    if traffic is None:
        days = traffic_days(session=session, actor=actor, first_day=day, days=1)
        traffic = days[0] if days else None
    window = (now, now + dt.timedelta(hours=24)) if day == today() else (start, end)
    printed = registry_fingerprint(session, actor)
    return f.DayFigures(
        node=node,
        day=day,
        computed_at=now,
        alert=alert_figure(session=session, actor=actor, node=node),
        registration=registration_figure(session=session, actor=actor, current=printed),
        traffic=traffic,
        sampling=sampling_figure(
            session=session, actor=actor, node=node, day=day, registry_print=printed
        ),
        roster=roster_figure(
            session=session, actor=actor, node=node, start=window[0], end=window[1]
        ),
        help=help_figure(session=session, actor=actor, start=start, end=end, now=now),
        sweeps=sweep_figures(session=session, actor=actor),
        tracing=tracing_figure(session=session, actor=actor, start=start, end=end),
    )


def dashboard(
    *,
    session: Session,
    actor: Actor,
    level: ScopeLevel | None = None,
    node_id: int | None = None,
    day: dt.date | None = None,
    now: dt.datetime | None = None,
) -> f.Dashboard:
    """The page's data for a node (the account's own by default): the day's figures and the
    day before's traffic, from one grouped query over both days."""
    me, node = narrowed(session=session, actor=actor, level=level, node_id=node_id)
    day = day or today()
    both = traffic_days(session=session, actor=me, first_day=day - dt.timedelta(days=1), days=2)
    figures = day_figures(
        session=session, actor=me, node=node, day=day, traffic=both[1] if both else None, now=now
    )
    return f.Dashboard(figures, both[0] if both else None)


def day_pair(
    *,
    session: Session,
    actor: Actor,
    level: ScopeLevel | None = None,
    node_id: int | None = None,
    day: dt.date,
    now: dt.datetime | None = None,
) -> f.DayPair:
    """A day's figures and the day before's (for the daily report's "change from the day
    before"). Stock figures are the same in both (they are as of now)."""
    me, node = narrowed(session=session, actor=actor, level=level, node_id=node_id)
    both = traffic_days(session=session, actor=me, first_day=day - dt.timedelta(days=1), days=2)
    previous_day = day - dt.timedelta(days=1)
    return f.DayPair(
        day=day_figures(session=session, actor=me, node=node, day=day,
                        traffic=both[1] if both else None, now=now),
        previous=day_figures(session=session, actor=me, node=node, day=previous_day,
                             traffic=both[0] if both else None, now=now),
    )  # fmt: skip


def street_view(
    *, session: Session, actor: Actor, day: dt.date | None = None, now: dt.datetime | None = None
) -> list[f.Dashboard]:
    """Each community of a street-level account, side by side (same figures as each
    community's own page)."""
    require(actor, Permission.dashboard_read)
    if actor.scope.level != ScopeLevel.street:
        raise NotFound("street")
    return [
        dashboard(session=session, actor=actor, level=ScopeLevel.community, node_id=c.id,
                  day=day, now=now)
        for c in grid.communities_in_scope(session=session, scope=actor.scope)
    ]  # fmt: skip


def node_label(*, session: Session, actor: Actor) -> str:
    """The name of the account's own node."""
    return grid.scope_label(session=session, scope=actor.scope)
