"""Contact tracing: open a case, find its contacts from the records, decide on each, and
protect the confirmed ones (isolation, the individual sampling list, their building leads
told). Reads other slices through their services and never writes their records, except
through the registry's own edit service (health status, with its history)."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import passages as access_passages
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.notify import service as notify
from fengchao.registry import edits
from fengchao.registry import service as registry
from fengchao.registry.models import HealthStatus
from fengchao.settings import get_settings
from fengchao.tracing.contacts import (
    Contact,
    Dismissal,
    Rules,
    Subject,
    Window,
    find_contacts,
    lookback_window,
)
from fengchao.tracing.models import (
    CaseResult,
    CaseSource,
    CaseStatus,
    ContactDecision,
    ContactStatus,
    TracingCase,
)
from fengchao.tracing.records import DatabaseRecords
from fengchao.visitors import service as visitors
from fengchao.web.i18n import _


class TracingRefusal(Refusal):
    status = 422


class StaleDecision(TracingRefusal):
    """A decision made from a page that no longer shows the contact as it is."""

    status = 409


EARLIEST_ANCHOR = dt.timedelta(days=30)  # onset or sampling at most this long before confirmation


@dataclass
class TraceResult:
    """Contacts of a case, with what the records could not cover."""

    case: Subject
    window: Window
    contacts: list[Contact]
    notes: list[str] = field(default_factory=list)


def zone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone()).astimezone(dt.UTC)


def _dismissals(
    session: Session, community_id: int, exclude_case: int | None
) -> dict[Subject, list[Dismissal]]:
    query = select(ContactDecision).where(
        ContactDecision.community_id == community_id,
        ContactDecision.status == ContactStatus.dismissed,
    )
    if exclude_case is not None:
        query = query.where(ContactDecision.case_id != exclude_case)
    found: dict[Subject, list[Dismissal]] = {}
    for row in session.scalars(query):
        subject: Subject = (
            ("person", row.subject_id)
            if row.subject_kind == "person"
            else ("visitor", row.subject_id)
        )
        found.setdefault(subject, []).append(
            Dismissal(row.case_id, row.reason or "", row.decided_at)
        )
    return found


def _coverage_notes(session: Session, community_id: int, window: Window) -> list[str]:
    """Say what the records cannot show: passages deleted after the retention period, or
    none kept yet that far back."""
    keep_from = utcnow() - dt.timedelta(days=get_settings().access.event_keep_days)
    if window.start < keep_from:
        start = keep_from.astimezone(zone()).strftime("%Y-%m-%d %H:%M")
        return [
            _(
                "回溯起点早于通行记录的保存期限：{start} 之前的通行记录已按规定删除，无法查到。"
            ).format(start=start)
        ]
    oldest = access_passages.oldest_event_at(session, community_id=community_id)
    if oldest is not None and window.start < oldest:
        start = oldest.astimezone(zone()).strftime("%Y-%m-%d %H:%M")
        return [_("通行记录最早一条在 {start}，此前没有通行记录可查。").format(start=start)]
    return []


def trace(
    session: Session,
    *,
    person_id: int | None = None,
    visitor_pass_id: int | None = None,
    community_id: int,
    window: Window,
    rules: Rules | None = None,
    exclude_case: int | None = None,
) -> TraceResult:
    """Contacts of a person (or a visitor, by their pass) taken as a case within ``window``
    (nothing is saved)."""
    case = case_subject(person_id, visitor_pass_id)
    with _without_gc_pauses():
        contacts = find_contacts(
            case,
            DatabaseRecords(session, community_id),
            window,
            rules or Rules(),
            _dismissals(session, community_id, exclude_case),
        )
    return TraceResult(case, window, contacts, _coverage_notes(session, community_id, window))


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """A busy case makes some hundred thousand small objects (pairs of passages, reasons),
    all alive until the answer is built: the cyclic garbage collector would walk the whole
    heap again and again meanwhile (measured: half of the CPU time of a case). None of
    them form cycles, so collection waits until the case is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def case_subject(person_id: int | None, visitor_pass_id: int | None) -> Subject:
    if person_id is not None:
        return ("person", person_id)
    if visitor_pass_id is not None:
        return ("visitor", visitor_pass_id)
    raise ValueError("a case is a person or a visitor")


def trace_since(
    session: Session,
    *,
    person_id: int | None = None,
    visitor_pass_id: int | None = None,
    since: dt.date,
    window_minutes: int = 5,
) -> TraceResult:
    """The command line's question: this person (or the holder of this visitor pass) as a
    case, from ``since`` (local) to now."""
    if person_id is not None:
        community_id = registry.person_community(session=session, person_id=person_id)
    elif visitor_pass_id is not None:
        community_id = visitors.pass_community(session=session, pass_id=visitor_pass_id)
    else:
        raise ValueError("a case is a person or a visitor")
    if community_id is None:
        raise NotFound(f"person {person_id}" if person_id else f"visitor pass {visitor_pass_id}")
    window = Window(local_midnight(since), utcnow())
    return trace(
        session,
        person_id=person_id,
        visitor_pass_id=visitor_pass_id,
        community_id=community_id,
        window=window,
        rules=Rules(co_passage_minutes=window_minutes),
    )


# --- cases ----------------------------------------------------------------------------------


def open_case(
    *,
    session: Session,
    actor: Actor,
    person_id: int | None = None,
    visitor_pass_id: int | None = None,
    confirmed_at: dt.datetime,
    onset_at: dt.datetime | None = None,
    sampled_at: dt.datetime | None = None,
    source: CaseSource = CaseSource.manual,
    note: str | None = None,
) -> TracingCase:
    """Record a positive result of a resident (``person_id``) or a visitor (their pass). A
    case still open gets a second result (never a second case); a resident's health status
    becomes positive (a visitor has none in the registry)."""
    require(actor, Permission.tracing_manage)
    now = utcnow()
    if confirmed_at > now + dt.timedelta(minutes=5):
        raise TracingRefusal(_("确诊时间不能晚于现在"), field="confirmed_at")
    for name, moment in (("onset_at", onset_at), ("sampled_at", sampled_at)):
        if moment is not None and moment > confirmed_at:
            raise TracingRefusal(_("发病或采样时间不能晚于确诊时间"), field=name)
        if moment is not None and confirmed_at - moment > EARLIEST_ANCHOR:
            # Most likely a slip of the date picker: the lookback would start months or
            # years back, and every record since would be read.
            raise TracingRefusal(
                _("发病或采样时间不能早于确诊前 {days} 天，请检查日期").format(
                    days=EARLIEST_ANCHOR.days
                ),
                field=name,
            )
    begin_write(session)
    person = None
    if person_id is not None:
        person = registry.get_person(session=session, actor=actor, person_id=person_id).person
        community_id = person.community_id
        same = TracingCase.person_id == person_id
    elif visitor_pass_id is not None:
        visit = visitors.get_pass(session=session, actor=actor, pass_id=visitor_pass_id)
        community_id = visit.community_id
        same = TracingCase.visitor_pass_id == visitor_pass_id
    else:
        raise ValueError("a case is a person or a visitor")
    case = session.scalar(
        select(TracingCase).where(
            TracingCase.community_id == community_id, same, TracingCase.status == CaseStatus.open
        )
    )
    if case is None:
        case = TracingCase(
            community_id=community_id,
            person_id=person_id,
            visitor_pass_id=visitor_pass_id if person_id is None else None,
            onset_at=onset_at,
            sampled_at=sampled_at,
            confirmed_at=confirmed_at,
            source=source,
            created_by=actor.user_id or None,
        )
        session.add(case)
        session.flush()
    else:
        case.onset_at = min((d for d in (case.onset_at, onset_at) if d), default=None)
        case.sampled_at = min((d for d in (case.sampled_at, sampled_at) if d), default=None)
    session.add(
        CaseResult(
            case_id=case.id,
            community_id=case.community_id,
            at=confirmed_at,
            source=source,
            note=note,
        )
    )
    if person is not None and person.health_status != HealthStatus.positive:
        edits.edit_person(
            session=session,
            actor=actor,
            person_id=person.id,
            version=None,
            submitted={"health_status": HealthStatus.positive.value},
        )
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="open",
        object_type="tracing_case",
        object_id=case.id,
        community_id=case.community_id,
        **({"person_id": person_id} if person_id else {"visitor_pass_id": visitor_pass_id}),
    )
    return case


