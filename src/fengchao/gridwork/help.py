"""Help requests (求助): raised by a resident from the public page, by staff on a resident's
behalf, or by a sweep's visit; routed to the building lead, escalated to the compound's
branch and then the community when nobody accepts in time; accepted and closed with a note;
followed by the resident through a private status link."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, GridScope, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.gridwork import rules
from fengchao.gridwork.models import (
    HelpCategory,
    HelpEvent,
    HelpRequest,
    HelpStatus,
    HelpUrgency,
)
from fengchao.gridwork.scoping import ROLE_FOR_LEVEL, place_in_scope, require_worker
from fengchao.notify import service as notify
from fengchao.notify.models import Urgency
from fengchao.registry.id_numbers import mask_phone
from fengchao.registry.models import Building, Compound, Household, Person, Unit
from fengchao.registry.scope import household_in_scope
from fengchao.registry.validation import FieldError, parse_mobile
from fengchao.web.i18n import _

DETAILS_MAX, NAME_MAX, NOTE_MAX = 500, 64, 300
OPEN_STATES = (HelpStatus.open, HelpStatus.accepted)


class HelpRefused(Refusal):
    """A request that cannot be taken as given (names the field)."""

    status = 422


class OutsideBuilding(Refusal):
    """A request for a household the submitter does not belong to or look after."""

    status = 403


class RequestClosed(Refusal):
    status = 409


def resident_actor(community_id: int) -> Actor:
    """Who the audit log names for a submission from the public page (no account)."""
    return Actor(0, "resident", "居民", Role.volunteer,
                 GridScope(ScopeLevel.community, community_id), community_id)  # fmt: skip


@dataclass(frozen=True)
class Submitted:
    """A request as its submitter gets it back: the row, its status link's token, and
    whether it was the same request as one made minutes before (then nothing new)."""

    request: HelpRequest
    token: str
    duplicate: bool


def _household(session: Session, household_id: int) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise HelpRefused(_("没有这一户"), field="address")
    return household


def submit(
    *,
    session: Session,
    actor: Actor | None,
    household_id: int,
    category: HelpCategory | str,
    urgency: HelpUrgency | str,
    details: str = "",
    contact_name: str = "",
    phone: str = "",
    visit_id: int | None = None,
    now: dt.datetime | None = None,
) -> Submitted:
    """Raise a request for a household. ``actor`` None: a resident on the public page, whose
    phone must not belong to another building; otherwise staff or a volunteer, whose scope
    must cover the household. The same household asking for the same kind of help within
    :data:`rules.DUPLICATE_WINDOW` gets the earlier request back."""
    now = now or utcnow()
    try:
        category = HelpCategory(category)
    except ValueError:
        raise HelpRefused(_("请选择需要哪类帮助"), field="category") from None
    try:
        urgency = HelpUrgency(urgency)
    except ValueError:
        raise HelpRefused(_("请选择紧急程度"), field="urgency") from None
    details = rules.clean_text(details, DETAILS_MAX + 1)
    if len(details) > DETAILS_MAX:
        raise HelpRefused(_("说明太长（最多 {n} 个字）").format(n=DETAILS_MAX), field="details")
    contact_name = rules.clean_text(contact_name, NAME_MAX + 1).replace("\n", " ")
    if len(contact_name) > NAME_MAX:
        raise HelpRefused(_("称呼太长（最多 {n} 个字）").format(n=NAME_MAX), field="name")
    number: str | None = None
    if phone.strip():
        try:
            number = parse_mobile(phone)
        except FieldError as exc:
            raise HelpRefused(exc.message, field="phone") from None
    elif actor is None:
        raise HelpRefused(_("请留下手机号，楼栋长会打电话联系您"), field="phone")
    if category == HelpCategory.other and not details:
        raise HelpRefused(_("请简单说明需要什么帮助"), field="details")

    begin_write(session)
    verified = False
    if actor is not None:
        require(actor, Permission.gridwork_submit)
        found = session.scalar(
            select(Household).where(Household.id == household_id, household_in_scope(actor.scope))
        )
        if found is None:
            raise OutsideBuilding(_("这一户不在您负责的楼栋，不能代为求助"), field="address")
        household = found
        verified = True
    else:
        household = _household(session, household_id)
        assert number is not None
        homes = list(
            session.execute(
                select(Person.household_id, Household.building_id)
                .join(Household, Household.id == Person.household_id)
                .where(Person.community_id == household.community_id, Person.phone == number)
            )
        )
        if homes and all(b != household.building_id for _h, b in homes):
            raise OutsideBuilding(
                _("这个手机号登记在别的楼栋：只能为自己楼栋的住户求助"), field="address"
            )
        verified = any(h == household.id for h, _b in homes)

    key = rules.dedupe_key(household.id, category)
    earlier = session.scalar(
        select(HelpRequest)
        .where(
            HelpRequest.dedupe_key == key,
            HelpRequest.status.in_(OPEN_STATES),
            HelpRequest.created_at >= now - rules.DUPLICATE_WINDOW,
        )
        .order_by(HelpRequest.id)
        .limit(1)
    )
    cipher = get_cipher()
    if earlier is not None:
        return Submitted(earlier, cipher.decrypt(earlier.token_enc), True)
    # Free the key from a request no repeat should get back any more (closed, or older
    # than the window). Conditional, so a request another process has just stored keeps it.
    session.execute(
        update(HelpRequest)
        .where(
            HelpRequest.live_key == key,
            or_(
                HelpRequest.status.not_in(OPEN_STATES),
                HelpRequest.created_at < now - rules.DUPLICATE_WINDOW,
            ),
        )
        .values(live_key=None)
    )

    token = secrets.token_urlsafe(24)
    request = HelpRequest(
        community_id=household.community_id,
        compound_id=household.compound_id,
        building_id=household.building_id,
        household_id=household.id,
        category=category,
        urgency=urgency,
        details=details,
        contact_name=contact_name,
        phone_enc=cipher.encrypt(number) if number else None,
        phone_mask=mask_phone(number) if number else None,
        verified=verified,
        source="sweep" if visit_id else "staff" if actor else "resident",
        status=HelpStatus.open,
        level=ScopeLevel.building,
        deadline=rules.deadline_for(urgency, now),
        created_at=now,
        created_by=actor.user_id if actor else None,
        token_hash=token_hash(token),
        token_enc=cipher.encrypt(token),
        dedupe_key=key,
        live_key=key,
        visit_id=visit_id,
    )
    try:
        with session.begin_nested():
            session.add(request)
    except IntegrityError:
        # The same request stored by another process a moment ago (PostgreSQL: our insert
        # waited for its commit): answer with that one, as a repeat a minute later would be.
        winner = session.scalar(select(HelpRequest).where(HelpRequest.live_key == key))
        if winner is None:
            raise
        return Submitted(winner, cipher.decrypt(winner.token_enc), True)
    _event(session, request, "created", now, level=ScopeLevel.building)
    _notify(session, request, "created", now)
    audit(
        session=session,
        actor=actor or resident_actor(household.community_id),
        action="create",
        object_type="help_request",
        object_id=request.id,
        community_id=request.community_id,
        category=category.value,
        urgency=urgency.value,
    )
    return Submitted(request, token, False)


def token_hash(token: str) -> str:
    return get_cipher().lookup_hash("gridwork-help:" + token)[:64]


def _event(
    session: Session,
    request: HelpRequest,
    kind: str,
    now: dt.datetime,
    *,
    level: ScopeLevel | None = None,
    note: str | None = None,
    by: str | None = None,
) -> None:
    session.add(
        HelpEvent(
            request_id=request.id,
            community_id=request.community_id,
            kind=kind,
            level=level,
            note=note,
            by_name=by,
            at=now,
        )
    )


def _place(session: Session, request: HelpRequest) -> tuple[str, str]:
    """(the compound and building, as a chat may show them; the room address)."""
    row = session.execute(
        select(Compound.name, Building.name, Unit.name, Household.room)
        .join(Building, Building.id == Household.building_id)
        .join(Compound, Compound.id == Household.compound_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(Household.id == request.household_id)
    ).one()
    return _("{c} {b}号楼").format(c=row[0], b=row[1]), f"{row[1]}-{row[2]}-{row[3]}"


def _node_of(request: HelpRequest, level: ScopeLevel) -> int:
    return {
        ScopeLevel.building: request.building_id,
        ScopeLevel.compound: request.compound_id,
        ScopeLevel.community: request.community_id,
    }[level]


def _notify(session: Session, request: HelpRequest, what: str, now: dt.datetime) -> None:
    """Tell whoever the request is with now, and that level's group chat (the chat gets no
    names, rooms or phones: it lies outside the platform)."""
    building, room = _place(session, request)
    node = _node_of(request, request.level)
    titles = {
        "created": _("新求助：{category}（{urgency}）"),
        "escalated": _("求助超时未接单，已上报：{category}（{urgency}）"),
    }
    title = titles[what].format(
        category=rules.label(request.category), urgency=rules.label(request.urgency)
    )
    body = _("{place}，{age}前提出，请在 {deadline} 前接单。").format(
        place=building,
        age=rules.age_text(request.created_at, now),
        deadline=_local(request.deadline),
    )
    notify.send(
        session=session,
        community_id=request.community_id,
        kind="help_request",
        title=title,
        body=body,
        detail=f"{room} {request.contact_name} {request.details}".strip(),
        to=[
            notify.Recipient.at(ROLE_FOR_LEVEL[request.level], request.level, node),
            notify.Recipient.group(request.level, node),
        ],
        urgency=Urgency.urgent if request.urgency == HelpUrgency.urgent else Urgency.normal,
        link=f"/gridwork/requests/{request.id}",
        key=f"gridwork:help:{request.id}:{what}:{request.escalations}",
        source="gridwork",
        now=now,
    )


def _local(when: dt.datetime) -> str:
    from fengchao.web.deps import localtime

    return localtime(when)[5:16]


# --- staff ---------------------------------------------------------------------------------


def _in_scope(actor: Actor) -> ColumnElement[bool]:
    return place_in_scope(actor.scope, HelpRequest)


def open_requests(*, session: Session, actor: Actor, limit: int = 100) -> list[HelpRequest]:
    """Requests not yet closed within the actor's scope, the most pressing first (waiting
    to be accepted before those accepted, earliest deadline first)."""
    require_worker(actor)
    waiting = func.coalesce(HelpRequest.accepted_at, HelpRequest.created_at)
    return list(
        session.scalars(
            select(HelpRequest)
            .where(_in_scope(actor), HelpRequest.status.in_(OPEN_STATES))
            .order_by(HelpRequest.status.desc(), HelpRequest.deadline, waiting)
            .limit(limit)
        )
    )


def counts(*, session: Session, actor: Actor) -> dict[HelpStatus, int]:
    require_worker(actor)
    rows = session.execute(
        select(HelpRequest.status, func.count())
        .where(_in_scope(actor))
        .group_by(HelpRequest.status)
    )
    return {HelpStatus(status): n for status, n in rows}


@dataclass(frozen=True)
class OpenRow:
    """An open request as the dashboard counts it (no personal data)."""

    status: HelpStatus
    created_at: dt.datetime
    deadline: dt.datetime
    escalations: int
    level: ScopeLevel


def open_rows(*, session: Session, actor: Actor) -> list[OpenRow]:
    """Every request not yet closed in the actor's scope, its age and escalation only."""
    require_worker(actor)
    return [
        OpenRow(HelpStatus(status), created, deadline, escalations or 0, ScopeLevel(level))
        for status, created, deadline, escalations, level in session.execute(
            select(HelpRequest.status, HelpRequest.created_at, HelpRequest.deadline,
                   HelpRequest.escalations, HelpRequest.level)
            .where(_in_scope(actor), HelpRequest.status.in_(OPEN_STATES))
        )
    ]  # fmt: skip


