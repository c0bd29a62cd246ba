"""Staff pages of grid work: the community worker's overview, the building lead's to-do
(open requests and the sweep checklist, also shown inside the registry's to-do page), sweeps
and their checklists and visit forms, a request's page, a report's page."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, require
from fengchao.db import utcnow
from fengchao.gridwork import help as help_service
from fengchao.gridwork import reports, rules, sweeps
from fengchao.gridwork.models import (
    EVENT_LABELS,
    HelpCategory,
    HelpStatus,
    HelpUrgency,
    ReportStatus,
    VisitOutcome,
)
from fengchao.gridwork.scoping import find_household, may_work
from fengchao.registry import scope as grid
from fengchao.registry.models import LABELS as REGISTRY_LABELS
from fengchao.registry.models import Compound, HealthStatus, ResidenceStatus
from fengchao.settings import get_settings
from fengchao.web.deps import (
    CurrentActor,
    DbSession,
    RowId,
    done_writing,
    render,
    require_csrf,
    templates,
)
from fengchao.web.forms import Form, attempt, integer, text
from fengchao.web.i18n import _

router = APIRouter(
    prefix="/gridwork", dependencies=[Depends(require_csrf)], include_in_schema=False
)

templates.env.filters["gw"] = rules.label


def _age(value: dt.datetime) -> str:
    return rules.age_text(value, utcnow())


def _short(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(get_settings().timezone)).strftime("%m-%d %H:%M")


templates.env.filters["gw_age"] = _age
templates.env.globals["HelpStatus"] = HelpStatus
templates.env.globals["event_labels"] = EVENT_LABELS
templates.env.filters["gw_time"] = _short


def _local_input(raw: str) -> dt.datetime | None:
    """A datetime-local field (the community's time) as UTC; None when empty or malformed."""
    try:
        local = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(get_settings().timezone))
    return local.astimezone(dt.UTC)


# --- homes ---------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def overview_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """The community worker's overview: open requests with their ages, sweeps, reports."""
    if not actor.can(Permission.gridwork_manage):
        if may_work(actor) or actor.can(Permission.gridwork_property):
            return RedirectResponse("/gridwork/todo", status_code=303)
        require(actor, Permission.gridwork_manage)
    requests = help_service.open_requests(session=session, actor=actor, limit=200)
    counts = help_service.counts(session=session, actor=actor)
    now = utcnow()
    overdue = sum(1 for r in requests if r.status == HelpStatus.open and r.deadline <= now)
    progress = [
        sweeps.progress(session=session, actor=actor, sweep_id=s.id, sweep=s)
        for s in sweeps.active(session=session, actor=actor)
    ]
    places = _building_labels(session, {r.building_id for r in requests})
    return render(
        request,
        "gridwork/overview.html",
        {
            "requests": requests,
            "counts": counts,
            "overdue": overdue,
            "now": now,
            "sweeps": progress,
            "reports": reports.open_reports(session=session, actor=actor),
            "places": places,
        },
    )


def _building_labels(session: Session, ids: set[int]) -> dict[int, str]:
    from fengchao.registry.models import Building

    if not ids:
        return {}
    rows = session.execute(
        select(Building.id, Compound.name, Building.name)
        .join(Compound, Compound.id == Building.compound_id)
        .where(Building.id.in_(ids))
    )
    return {i: _("{c} {b}号楼").format(c=c, b=b) for i, c, b in rows}


def _todo_context(session: Session, actor: Actor) -> dict[str, object]:
    requests = (
        help_service.open_requests(session=session, actor=actor, limit=50)
        if may_work(actor)
        else []
    )
    active = sweeps.active(session=session, actor=actor) if may_work(actor) else []
    building = sweeps.lead_building(actor)
    progress = [
        sweeps.progress(session=session, actor=actor, sweep_id=s.id, sweep=s) for s in active[:3]
    ]
    return {
        "requests": requests,
        "sweeps": progress,
        "building": building,
        "reports": reports.open_reports(session=session, actor=actor),
        "now": utcnow(),
        "places": _building_labels(session, {r.building_id for r in requests}),
    }