def get_case(*, session: Session, actor: Actor, case_id: int) -> TracingCase:
    require(actor, Permission.tracing_manage)
    case = session.get(TracingCase, case_id)
    if case is None or (case.person_id is None and case.visitor_pass_id is None):
        raise NotFound(f"case {case_id}")
    if case.person_id is not None:
        # The case's person must be in the reader's scope (404 otherwise); audited there.
        registry.get_person(session=session, actor=actor, person_id=case.person_id)
    elif not _community_in_scope(actor, case.community_id):
        raise NotFound(f"case {case_id}")
    return case


def _community_in_scope(actor: Actor, community_id: int) -> bool:
    """A visitor's case is the community's: readers scoped to it see it (and the street's,
    who see every case as ``list_cases`` does); building or compound scopes do not."""
    if actor.scope.level == ScopeLevel.street:
        return True
    if actor.scope.level != ScopeLevel.community:
        return False
    return actor.scope.node_id == community_id


def list_cases(*, session: Session, actor: Actor) -> list[TracingCase]:
    require(actor, Permission.tracing_manage)
    if actor.community_id is None and actor.scope.level != ScopeLevel.street:
        return []
    query = select(TracingCase).order_by(TracingCase.status, TracingCase.confirmed_at.desc())
    if actor.scope.level != ScopeLevel.street:
        query = query.where(TracingCase.community_id == actor.community_id)
    return list(session.scalars(query.limit(500)))


def case_window(case: TracingCase, days_before: int = 4) -> Window:
    return lookback_window(
        onset=case.onset_at,
        sampled=case.sampled_at,
        confirmed=case.confirmed_at,
        days_before=days_before,
    )


@dataclass
class ContactLine:
    contact: Contact
    decision: ContactDecision | None


@dataclass
class CaseView:
    case: TracingCase
    window: Window
    lines: list[ContactLine]
    notes: list[str]
    results: list[CaseResult]


def case_view(
    *, session: Session, actor: Actor, case_id: int, rules: Rules | None = None
) -> CaseView:
    case = get_case(session=session, actor=actor, case_id=case_id)
    window = case_window(case)
    result = trace(
        session,
        person_id=case.person_id,
        visitor_pass_id=case.visitor_pass_id,
        community_id=case.community_id,
        window=window,
        rules=rules,
        exclude_case=case.id,
    )
    decisions = {
        (d.subject_kind, d.subject_id): d
        for d in session.scalars(select(ContactDecision).where(ContactDecision.case_id == case.id))
    }
    lines = [ContactLine(c, decisions.get(c.subject)) for c in result.contacts]
    results = list(
        session.scalars(
            select(CaseResult).where(CaseResult.case_id == case.id).order_by(CaseResult.at)
        )
    )
    audit(
        session=session,
        actor=actor,
        action="trace",
        object_type="tracing_case",
        object_id=case.id,
        community_id=case.community_id,
        contacts=len(lines),
    )
    return CaseView(case, window, lines, result.notes, results)