def flow(
    *, session: Session, actor: Actor, start: dt.datetime, end: dt.datetime
) -> tuple[int, int]:
    """(requests made, requests closed) in [start, end) within the actor's scope."""
    require_worker(actor)

    def counted(when: Any) -> Any:
        return (
            select(func.count())
            .select_from(HelpRequest)
            .where(_in_scope(actor), when >= start, when < end)
            .scalar_subquery()
        )

    made, closed = session.execute(
        select(counted(HelpRequest.created_at), counted(HelpRequest.closed_at))
    ).one()
    return int(made or 0), int(closed or 0)


def get(*, session: Session, actor: Actor, request_id: int) -> HelpRequest:
    """A request in the actor's scope (404 otherwise)."""
    require_worker(actor)
    request = session.scalar(
        select(HelpRequest).where(HelpRequest.id == request_id, _in_scope(actor))
    )
    if request is None:
        raise NotFound(f"help request {request_id}")
    return request


@dataclass(frozen=True)
class RequestView:
    request: HelpRequest
    place: str
    room: str
    phone: str | None
    events: list[HelpEvent]


def view(*, session: Session, actor: Actor, request_id: int) -> RequestView:
    """The whole request with the contact's phone (audited: it names a household)."""
    request = get(session=session, actor=actor, request_id=request_id)
    place, room = _place(session, request)
    phone = get_cipher().decrypt(request.phone_enc) if request.phone_enc else None
    events = list(
        session.scalars(
            select(HelpEvent).where(HelpEvent.request_id == request.id).order_by(HelpEvent.id)
        )
    )
    audit(
        session=session,
        actor=actor,
        action="read",
        object_type="help_request",
        object_id=request.id,
        community_id=request.community_id,
    )
    return RequestView(request, place, room, phone, events)


def _for_change(session: Session, actor: Actor, request_id: int) -> HelpRequest:
    begin_write(session)
    request = get(session=session, actor=actor, request_id=request_id)
    if request.status not in OPEN_STATES:
        raise RequestClosed(_("这条求助已经办结或撤销了"))
    return request


def accept(
    *, session: Session, actor: Actor, request_id: int, now: dt.datetime | None = None
) -> HelpRequest:
    """Take a request on: the escalation clock stops."""
    now = now or utcnow()
    request = _for_change(session, actor, request_id)
    if request.status == HelpStatus.accepted:
        raise RequestClosed(_("这条求助已由{who}接单").format(who=request.accepted_by_name))
    request.status = HelpStatus.accepted
    request.accepted_at, request.accepted_by = now, actor.user_id
    request.accepted_by_name = actor.display_name
    _event(session, request, "accepted", now, by=actor.display_name)
    audit(session=session, actor=actor, action="accept", object_type="help_request",
          object_id=request.id, community_id=request.community_id)  # fmt: skip
    return request


def close(
    *,
    session: Session,
    actor: Actor,
    request_id: int,
    note: str,
    cancel: bool = False,
    now: dt.datetime | None = None,
) -> HelpRequest:
    """Close a request (done) or cancel it, always with a note saying what was done."""
    now = now or utcnow()
    note = rules.clean_text(note, NOTE_MAX + 1)
    if not note:
        raise HelpRefused(_("请写一句办结说明（做了什么、结果如何）"), field="note")
    if len(note) > NOTE_MAX:
        raise HelpRefused(_("说明太长（最多 {n} 个字）").format(n=NOTE_MAX), field="note")
    request = _for_change(session, actor, request_id)
    request.status = HelpStatus.cancelled if cancel else HelpStatus.closed
    request.closed_at, request.closed_by_name = now, actor.display_name
    request.closing_note = note
    request.live_key = None
    if request.accepted_at is None:
        request.accepted_at, request.accepted_by = now, actor.user_id
        request.accepted_by_name = actor.display_name
    _event(session, request, "cancelled" if cancel else "closed", now, note=note,
           by=actor.display_name)  # fmt: skip
    audit(session=session, actor=actor, action="close", object_type="help_request",
          object_id=request.id, community_id=request.community_id, cancel=cancel)  # fmt: skip
    return request


