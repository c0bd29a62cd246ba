"""The daily report (日报): a web-free model of its figures and charts, and how it is gathered.

:class:`ReportData` is what the renderers (``report_xlsx.write_xlsx``,
``report_pdf.write_pdf``) draw: plain frozen dataclasses, no database, no web. It is filled
by :func:`build_report_data` from the other slices' services, one small function per
section (below the model), so that the dashboard's aggregations can take their place one
section at a time. Texts are in the language of the current context (Chinese, the report's
language, unless a caller asks otherwise).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, Forbidden, GridScope, NotFound
from fengchao.registry.models import Community
from fengchao.web.i18n import DEFAULT_LANGUAGE, _, current_language

log = logging.getLogger(__name__)

Number = int | float
ChartKind = Literal["bar", "line", "heatmap"]


# --- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One figure of a section: its value on the report's day and on the day before.

    ``yesterday`` is None for a figure that only exists as it is now (open requests: no
    history is kept of them); ``link`` is the path of the list behind the figure."""

    label: str
    today: Number | None
    yesterday: Number | None = None
    unit: str = ""
    link: str | None = None

    @property
    def change(self) -> Number | None:
        if self.today is None or self.yesterday is None:
            return None
        difference = self.today - self.yesterday
        return round(difference, 1) if isinstance(difference, float) else difference


@dataclass(frozen=True)
class Series:
    """A named row of values, one per category of its chart."""

    name: str
    values: tuple[Number, ...]


@dataclass(frozen=True)
class Chart:
    """A chart drawn on the server. Bar and line charts have ``categories`` and
    ``series``; a heat map has ``rows`` × ``columns`` labels and a ``matrix`` of values
    (None: no such cell, e.g. a compound with fewer buildings)."""

    kind: ChartKind
    title: str
    categories: tuple[str, ...] = ()
    series: tuple[Series, ...] = ()
    rows: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    matrix: tuple[tuple[Number | None, ...], ...] = ()
    unit: str = ""


@dataclass(frozen=True)
class Section:
    """One part of the report (one worksheet, one heading in the PDF)."""

    key: str  # stable name: registry, access, sampling, duty, gridwork, tracing
    title: str
    figures: tuple[Figure, ...] = ()
    charts: tuple[Chart, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ReportData:
    """The daily report of one node of the grid (a community) for one local day."""

    node: str  # "宏路街道 宏侨社区"
    day: dt.date
    generated_at: dt.datetime  # aware, in the community's time zone
    sections: tuple[Section, ...] = ()

    @property
    def title(self) -> str:
        return _("{node} 疫情防控日报 {day}").format(node=self.node, day=self.day.isoformat())


# --- gathering ------------------------------------------------------------------------------
# One function per section, each reading other slices through their services only. When
# the dashboard's aggregations (dashboard/service.py) land, a section's function becomes a
# call to them; nothing else here changes.


def report_actor(community_id: int) -> Actor:
    """The actor the command line and the worker report as: the whole community, no more."""
    scope = GridScope(ScopeLevel.community, community_id)
    return Actor(0, "report", _("日报（系统）"), Role.admin, scope, community_id)


@dataclass
class _Day:
    """The report's day and the day before, as UTC bounds of local days."""

    day: dt.date
    zone: ZoneInfo
    start: dt.datetime = field(init=False)
    end: dt.datetime = field(init=False)
    before: dt.datetime = field(init=False)

    def __post_init__(self) -> None:
        def midnight(d: dt.date) -> dt.datetime:
            return dt.datetime.combine(d, dt.time(), self.zone).astimezone(dt.UTC)

        self.start = midnight(self.day)
        self.end = midnight(self.day + dt.timedelta(days=1))
        self.before = midnight(self.day - dt.timedelta(days=1))

    @property
    def yesterday(self) -> dt.date:
        return self.day - dt.timedelta(days=1)

    def local_day(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.zone).date()


def _percent(part: Number, whole: Number) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _registry(session: Session, actor: Actor, community_id: int, days: _Day) -> Section:
    from fengchao.registry import homes

    seen = homes.overview(session=session, actor=actor)
    cov = seen.coverage
    return Section(
        "registry",
        _("人口登记（应录尽录）"),
        (
            Figure(_("户数"), seen.households, unit=_("户"), link="/registry"),
            Figure(_("登记人数"), seen.people, unit=_("人"), link="/registry/overview"),
            Figure(
                _("有人登记的在住户"),
                _percent(cov.registered_households, cov.occupied_households),
                unit="%",
                link="/registry/completeness",
            ),
            Figure(_("有手机号"), _percent(cov.with_phone, cov.people), unit="%"),
            Figure(_("已录人脸"), _percent(cov.with_face, cov.people), unit="%"),
            Figure(_("有身份证号"), _percent(cov.with_id, cov.people), unit="%"),
        ),
        note=_("登记数为生成报告时的数字。"),
    )


def _access(session: Session, actor: Actor, community_id: int, days: _Day) -> Section:
    from fengchao.access import records

    # The day before and the day in one grouped count (the dashboard's own query).
    counts = records.traffic(session=session, actor=actor, first_day=days.yesterday, days=2)
    today = [c for c in counts if c.hour >= 24]
    before = [c for c in counts if c.hour < 24]

    def total(rows: list[records.TrafficCount], **match: str) -> int:
        return sum(
            c.count for c in rows if all(getattr(c, key) == value for key, value in match.items())
        )

    def both(**match: str) -> tuple[int, int]:
        return total(today, **match), total(before, **match)

    fevers = sum(c.fever for c in today), sum(c.fever for c in before)

    def per_hour(rows: list[records.TrafficCount]) -> tuple[int, ...]:
        values = [0] * 24
        for c in rows:
            values[c.hour % 24] += c.count
        return tuple(values)

    after = days.day + dt.timedelta(days=1)
    link = f"/access/records?start={days.day.isoformat()}T00:00&end={after.isoformat()}T00:00"
    kinds = (
        ("face", _("刷脸")),
        ("plate", _("车牌")),
        ("code", _("通行码")),
        ("visitor", _("访客")),
        ("other", _("其他")),
    )
    return Section(
        "access",
        _("出入管理"),
        (
            Figure(_("通行记录"), *both(), _("次"), link),
            Figure(_("进"), *both(direction="in"), _("次")),
            Figure(_("出"), *both(direction="out"), _("次")),
            Figure(_("放行"), *both(decision="allow"), _("次")),
            Figure(_("拒绝"), *both(decision="deny"), _("次")),
            Figure(_("体温异常"), fevers[0], fevers[1], _("次")),
            *(Figure(label, *both(kind=kind), _("次")) for kind, label in kinds),
        ),
        (
            Chart(
                "line",
                _("每小时通行"),
                tuple(f"{h:02d}" for h in range(24)),
                (Series(_("当日"), per_hour(today)), Series(_("前一日"), per_hour(before))),
                unit=_("次"),
            ),
        ),
    )


def _sampling(session: Session, actor: Actor, community_id: int, days: _Day) -> Section:
    from fengchao.registry import service as registry
    from fengchao.sampling import coverage as sampling_coverage
    from fengchao.sampling import service as sampling

    def swabs(since: dt.datetime) -> int:
        return sampling_coverage.sampled_today(
            session=session, community_id=community_id, since=since
        )

    after_day = swabs(days.end)
    on_day = swabs(days.start) - after_day
    on_yesterday = swabs(days.before) - on_day - after_day
    figures = [Figure(_("当日采样"), on_day, on_yesterday, _("人次"))]
    charts: list[Chart] = []
    current = [
        r
        for r in sampling.rounds(session, actor)
        if r.community_id == community_id and r.day <= days.day
    ]
    if current:
        found = max(current, key=lambda r: (r.day, r.id))
        seen = sampling_coverage.coverage(session=session, actor=actor, round_id=found.id)
        link = f"/sampling/rounds/{found.id}/coverage"
        figures += [
            Figure(_("本轮应采"), seen.expected, unit=_("人"), link=link),
            Figure(_("本轮已采"), seen.sampled, unit=_("人"), link=link),
            Figure(_("本轮覆盖率"), round(seen.percent, 1), unit="%", link=link),
            Figure(_("本轮未采"), max(0, seen.expected - seen.sampled), unit=_("人")),
        ]
        if seen.per_hour:
            charts.append(
                Chart(
                    "bar",
                    _("每小时采样（{name}）").format(name=found.name),
                    tuple(hour for hour, _n, _t in seen.per_hour),
                    (
                        Series(_("采样"), tuple(n for _h, n, _t in seen.per_hour)),
                        Series(_("目标"), tuple(t for _h, _n, t in seen.per_hour)),
                    ),
                    unit=_("人次"),
                )
            )
        percent = {b.building_id: round(b.percent, 1) for b in seen.buildings}
        tree = registry.grid_tree(session=session, actor=actor, community_id=community_id)
        width = max((len(node.buildings) for node in tree), default=0)
        if percent and width:
            charts.append(
                Chart(
                    "heatmap",
                    _("各楼栋采样覆盖率"),
                    rows=tuple(node.compound.name for node in tree),
                    columns=tuple(str(i + 1) for i in range(width)),
                    matrix=tuple(
                        tuple(
                            percent.get(node.buildings[i].building.id)
                            if i < len(node.buildings)
                            else None
                            for i in range(width)
                        )
                        for node in tree
                    ),
                    unit="%",
                )
            )
        note = _("本轮：{name}（{day}）").format(name=found.name, day=found.day.isoformat())
    else:
        note = _("没有进行中的采样轮次。")
    return Section("sampling", _("核酸采样"), tuple(figures), tuple(charts), note)


def _duty(session: Session, actor: Actor, community_id: int, days: _Day) -> Section:
    from fengchao.duty import service as duty

    def day_shifts(day: dt.date) -> list[duty.ShiftView]:
        view = duty.roster(
            session=session, actor=actor, community_id=community_id, monday=duty.monday_of(day)
        )
        return [s for cell in view.cells.values() for s in cell if s.start.date() == day]

    today, before = day_shifts(days.day), day_shifts(days.yesterday)

    def required(shifts: list[duty.ShiftView]) -> int:
        return sum(s.shift.min_people for s in shifts)

    def placed(shifts: list[duty.ShiftView]) -> int:
        return sum(min(len(s.people), s.shift.min_people) for s in shifts)

    def holes(shifts: list[duty.ShiftView]) -> int:
        return sum(1 for s in shifts if s.missing)

    def covered(shifts: list[duty.ShiftView]) -> float | None:
        return _percent(placed(shifts), required(shifts))

    posts: dict[str, list[int]] = {}
    for s in today:
        row = posts.setdefault(s.shift.post.name, [0, 0])
        row[0] += min(len(s.people), s.shift.min_people)
        row[1] += s.shift.min_people
    link = f"/duty/roster?week={duty.monday_of(days.day).isoformat()}"
    charts = (
        (
            Chart(
                "bar",
                _("各岗位排班"),
                tuple(posts),
                (
                    Series(_("已排"), tuple(v[0] for v in posts.values())),
                    Series(_("需要"), tuple(v[1] for v in posts.values())),
                ),
                unit=_("人次"),
            ),
        )
        if posts
        else ()
    )
    return Section(
        "duty",
        _("志愿者值守"),
        (
            Figure(_("班次"), len(today), len(before), _("个"), link),
            Figure(_("需要人次"), required(today), required(before), _("人次")),
            Figure(_("已排人次"), placed(today), placed(before), _("人次")),
            Figure(_("排班覆盖率"), covered(today), covered(before), "%"),
            Figure(_("缺人的班次"), holes(today), holes(before), _("个"), link),
        ),
        charts,
    )


def _gridwork(session: Session, actor: Actor, community_id: int, days: _Day) -> Section:
    from fengchao.gridwork import help as requests
    from fengchao.gridwork import sweeps
    from fengchao.gridwork.models import HelpStatus

    counts = requests.counts(session=session, actor=actor)
    waiting = requests.open_requests(session=session, actor=actor, limit=2000)
    now = dt.datetime.now(dt.UTC)
    ages = {_("1天内"): 0, _("1至3天"): 0, _("3天以上"): 0}
    for request in waiting:
        hours = (now - request.created_at).total_seconds() / 3600
        label = _("1天内") if hours < 24 else _("1至3天") if hours < 72 else _("3天以上")
        ages[label] += 1
    created = [days.local_day(r.created_at) for r in waiting]
    figures = [
        Figure(_("待接单求助"), counts.get(HelpStatus.open, 0), unit=_("件"), link="/gridwork"),
        Figure(_("处理中求助"), counts.get(HelpStatus.accepted, 0), unit=_("件")),
        Figure(_("已升级"), sum(1 for r in waiting if r.escalations), unit=_("件")),
        Figure(
            _("当日新增且未办结"),
            created.count(days.day),
            created.count(days.yesterday),
            _("件"),
        ),
    ]
    for sweep in sweeps.active(session=session, actor=actor)[:3]:
        progress = sweeps.progress(session=session, actor=actor, sweep_id=sweep.id)
        figures.append(
            Figure(
                _("扫楼进度：{name}").format(name=sweep.title),
                progress.whole.percent,
                unit="%",
                link=f"/gridwork/sweeps/{sweep.id}",
            )
        )
    chart = Chart(
        "bar",
        _("未办结求助（按等待时间）"),
        tuple(ages),
        (Series(_("件数"), tuple(ages.values())),),
        unit=_("件"),
    )
    return Section(
        "gridwork",
        _("求助与扫楼"),
        tuple(figures),
        (chart,),
        _("求助与扫楼为生成报告时的数字。"),
    )


def _tracing(session: Session, actor: Actor, community_id: int, days: _Day) -> Section:
    from fengchao.tracing import service as tracing
    from fengchao.tracing.models import CaseStatus

    cases = tracing.list_cases(session=session, actor=actor)
    confirmed = [days.local_day(c.confirmed_at) for c in cases]
    kpis = tracing.kpis(session=session, actor=actor)
    return Section(
        "tracing",
        _("流调溯源"),
        (
            Figure(
                _("当日确诊"),
                confirmed.count(days.day),
                confirmed.count(days.yesterday),
                _("例"),
                "/tracing",
            ),
            Figure(
                _("在管病例"),
                sum(1 for c in cases if c.status == CaseStatus.open),
                unit=_("例"),
                link="/tracing",
            ),
            Figure(_("超24小时未管控的密接"), kpis.lost_to_follow_up, unit=_("人")),
        ),
    )


Gatherer = Callable[[Session, Actor, int, _Day], Section]
SECTIONS: tuple[Gatherer, ...] = (_registry, _access, _sampling, _duty, _gridwork, _tracing)


def build_report_data(
    session: Session,
    actor: Actor,
    community_id: int,
    day: dt.date,
    *,
    now: dt.datetime | None = None,
    sections: Sequence[Gatherer] = SECTIONS,
) -> ReportData:
    """The report of ``community_id`` for the local ``day``, as ``actor`` may see it.

    A section whose service refuses the actor is left out (a role that may read the
    registry but not tracing gets a report without tracing); the community itself must be
    in the actor's scope (else :class:`NotFound`)."""
    from fengchao.registry import scope as grid

    if not any(
        c.id == community_id for c in grid.communities_in_scope(session=session, scope=actor.scope)
    ):
        raise NotFound(f"community {community_id}")
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound(f"community {community_id}")
    if actor.scope.level == ScopeLevel.street:
        # A street's account reports on one of its communities: the figures of that one only.
        actor = replace(
            actor, scope=GridScope(ScopeLevel.community, community_id), community_id=community_id
        )
    zone = ZoneInfo(community.timezone or "Asia/Shanghai")
    days = _Day(day, zone)
    gathered = []
    for gather in sections:
        try:
            gathered.append(gather(session, actor, community_id, days))
        except (Forbidden, NotFound):
            log.info("report section %s left out for %s", gather.__name__, actor.username)
    node = f"{community.street.name} {community.name}" if community.street else community.name
    return ReportData(
        node=node,
        day=day,
        generated_at=(now or dt.datetime.now(dt.UTC)).astimezone(zone),
        sections=tuple(gathered),
    )


def parse_day(text: str) -> dt.date:
    """A report date as typed (YYYY-MM-DD); a clear refusal naming the field otherwise."""
    from fengchao.auth.service import Refusal

    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise Refusal(
            _("日期（date）格式不对：{text}，应为 YYYY-MM-DD").format(text=text[:20]), field="date"
        ) from None


@contextmanager
def in_report_language() -> Iterator[None]:
    """The report goes up to the street office in Chinese, whatever the language of the
    page that asked for it."""
    token = current_language.set(DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        current_language.reset(token)


def community_for(session: Session, actor: Actor, community_id: int | None) -> Community:
    """The community a report is asked for: the one named if it lies in the actor's
    scope (else :class:`NotFound`), or the first of the actor's communities."""
    from fengchao.registry import scope as grid

    mine = grid.communities_in_scope(session=session, scope=actor.scope)
    found = next((c for c in mine if community_id in (None, c.id)), None)
    if found is None:
        raise NotFound(f"community {community_id}")
    return found


def file_stem(data: ReportData) -> str:
    return f"daily-report-{data.day.isoformat()}"