def decide(
    *,
    session: Session,
    actor: Actor,
    case_id: int,
    subject: Subject,
    status: ContactStatus,
    reason: str,
    shown: str | None = None,
) -> ContactDecision:
    """Confirm or dismiss one contact (a dismissal needs its reason). The contact must be
    one the records show for this case now. ``shown`` is the decision the worker's page
    showed ("" for none): when someone has decided otherwise since, the change is refused
    (409) rather than made over theirs unseen; None skips the check."""
    reason = reason.strip()
    if status == ContactStatus.dismissed and not reason:
        raise TracingRefusal(_("排除密接须写明理由"), field="reason")
    if len(reason) > 200:
        raise TracingRefusal(_("理由不能超过 200 字"), field="reason")
    begin_write(session)
    view = case_view(session=session, actor=actor, case_id=case_id)
    line = next((line for line in view.lines if line.contact.subject == subject), None)
    if line is None:
        raise NotFound(f"contact {subject} of case {case_id}")
    decision = line.decision
    now_status = decision.status.value if decision is not None else ""
    if shown is not None and shown != now_status and now_status != status.value:
        assert decision is not None
        label = _("已确认") if decision.status == ContactStatus.confirmed else _("已排除")
        at = decision.decided_at.astimezone(zone()).strftime("%m-%d %H:%M")
        raise StaleDecision(
            _("此人已于 {at} 被改为“{status}”（可能是同事在另一页面操作），请核对后再决定").format(
                at=at, status=label
            ),
            field="reason",
        )
    if decision is None:
        decision = ContactDecision(
            case_id=case_id,
            community_id=view.case.community_id,
            subject_kind=subject[0],
            subject_id=subject[1],
        )
        session.add(decision)
    decision.tier = line.contact.tier
    decision.status = status
    decision.reason = reason or None
    decision.decided_by = actor.user_id or None
    decision.decided_at = utcnow()
    session.flush()
    audit(
        session=session,
        actor=actor,
        action=status.value,
        object_type="tracing_contact",
        object_id=decision.id,
        community_id=view.case.community_id,
        case_id=case_id,
        subject=f"{subject[0]}:{subject[1]}",
    )
    return decision


@dataclass
class Protection:
    isolated: int
    listed: int
    leads_told: int


def protect(
    *,
    session: Session,
    actor: Actor,
    case_id: int,
    isolation: HealthStatus = HealthStatus.home_isolation,
) -> Protection:
    """For every confirmed contact of the case not yet protected: set the isolation, put
    them on the individual sampling list and tell their building's lead (one message per
    building). Running it again does nothing more."""
    if isolation not in (HealthStatus.home_isolation, HealthStatus.central_isolation):
        raise TracingRefusal(_("隔离方式只能是居家隔离或集中隔离"), field="isolation")
    begin_write(session)
    case = get_case(session=session, actor=actor, case_id=case_id)
    pending = list(
        session.scalars(
            select(ContactDecision).where(
                ContactDecision.case_id == case_id,
                ContactDecision.status == ContactStatus.confirmed,
                ContactDecision.subject_kind == "person",
                ContactDecision.isolated_at.is_(None),
            )
        )
    )
    now = utcnow()
    buildings: dict[int, int] = {}
    whom: dict[int, list[str]] = {}  # building → "name（room）" of its contacts, for the lead
    cards = registry.contact_cards(
        session=session, actor=actor, person_ids=[d.subject_id for d in pending]
    )
    isolated = 0
    for decision in pending:
        try:
            edits.edit_person(
                session=session,
                actor=actor,
                person_id=decision.subject_id,
                version=None,
                submitted={"health_status": isolation.value},
            )
            isolated += 1
        except edits.NothingChanged:
            pass
        decision.isolated_at = now
        decision.sampling_listed_at = now
        household = registry.household_of_person(session=session, person_id=decision.subject_id)
        building = (
            registry.building_of_household(session=session, household_id=household)
            if household
            else None
        )
        if building is not None:
            buildings[building] = buildings.get(building, 0) + 1
            card = cards.get(decision.subject_id)
            if card is not None:
                whom.setdefault(building, []).append(f"{card.name}（{card.address}）")
    for building, count in buildings.items():
        names = whom.get(building, [])
        shown = "、".join(names[:50]) + (
            _(" 等 {n} 人").format(n=len(names)) if len(names) > 50 else ""
        )
        notify.send(
            session=session,
            community_id=case.community_id,
            kind="tracing",
            title=_("本楼有 {n} 名密接人员需要隔离和单人单管采样").format(n=count),
            # Names and rooms in the inbox only (``detail``): group chats are outside.
            detail=_("{names}：请核实人员在家情况，并通知其按时采样。").format(names=shown)
            if shown
            else _("请核实人员在家情况，并通知其按时采样。"),
            to=[notify.Recipient.at(Role.building_lead, ScopeLevel.building, building)],
            urgency="urgent",
            link=f"/registry/buildings/{building}",
            key=f"tracing-{case_id}-{building}-{now.isoformat()}",
            source="tracing",
        )
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="protect",
        object_type="tracing_case",
        object_id=case_id,
        community_id=case.community_id,
        isolated=isolated,
        listed=len(pending),
    )
    return Protection(isolated, len(pending), len(buildings))


def sampling_list(*, session: Session, actor: Actor, case_id: int) -> list[int]:
    """Person ids on the case's individual sampling list (单人单管)."""
    get_case(session=session, actor=actor, case_id=case_id)
    return list(
        session.scalars(
            select(ContactDecision.subject_id).where(
                ContactDecision.case_id == case_id,
                ContactDecision.subject_kind == "person",
                ContactDecision.sampling_listed_at.is_not(None),
            )
        )
    )


def audit_export(*, session: Session, actor: Actor, case: TracingCase, rows: int, fmt: str) -> None:
    audit(
        session=session,
        actor=actor,
        action="export",
        object_type="tracing_case",
        object_id=case.id,
        community_id=case.community_id,
        rows=rows,
        format=fmt,
    )


@dataclass
class Kpis:
    """What tracing teams watch: contacts decided within 24 hours of the case, the share of
    new cases already on a contact list, and confirmed contacts still not protected after
    24 hours (lost to follow-up)."""

    cases: int
    decided_within_24h: int
    decided: int
    cases_already_listed: int
    lost_to_follow_up: int

    @property
    def reached_share(self) -> float | None:
        return self.decided_within_24h / self.decided if self.decided else None

    @property
    def listed_share(self) -> float | None:
        return self.cases_already_listed / self.cases if self.cases else None


def kpis(*, session: Session, actor: Actor) -> Kpis:
    cases = list_cases(session=session, actor=actor)
    if not cases:
        return Kpis(0, 0, 0, 0, 0)
    by_id = {c.id: c for c in cases}
    decisions = list(
        session.scalars(select(ContactDecision).where(ContactDecision.case_id.in_(by_id)))
    )
    day = dt.timedelta(hours=24)
    within = sum(1 for d in decisions if d.decided_at - by_id[d.case_id].created_at <= day)
    confirmed_before: dict[int, dt.datetime] = {}
    for d in decisions:
        if d.status == ContactStatus.confirmed and d.subject_kind == "person":
            earlier = confirmed_before.get(d.subject_id)
            confirmed_before[d.subject_id] = min(earlier, d.decided_at) if earlier else d.decided_at
    listed = sum(
        1
        for c in cases
        if c.person_id in confirmed_before and confirmed_before[c.person_id] <= c.created_at
    )
    now = utcnow()
    lost = sum(
        1
        for d in decisions
        if d.status == ContactStatus.confirmed
        and d.isolated_at is None
        and now - d.decided_at > day
    )
    return Kpis(len(cases), within, len(decisions), listed, lost)


@dataclass(frozen=True)
class FollowUp:
    """Cases still open and their confirmed contacts under follow-up (for the dashboard)."""

    open_cases: int
    new_cases: int  # confirmed in the window asked for
    contacts: int  # confirmed contacts of open cases
    not_isolated: int  # of those, not yet protected


def follow_up(*, session: Session, actor: Actor, start: dt.datetime, end: dt.datetime) -> FollowUp:
    """Counts over the cases the actor may see (as :func:`list_cases`); ``start``/``end``
    bound the cases counted as new."""
    cases = list_cases(session=session, actor=actor)
    open_ids = [c.id for c in cases if c.status == CaseStatus.open]
    new = sum(1 for c in cases if start <= c.confirmed_at < end)
    contacts = not_isolated = 0
    if open_ids:
        for isolated in session.scalars(
            select(ContactDecision.isolated_at).where(
                ContactDecision.case_id.in_(open_ids),
                ContactDecision.status == ContactStatus.confirmed,
                ContactDecision.subject_kind == "person",
            )
        ):
            contacts += 1
            not_isolated += isolated is None
    return FollowUp(len(open_ids), new, contacts, not_isolated)