# --- escalation ------------------------------------------------------------------------------


def escalate_due(*, session: Session, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Move every open request whose deadline has passed one level up the grid (building
    lead → compound branch → community), with a new deadline, and tell that level. A
    request already at the community stays there. Returns how many moved."""
    now = now or utcnow()
    due = select(HelpRequest.id).where(
        HelpRequest.status == HelpStatus.open,
        HelpRequest.deadline <= now,
        HelpRequest.level != ScopeLevel.community,
    )
    if session.scalar(due.limit(1)) is None:
        return 0  # nothing due: no write lock taken
    begin_write(session)
    moved = 0
    rows = session.scalars(
        select(HelpRequest)
        .where(HelpRequest.id.in_(due.scalar_subquery()))
        .order_by(HelpRequest.deadline)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    for request in list(rows):
        level = rules.next_level(request.level)
        if level is None:
            continue
        request.level = level
        request.escalations += 1
        request.deadline = rules.deadline_for(request.urgency, now)
        _event(session, request, "escalated", now, level=level)
        session.flush()
        _notify(session, request, "escalated", now)
        moved += 1
    return moved


# --- the resident's status link --------------------------------------------------------------


@dataclass(frozen=True)
class PublicStatus:
    """What the status link shows: the request's kind and state, and when each step
    happened; no names, rooms, phones or notes of staff."""

    category: HelpCategory
    urgency: HelpUrgency
    status: HelpStatus
    level: ScopeLevel
    created_at: dt.datetime
    steps: list[tuple[str, dt.datetime, ScopeLevel | None]]


def public_status(*, session: Session, token: str) -> PublicStatus:
    """The request behind a status link (404 for an unknown token)."""
    if not 16 <= len(token) <= 64:
        raise NotFound("status link")
    request = session.scalar(select(HelpRequest).where(HelpRequest.token_hash == token_hash(token)))
    if request is None:
        raise NotFound("status link")
    steps = [
        (kind, at, level)
        for kind, at, level in session.execute(
            select(HelpEvent.kind, HelpEvent.at, HelpEvent.level)
            .where(HelpEvent.request_id == request.id)
            .order_by(HelpEvent.id)
        )
    ]
    return PublicStatus(
        request.category, request.urgency, request.status, request.level, request.created_at,
        steps,
    )  # fmt: skip


def require_manage(actor: Actor) -> None:
    require(actor, Permission.gridwork_manage)