@router.get("/todo", response_class=HTMLResponse)
def todo_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """A lead's grid work on the phone: requests to accept, the sweep to walk, reports."""
    if not (may_work(actor) or actor.can(Permission.gridwork_property)):
        require(actor, Permission.gridwork_lead)
    context = _todo_context(session, actor)
    context["scope_label"] = grid.scope_label(session=session, scope=actor.scope)
    return render(request, "gridwork/todo.html", context)


@router.get("/todo/panel", response_class=HTMLResponse)
def todo_panel(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """The same, as the part the registry's to-do page loads into itself."""
    if not may_work(actor):
        return HTMLResponse("")
    return render(request, "gridwork/_todo_panel.html", _todo_context(session, actor))


# --- sweeps --------------------------------------------------------------------------------


def _sweep_form(
    request: Request,
    session: Session,
    actor: Actor,
    values: dict[str, str],
    problem: Refusal | None = None,
) -> Response:
    nodes = [
        n
        for n in grid.nodes_in_scope(session=session, scope=actor.scope)
        if n.level != ScopeLevel.street
    ]
    return render(
        request,
        "gridwork/sweep_new.html",
        {"nodes": nodes, "values": values, "problem": problem},
        status_code=problem.status if problem else 200,
    )


@router.get("/sweeps/new", response_class=HTMLResponse)
def new_sweep(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    require(actor, Permission.gridwork_manage)
    tomorrow = (dt.datetime.now(ZoneInfo(get_settings().timezone)) + dt.timedelta(days=2)).replace(
        hour=18, minute=0, second=0, microsecond=0
    )
    values = {
        "title": _("封闭管理扫楼清户"),
        "node": "",
        "deadline": tomorrow.strftime("%Y-%m-%dT%H:%M"),
    }
    return _sweep_form(request, session, actor, values)


@router.post("/sweeps")
def create_sweep(request: Request, session: DbSession, actor: CurrentActor, form: Form) -> Response:
    require(actor, Permission.gridwork_manage)
    values = {k: text(form, k) for k in ("title", "node", "deadline")}
    level, _sep, node = values["node"].partition(":")
    try:
        with attempt(session):
            sweep = sweeps.create(
                session=session,
                actor=actor,
                title=values["title"],
                level=level,
                node_id=int(node) if node.isdigit() and len(node) < 10 else 0,
                deadline=_local_input(values["deadline"]),
            )
    except Refusal as exc:
        return _sweep_form(request, session, actor, values, exc)
    return RedirectResponse(f"/gridwork/sweeps/{sweep.id}", status_code=303)


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(
    request: Request, session: DbSession, actor: CurrentActor, sweep_id: RowId
) -> Response:
    """Progress per building (a lead goes straight to the checklist of their building)."""
    building = sweeps.lead_building(actor)
    if building is not None:
        return RedirectResponse(
            f"/gridwork/sweeps/{sweep_id}/buildings/{building}", status_code=303
        )
    data = sweeps.progress(session=session, actor=actor, sweep_id=sweep_id)
    return render(request, "gridwork/sweep.html", {"p": data})


@router.post("/sweeps/{sweep_id}/close")
def close_sweep(session: DbSession, actor: CurrentActor, sweep_id: RowId) -> Response:
    sweeps.close_sweep(session=session, actor=actor, sweep_id=sweep_id)
    return RedirectResponse(f"/gridwork/sweeps/{sweep_id}", status_code=303)


@router.get("/sweeps/{sweep_id}/buildings/{building_id}", response_class=HTMLResponse)
def checklist_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    sweep_id: RowId,
    building_id: RowId,
    show: str = "all",
) -> Response:
    """The checklist of one building: every household, the next one to knock at first."""
    sweep, label, rows = sweeps.checklist(
        session=session, actor=actor, sweep_id=sweep_id, building_id=building_id
    )
    left = [r for r in rows if r.outcome in (VisitOutcome.pending, VisitOutcome.nobody_home)]
    shown = left if show == "left" else rows
    done = sum(1 for r in rows if r.outcome in (VisitOutcome.visited, VisitOutcome.refused))
    return render(
        request,
        "gridwork/checklist.html",
        {
            "sweep": sweep,
            "label": label,
            "rows": shown,
            "total": len(rows),
            "done": done,
            "left": len(left),
            "show": show,
            "building_id": building_id,
        },
    )


def _visit_form(
    request: Request,
    session: Session,
    actor: Actor,
    sweep_id: int,
    target_id: int,
    problem: Refusal | None = None,
) -> Response:
    data = sweeps.target(session=session, actor=actor, sweep_id=sweep_id, target_id=target_id)
    return render(
        request,
        "gridwork/visit.html",
        {
            "t": data,
            "key": uuid.uuid4().hex,
            "problem": problem,
            "healths": [(h.value, REGISTRY_LABELS[h]) for h in HealthStatus],
            "residences": [(r.value, REGISTRY_LABELS[r]) for r in ResidenceStatus],
            "proposes": not actor.can(Permission.registry_write),
        },
        status_code=problem.status if problem else 200,
    )


@router.get("/sweeps/{sweep_id}/visit/{target_id}", response_class=HTMLResponse)
def visit_page(
    request: Request, session: DbSession, actor: CurrentActor, sweep_id: RowId, target_id: RowId
) -> Response:
    return _visit_form(request, session, actor, sweep_id, target_id)


def parse_visit(form: FormData) -> sweeps.VisitForm:
    changes: dict[int, dict[str, object]] = {}
    for name in form:
        field, _sep, pid = name.rpartition("_")
        if field in ("health", "residence", "elderly") and pid.isdigit() and len(pid) < 10:
            entry = changes.setdefault(int(pid), {})
            value = text(form, name)
            if field == "health":
                entry["health_status"] = value
            elif field == "residence":
                entry["residence_status"] = value
            else:
                entry["elderly_alone"] = value == "1"
    return sweeps.VisitForm(
        outcome=text(form, "outcome"),
        people_home=integer(form, "people_home"),
        home=[
            int(v)
            for v in form.getlist("home")
            if isinstance(v, str) and v.isdigit() and len(v) < 10
        ],
        fever=text(form, "fever") == "1",
        elderly_alone=text(form, "elderly_alone") == "1",
        needs_medicine=text(form, "needs_medicine") == "1",
        needs_food=text(form, "needs_food") == "1",
        note=text(form, "note"),
        changes=changes,
        new_member=text(form, "new_member"),
        key=text(form, "key") or None,
    )


@router.post("/sweeps/{sweep_id}/visit/{target_id}")
def record_visit(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    sweep_id: RowId,
    target_id: RowId,
    form: Form,
) -> Response:
    """Record a visit, then back to the checklist at the next household. The target is
    read before the write lock is taken, so the write itself stays short."""
    try:
        target = sweeps.visit_target(
            session=session, actor=actor, sweep_id=sweep_id, target_id=target_id
        )
        visit = parse_visit(form)
        with attempt(session):
            recorded = sweeps.record_visit(
                session=session,
                actor=actor,
                sweep_id=sweep_id,
                target_id=target_id,
                form=visit,
                target=target,
            )
        done_writing(session)
    except Refusal as exc:
        return _visit_form(request, session, actor, sweep_id, target_id, exc)
    building = recorded.building_id or _target_building(session, target_id)
    return RedirectResponse(
        f"/gridwork/sweeps/{sweep_id}/buildings/{building}?show=left&done={recorded.visit.id}"
        f"#t{target_id}",
        status_code=303,
    )


def _target_building(session: Session, target_id: int) -> int:
    from fengchao.gridwork.models import SweepTarget

    building = session.scalar(select(SweepTarget.building_id).where(SweepTarget.id == target_id))
    if building is None:
        raise NotFound(f"sweep target {target_id}")
    return building


# --- help requests -------------------------------------------------------------------------


def _request_form(
    request: Request,
    session: Session,
    actor: Actor,
    values: dict[str, str],
    problem: Refusal | None = None,
) -> Response:
    compounds = [
        n for n in grid.nodes_in_scope(session=session, scope=actor.scope)
        if n.level == ScopeLevel.compound
    ]  # fmt: skip
    if not compounds and actor.scope.level == ScopeLevel.building:
        lineage = grid.node_lineage(
            session=session, level=ScopeLevel.building, node_id=actor.scope.node_id
        )
        compound_id = next(n for lv, n in lineage if lv == ScopeLevel.compound)
        found = session.get(Compound, compound_id)
        compounds = [
            grid.NodeChoice(ScopeLevel.compound, compound_id, 0, found.name if found else "")
        ]
    return render(
        request,
        "gridwork/request_new.html",
        {
            "compounds": compounds,
            "values": values,
            "problem": problem,
            "categories": list(HelpCategory),
            "urgencies": list(HelpUrgency),
        },
        status_code=problem.status if problem else 200,
    )


@router.get("/requests/new", response_class=HTMLResponse)
def new_request(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """Ask for help on a resident's behalf (a lead, a volunteer, a worker)."""
    require(actor, Permission.gridwork_submit)
    return _request_form(request, session, actor, {"urgency": "normal"})


@router.post("/requests")
def create_request(
    request: Request, session: DbSession, actor: CurrentActor, form: Form
) -> Response:
    require(actor, Permission.gridwork_submit)
    values = {
        k: text(form, k)
        for k in ("compound", "address", "category", "urgency", "details", "name", "phone")
    }
    try:
        compound = integer(form, "compound") or 0
        household = find_household(session, compound_id=compound, address=values["address"])
        if household is None:
            raise help_service.HelpRefused(
                _("找不到这一户：请按“楼-单元-室”填写，例如 5-2-1302"), field="address"
            )
        with attempt(session):
            made = help_service.submit(
                session=session, actor=actor, household_id=household.id,
                category=values["category"], urgency=values["urgency"],
                details=values["details"], contact_name=values["name"], phone=values["phone"],
            )  # fmt: skip
        done_writing(session)
    except Refusal as exc:
        return _request_form(request, session, actor, values, exc)
    if not may_work(actor):  # a volunteer follows it through the resident's status link
        return RedirectResponse(f"/help/status/{made.token}", status_code=303)
    return RedirectResponse(f"/gridwork/requests/{made.request.id}", status_code=303)


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(
    request: Request, session: DbSession, actor: CurrentActor, request_id: RowId
) -> Response:
    data = help_service.view(session=session, actor=actor, request_id=request_id)
    return render(request, "gridwork/request.html", {"v": data, "now": utcnow()})


@router.post("/requests/{request_id}/accept")
def accept_request(session: DbSession, actor: CurrentActor, request_id: RowId) -> Response:
    help_service.accept(session=session, actor=actor, request_id=request_id)
    return RedirectResponse(f"/gridwork/requests/{request_id}", status_code=303)


@router.post("/requests/{request_id}/close")
def close_request(
    session: DbSession, actor: CurrentActor, request_id: RowId, form: Form
) -> Response:
    help_service.close(
        session=session,
        actor=actor,
        request_id=request_id,
        note=text(form, "note"),
        cancel=text(form, "cancel") == "1",
    )
    return RedirectResponse(f"/gridwork/requests/{request_id}", status_code=303)


# --- reports -------------------------------------------------------------------------------


@router.get("/reports/{report_id}", response_class=HTMLResponse)
def report_page(
    request: Request, session: DbSession, actor: CurrentActor, report_id: RowId
) -> Response:
    report = reports.get(session=session, actor=actor, report_id=report_id)
    return render(
        request,
        "gridwork/report.html",
        {
            "r": report,
            "place": reports.place_of(session, report),
            "statuses": [ReportStatus.acknowledged, ReportStatus.resolved],
        },
    )


@router.post("/reports/{report_id}/status")
def report_status(
    session: DbSession, actor: CurrentActor, report_id: RowId, form: Form
) -> Response:
    reports.set_status(
        session=session,
        actor=actor,
        report_id=report_id,
        status=text(form, "status"),
        note=text(form, "note"),
    )
    return RedirectResponse(f"/gridwork/reports/{report_id}", status_code=303)


@router.get("/reports/{report_id}/photo")
def report_photo(session: DbSession, actor: CurrentActor, report_id: RowId) -> Response:
    jpeg = reports.photo(session=session, actor=actor, report_id=report_id)
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )
