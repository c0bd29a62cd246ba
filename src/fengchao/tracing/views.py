"""Pages of contact tracing: the cases, opening a case, the case with its contacts, the
graph, the actions and the exports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengchao.auth import audit_log
from fengchao.auth.service import Permission, require
from fengchao.db import utcnow
from fengchao.registry import service as registry
from fengchao.registry.models import HealthStatus
from fengchao.tracing import exports, service
from fengchao.tracing.contacts import Contact, Subject
from fengchao.tracing.models import ContactStatus
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


def _parse_local(text: str, field: str, *, required: bool) -> dt.datetime | None:
    text = text.strip()
    if not text:
        if required:
            raise service.TracingRefusal(_("请填写时间"), field=field)
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise service.TracingRefusal(_("时间格式不对，应为 年-月-日 时:分"), field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=service.zone())
    return moment.astimezone(dt.UTC)


@router.get("", response_class=HTMLResponse)
def cases_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    cases = service.list_cases(session=session, actor=actor)
    ids = [c.person_id for c in cases if c.person_id is not None]
    cards = registry.contact_cards(session=session, actor=actor, person_ids=ids)
    context = {"cases": cases, "cards": cards, "kpis": service.kpis(session=session, actor=actor)}
    return render(request, "tracing/cases.html", context)


@router.get("/new", response_class=HTMLResponse)
def new_case_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    person_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
) -> Response:
    require(actor, Permission.tracing_manage)
    view = registry.get_person(session=session, actor=actor, person_id=person_id)
    now = utcnow().astimezone(service.zone()).strftime("%Y-%m-%dT%H:%M")
    return render(request, "tracing/new.html", {"view": view, "now": now, "errors": {}})


@router.post("/new")
def open_case(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    person_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    confirmed_at: Text = "",
    onset_at: Text = "",
    sampled_at: Text = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        case = service.open_case(
            session=session,
            actor=actor,
            person_id=person_id,
            confirmed_at=_parse_local(confirmed_at, "confirmed_at", required=True) or utcnow(),
            onset_at=_parse_local(onset_at, "onset_at", required=False),
            sampled_at=_parse_local(sampled_at, "sampled_at", required=False),
            note=note.strip() or None,
        )
    except service.TracingRefusal as refused:
        view = registry.get_person(session=session, actor=actor, person_id=person_id)
        context = {
            "view": view,
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


def _graph(case_name: str, contacts: list[Contact], names: dict[Subject, str]) -> dict[str, Any]:
    """Nodes and links for the ECharts graph: the case in the middle, each contact found
    through a record, contacts of contacts linked to the close contact they came through,
    and the building's other residents as one node (hundreds of dots say nothing)."""
    nodes: list[dict[str, Any]] = [
        {"id": "case", "name": case_name, "category": 0, "symbolSize": 46}
    ]
    links = []
    building = [c for c in contacts if building_only(c)]
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
    categories = [{"name": _("病例")}, {"name": _("密切接触者")}, {"name": _("次密切接触者")}]
    return {"nodes": nodes, "links": links, "categories": categories}


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(
    case_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    done: Annotated[Literal["saved", "protected"] | None, Query()] = None,
) -> Response:
    view = service.case_view(session=session, actor=actor, case_id=case_id)
    ids = [line.contact.subject[1] for line in view.lines if line.contact.subject[0] == "person"]
    assert view.case.person_id is not None
    cards = registry.contact_cards(
        session=session, actor=actor, person_ids=[view.case.person_id, *ids]
    )
    case_card = cards.get(view.case.person_id)
    names: dict[Subject, str] = {("person", i): c.name for i, c in cards.items()}
    graph = _graph(case_card.name if case_card else "", [x.contact for x in view.lines], names)
    context = {
        "view": view,
        "cards": cards,
        "case_card": case_card,
        "graph": graph,
        "done": done,
        "reason_labels": REASON_LABELS,
        "tier_labels": TIER_LABELS,
        "close_count": sum(1 for x in view.lines if x.contact.tier == "close"),
        "traced": [x for x in view.lines if not building_only(x.contact)],
        "neighbours": [x for x in view.lines if building_only(x.contact)],
        "pending_protection": sum(
            1
            for x in view.lines
            if x.decision is not None
            and x.decision.status == ContactStatus.confirmed
            and x.decision.isolated_at is None
        ),
    }
    return render(request, "tracing/case.html", context)


@router.post("/cases/{case_id}/contacts")
def decide(
    case_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    subject: Annotated[str, Form(pattern=r"^(person|visitor):\d{1,10}$")],
    status: Annotated[ContactStatus, Form()],
    reason: Text = "",
) -> Response:
    kind, _sep, number = subject.partition(":")
    who: Subject = ("person", int(number)) if kind == "person" else ("visitor", int(number))
    service.decide(
        session=session, actor=actor, case_id=case_id, subject=who, status=status, reason=reason
    )
    return RedirectResponse(f"/tracing/cases/{case_id}?done=saved#c-{kind}-{number}", 303)


@router.post("/cases/{case_id}/protect")
def protect(
    case_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    isolation: Annotated[Literal["home_isolation", "central_isolation"], Form()],
) -> Response:
    service.protect(
        session=session, actor=actor, case_id=case_id, isolation=HealthStatus(isolation)
    )
    return RedirectResponse(f"/tracing/cases/{case_id}?done=protected", 303)


@router.get("/cases/{case_id}/contacts.{fmt}")
def export(
    case_id: RowId,
    fmt: Literal["xlsx", "csv"],
    session: DbSession,
    actor: CurrentActor,
    encoding: Annotated[Literal["utf-8", "gbk"], Query()] = "utf-8",
) -> Response:
    view = service.case_view(session=session, actor=actor, case_id=case_id)
    assert view.case.person_id is not None
    contacts = [x.contact for x in view.lines]
    ids = [c.subject[1] for c in contacts if c.subject[0] == "person"]
    cards = registry.contact_cards(
        session=session, actor=actor, person_ids=[view.case.person_id, *ids]
    )
    case_card = cards.get(view.case.person_id)
    table = exports.rows(contacts, cards, case_card.name if case_card else "", utcnow().date())
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
