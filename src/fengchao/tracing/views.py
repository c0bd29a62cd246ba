"""Pages of contact tracing: the cases, opening a case, the case with its contacts, the
graph, the actions and the exports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengchao.access import service as access
from fengchao.auth import audit_log
from fengchao.auth.service import NotFound, Permission, require
from fengchao.db import utcnow
from fengchao.registry import service as registry
from fengchao.registry.models import HealthStatus
from fengchao.tracing import exports, service
from fengchao.tracing.contacts import Contact, Subject
from fengchao.tracing.models import ContactStatus
from fengchao.visitors import service as visitors
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf, templates
from fengchao.web.i18n import _

router = APIRouter(prefix="/tracing", dependencies=[Depends(require_csrf)], include_in_schema=False)

REASON_LABELS = {
    "household": "同住家庭成员",
    "co_passage": "同一卡口前后通行（时空伴随）",
    "visitor": "访客往来",
    "sampling_queue": "核酸采样排队前后",
    "tube": "同管混采",
    "building": "同楼栋居民",
    "chain": "密接的密接",
}
TIER_LABELS = {"close": "密切接触者", "secondary": "次密切接触者"}

audit_log.describe(
    actions={
        "open": "登记阳性",
        "trace": "查看流调",
        "confirmed": "确认密接",
        "dismissed": "排除密接",
        "protect": "落实管控",
    },
    objects={"tracing_case": "病例", "tracing_contact": "接触者"},
    links={"tracing_case": "/tracing/cases/{id}"},
    details={
        "contacts": "接触者数",
        "case_id": "病例",
        "subject": "对象",
        "isolated": "隔离人数",
        "listed": "列入采样名单",
        "person_id": "人员",
        "visitor_pass_id": "访客通行证",
        "format": "格式",
    },
)

Text = Annotated[str, Form(max_length=400)]


def local_stamp(text: object) -> str:
    """An evidence time (ISO 8601, UTC) as the community reads it: 2026-12-07 18:03."""
    try:
        moment = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return moment.astimezone(service.zone()).strftime("%Y-%m-%d %H:%M")


templates.env.filters["local_stamp"] = local_stamp


# The case form's times, named in their refusals (the summary above the form lists them).
TIME_LABELS = {"confirmed_at": "确诊时间", "onset_at": "发病时间", "sampled_at": "采样时间"}


def _parse_local(text: str, field: str, *, required: bool) -> dt.datetime | None:
    label = _(TIME_LABELS[field])
    text = text.strip()
    if not text:
        if required:
            raise service.TracingRefusal(_("请填写时间"), field=field)
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise service.TracingRefusal(
            _("{label}格式不对，应为 年-月-日 时:分").format(label=label), field=field
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=service.zone())
    if not 2000 <= moment.year <= 2999:  # year 1 in Shanghai is year 0 in UTC: no datetime
        raise service.TracingRefusal(
            _("{label}不在合理范围内，请检查年份").format(label=label), field=field
        )
    return moment.astimezone(dt.UTC)


@router.get("", response_class=HTMLResponse)
def cases_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    cases = service.list_cases(session=session, actor=actor)
    subjects = [service.case_subject(c.person_id, c.visitor_pass_id) for c in cases]
    cards = _cards(session, actor, subjects)
    context = {
        "cases": [(c, cards.get(subject)) for c, subject in zip(cases, subjects, strict=True)],
        "kpis": service.kpis(session=session, actor=actor),
    }
    return render(request, "tracing/cases.html", context)


def _who(
    session: DbSession, actor: CurrentActor, person_id: int | None, visitor_pass_id: int | None
) -> dict[str, Any]:
    """Whom a new case is for: a resident, or a visitor by their pass (404 outside scope)."""
    if person_id is not None:
        person = registry.get_person(session=session, actor=actor, person_id=person_id).person
        back = f"/registry/people/{person.id}"
        return {"name": person.name, "back": back, "field": "person_id", "id": person.id}
    if visitor_pass_id is None:
        raise NotFound("case subject")
    row = visitors.get_pass(session=session, actor=actor, pass_id=visitor_pass_id)
    back = f"/visitors/passes/{row.id}"
    return {
        "name": row.name,
        "back": back,
        "field": "visitor_pass_id",
        "id": row.id,
        "visitor": True,
    }


Id = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
FormId = Annotated[int | None, Form(ge=1, le=2**31 - 1)]


@router.get("/new", response_class=HTMLResponse)
def new_case_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    person_id: Id = None,
    visitor_pass_id: Id = None,
) -> Response:
    require(actor, Permission.tracing_manage)
    who = _who(session, actor, person_id, visitor_pass_id)
    now = utcnow().astimezone(service.zone()).strftime("%Y-%m-%dT%H:%M")
    return render(request, "tracing/new.html", {"who": who, "now": now, "errors": {}})


@router.post("/new")
def open_case(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    person_id: FormId = None,
    visitor_pass_id: FormId = None,
    confirmed_at: Text = "",
    onset_at: Text = "",
    sampled_at: Text = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    require(actor, Permission.tracing_manage)
    who = _who(session, actor, person_id, None if person_id else visitor_pass_id)
    try:
        case = service.open_case(
            session=session,
            actor=actor,
            person_id=person_id,
            visitor_pass_id=None if person_id else visitor_pass_id,
            confirmed_at=_parse_local(confirmed_at, "confirmed_at", required=True) or utcnow(),
            onset_at=_parse_local(onset_at, "onset_at", required=False),
            sampled_at=_parse_local(sampled_at, "sampled_at", required=False),
            note=note.strip() or None,
        )
    except service.TracingRefusal as refused:
        context = {
            "who": who,
            "now": confirmed_at,
            "errors": {refused.field: refused.message},
            "values": {"onset_at": onset_at, "sampled_at": sampled_at, "note": note},
        }
        return render(request, "tracing/new.html", context, status_code=422)
    return RedirectResponse(f"/tracing/cases/{case.id}", status_code=303)


def _subject_key(subject: Subject) -> str:
    return f"{subject[0]}:{subject[1]}"


def building_only(contact: Contact) -> bool:
    """Reached only as a resident of the case's building: listed together, not one by one."""
    return all(r.kind == "building" for r in contact.reasons)


def _graph(
    case_name: str, contacts: list[Contact], names: dict[Subject, str], more: int = 0
) -> dict[str, Any]:
    """Nodes and links for the ECharts graph: the case in the middle, each contact found
    through a record, contacts of contacts linked to the close contact they came through,
    and the building's other residents as one node (hundreds of dots say nothing), as are
    the contacts on other pages."""
    nodes: list[dict[str, Any]] = [
        {"id": "case", "name": case_name, "category": 0, "symbolSize": 46}
    ]
    links = []
    building = [c for c in contacts if building_only(c)]
    shown = {"case", *(_subject_key(c.subject) for c in contacts if not building_only(c))}
    for contact in contacts:
        if building_only(contact):
            continue
        key = _subject_key(contact.subject)
        nodes.append(
            {
                "id": key,
                "name": names.get(contact.subject, key),
                "category": 1 if contact.tier == "close" else 2,
                "symbolSize": 26 if contact.tier == "close" else 16,
            }
        )
        for reason in contact.reasons:
            source = "case"
            if reason.kind == "chain":
                via = reason.evidence.get("via")
                source = f"{via[0]}:{via[1]}" if isinstance(via, list) else "case"
                if source not in shown:
                    source = "case"  # the close contact it came through is on another page
            links.append({"source": source, "target": key, "label": _(REASON_LABELS[reason.kind])})
    if building:
        nodes.append(
            {
                "id": "building",
                "name": _("同楼栋居民 {n} 人").format(n=len(building)),
                "category": 2,
                "symbolSize": 34,
            }
        )
        links.append(
            {"source": "case", "target": "building", "label": _(REASON_LABELS["building"])}
        )
    if more > 0:
        nodes.append(
            {"id": "more", "name": _("其他 {n} 人（见后续页）").format(n=more), "category": 1,
             "symbolSize": 30}
        )  # fmt: skip
        links.append({"source": "case", "target": "more", "label": ""})
    categories = [{"name": _("病例")}, {"name": _("密切接触者")}, {"name": _("次密切接触者")}]
    return {"nodes": nodes, "links": links, "categories": categories}


@dataclass(frozen=True)
class Card:
    """A contact or case as a page shows it: a resident's card, or a visitor's."""

    name: str
    where: str
    phone: str | None
    visitor: bool = False


def _cards(session: DbSession, actor: CurrentActor, subjects: list[Subject]) -> dict[Subject, Card]:
    """Cards of the given people and visitors within the reader's scope, read in bulk (the
    page asks only for the contacts it shows)."""
    people = sorted({n for kind, n in subjects if kind == "person"})
    passes = sorted({n for kind, n in subjects if kind == "visitor"})
    found: dict[Subject, Card] = {}
    for number, card in registry.contact_cards(
        session=session, actor=actor, person_ids=people
    ).items():
        found[("person", number)] = Card(card.name, f"{card.compound} {card.address}", card.phone)
    if passes:
        for number, seen in visitors.visitor_cards(
            session=session, actor=actor, pass_ids=passes
        ).items():
            where = _("访客，到访 {place}").format(place=seen.host_place or "—")
            found[("visitor", number)] = Card(seen.name, where, seen.phone, visitor=True)
    return found


PAGE_SIZE = 50
NEIGHBOURS_SHOWN = 200


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(
    case_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    done: Annotated[Literal["saved", "protected"] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    listed: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The case and its contacts, a page of them at a time (a busy gate gives thousands):
    cards are read only for the contacts shown, and the graph draws those."""
    context = _case_context(session, actor, case_id, page=page)
    return render(request, "tracing/case.html", {**context, "done": done, "listed": listed})


def _case_context(
    session: DbSession,
    actor: CurrentActor,
    case_id: int,
    *,
    page: int = 1,
    problem: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """What the case page shows; with ``problem`` (a contact's key and a message), the
    page that holds that contact, the message at its card."""
    view = service.case_view(session=session, actor=actor, case_id=case_id)
    case_subject = service.case_subject(view.case.person_id, view.case.visitor_pass_id)
    traced = [x for x in view.lines if not building_only(x.contact)]
    neighbours = [x for x in view.lines if building_only(x.contact)]
    pages = max(1, -(-len(traced) // PAGE_SIZE))
    if problem is not None:
        keys = [_subject_key(x.contact.subject) for x in traced]
        page = keys.index(problem[0]) // PAGE_SIZE + 1 if problem[0] in keys else page
    page = min(page, pages)
    shown = traced[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    wanted = [case_subject, *(x.contact.subject for x in shown)]
    for line in shown:  # the close contacts a chain went through, named on the page
        for reason in line.contact.reasons:
            via = reason.evidence.get("via")
            if reason.kind == "chain" and isinstance(via, list):
                wanted.append((via[0], via[1]))
    wanted.extend(x.contact.subject for x in neighbours[:NEIGHBOURS_SHOWN])
    cards = _cards(session, actor, wanted)
    case_card = cards.get(case_subject)
    names = {subject: card.name for subject, card in cards.items()}
    more = len(traced) - len(shown)
    graph = _graph(
        case_card.name if case_card else "",
        [x.contact for x in shown] + [x.contact for x in neighbours],
        names,
        more,
    )
    gates = access.list_gates(session=session, actor=actor, community_id=view.case.community_id)
    return {
        "view": view,
        "cards": cards,
        "gate_names": {gate.id: gate.name for gate in gates},
        "case_card": case_card,
        "graph": graph,
        "problem": problem,
        "reason_labels": REASON_LABELS,
        "tier_labels": TIER_LABELS,
        "close_count": sum(1 for x in view.lines if x.contact.tier == "close"),
        "traced": shown,
        "traced_total": len(traced),
        "page": page,
        "pages": pages,
        "neighbours": neighbours[:NEIGHBOURS_SHOWN],
        "neighbours_total": len(neighbours),
        "pending_protection": sum(
            1
            for x in view.lines
            if x.decision is not None
            and x.decision.status == ContactStatus.confirmed
            and x.decision.isolated_at is None
        ),
    }


@router.post("/cases/{case_id}/contacts")
def decide(
    case_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    subject: Annotated[str, Form(pattern=r"^(person|visitor):\d{1,10}$")],
    status: Annotated[ContactStatus, Form()],
    reason: Text = "",
    # The decision the page showed; "undecided", not "", which a form reads as missing.
    shown: Annotated[Literal["undecided", "confirmed", "dismissed"] | None, Form()] = None,
) -> Response:
    kind, _sep, number = subject.partition(":")
    who: Subject = ("person", int(number)) if kind == "person" else ("visitor", int(number))
    try:
        service.decide(
            session=session,
            actor=actor,
            case_id=case_id,
            subject=who,
            status=status,
            reason=reason,
            shown=None if shown is None else shown.replace("undecided", ""),
        )
    except service.TracingRefusal as refused:
        # Back on the case page at the contact's card (an error page would lose the case).
        context = _case_context(session, actor, case_id, problem=(subject, refused.message))
        return render(request, "tracing/case.html", context, status_code=refused.status)
    return RedirectResponse(f"/tracing/cases/{case_id}?done=saved#c-{kind}-{number}", 303)


@router.post("/cases/{case_id}/protect")
def protect(
    case_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    isolation: Annotated[Literal["home_isolation", "central_isolation"], Form()],
) -> Response:
    done = service.protect(
        session=session, actor=actor, case_id=case_id, isolation=HealthStatus(isolation)
    )
    return RedirectResponse(f"/tracing/cases/{case_id}?done=protected&listed={done.listed}", 303)


@router.get("/cases/{case_id}/contacts.{fmt}")
def export(
    case_id: RowId,
    fmt: Literal["xlsx", "csv"],
    session: DbSession,
    actor: CurrentActor,
    encoding: Annotated[Literal["utf-8", "gbk"], Query()] = "utf-8",
) -> Response:
    view = service.case_view(session=session, actor=actor, case_id=case_id)
    # A contact the worker dismissed (with a reason) is not one for the health authority.
    contacts = [
        x.contact
        for x in view.lines
        if x.decision is None or x.decision.status != ContactStatus.dismissed
    ]
    ids = [c.subject[1] for c in contacts if c.subject[0] == "person"]
    passes = [c.subject[1] for c in contacts if c.subject[0] == "visitor"]
    case_subject = service.case_subject(view.case.person_id, view.case.visitor_pass_id)
    case_card = _cards(session, actor, [case_subject]).get(case_subject)
    cards = registry.contact_cards(session=session, actor=actor, person_ids=ids)
    seen = visitors.visitor_cards(session=session, actor=actor, pass_ids=passes) if passes else {}
    case_name = case_card.name if case_card else ""
    table = exports.rows(contacts, cards, case_name, utcnow().date(), seen)
    service.audit_export(session=session, actor=actor, case=view.case, rows=len(table), fmt=fmt)
    name = f"contacts-case-{case_id}.{fmt}"
    if fmt == "xlsx":
        content, media = exports.xlsx(table), exports.XLSX_TYPE
    else:
        charset = "gbk" if encoding == "gbk" else "utf-8"
        content, media = exports.csv(table, encoding), f"text/csv; charset={charset}"
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )
