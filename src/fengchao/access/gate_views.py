"""Pages of the access slice for staff: gates and device keys, the alert level, pass rules
with the policy simulator, and the access record (search, a person's timeline, an event)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fengchao.access import flows, policy, records
from fengchao.access import service as access
from fengchao.access.api import event_filter
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, require
from fengchao.registry import scope as grid
from fengchao.registry.models import Community, Compound
from fengchao.web.deps import CurrentActor, DbSession, OptionalRowId, RowId, render, require_csrf
from fengchao.web.i18n import _

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

ROLE_LABELS = {
    policy.PassRole.owner: "业主",
    policy.PassRole.tenant: "租户",
    policy.PassRole.family: "家属",
    policy.PassRole.property_staff: "物业人员",
    policy.PassRole.community_worker: "社区干部",
    policy.PassRole.courier: "快递外卖",
    policy.PassRole.contractor: "施工人员",
    policy.PassRole.visitor: "访客",
}
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
KIND_LABELS = {"pedestrian": "人行", "vehicle": "车行", "both": "人车混行"}
METHOD_LABELS = {
    "face": "刷脸",
    "plate": "车牌",
    "code": "通行码",
    "person": "人工核验",
    "pin": "PIN",
}
DECISION_LABELS = {"allow": "放行", "deny": "拒绝", "pending": "待确认"}


def _communities(session: Session, actor: Actor) -> list[Community]:
    return grid.communities_in_scope(session=session, scope=actor.scope)


def _community(session: Session, actor: Actor, wanted: int | None) -> Community:
    communities = _communities(session, actor)
    if not communities:
        raise NotFound("no community in scope")
    if wanted is None:
        return communities[0]
    for community in communities:
        if community.id == wanted:
            return community
    raise NotFound(f"community {wanted}")


def _compounds(session: Session, community_id: int) -> list[Compound]:
    from sqlalchemy import select

    query = select(Compound).where(Compound.community_id == community_id).order_by(Compound.id)
    return list(session.scalars(query))


def _labels() -> dict[str, Any]:
    return {
        "role_labels": ROLE_LABELS,
        "weekdays": WEEKDAYS,
        "kind_labels": KIND_LABELS,
        "method_labels": METHOD_LABELS,
        "decision_labels": DECISION_LABELS,
        "level_labels": access.LEVEL_LABELS,
        "reason_text": flows.reason_text,
        "levels": list(policy.AlertLevel),
        "pass_roles": list(policy.PassRole),
    }


# --- gates and devices -------------------------------------------------------------------


def _gates_page(
    request: Request, session: Session, actor: Actor, community_id: int | None, **extra: Any
) -> Response:
    require(actor, Permission.access_read)
    community = _community(session, actor, community_id)
    gates = access.list_gates(session=session, actor=actor, community_id=community.id)
    compounds = {c.id: c for c in _compounds(session, community.id)}
    levels = {
        g.id: access.level_at(
            session=session, community_id=g.community_id, compound_id=g.compound_id
        )
        for g in gates
    }
    context = {
        "community": community,
        "communities": _communities(session, actor),
        "gates": gates,
        "compounds": compounds,
        "gate_levels": levels,
        "can_manage": actor.can(Permission.access_manage),
        **_labels(),
        **extra,
    }
    status = 422 if extra.get("error") else 200
    return render(request, "access/gates.html", context, status_code=status)


@router.get("/access", response_class=HTMLResponse)
def gates_page(
    request: Request, session: DbSession, actor: CurrentActor, community: OptionalRowId = None
) -> Response:
    """The gates of a community, their devices and the alert level at each."""
    return _gates_page(request, session, actor, community)


@router.post("/access/gates")
def create_gate(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    compound_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    name: Annotated[str, Form(max_length=64)],
    kind: Annotated[str, Form(max_length=16)],
    soft_temperature: Annotated[bool, Form()] = False,
) -> Response:
    try:
        gate = access.create_gate(
            session=session,
            actor=actor,
            compound_id=compound_id,
            name=name,
            kind=kind,
            soft_temperature=soft_temperature,
        )
    except Refusal as refused:
        return _gates_page(request, session, actor, None, error=refused.message)
    return RedirectResponse(f"/access?community={gate.community_id}#gate-{gate.id}", 303)


@router.post("/access/gates/{gate_id}/soft")
def soft_mode(
    gate_id: RowId, session: DbSession, actor: CurrentActor, soft: Annotated[bool, Form()] = False
) -> Response:
    gate = access.set_soft_temperature(session=session, actor=actor, gate_id=gate_id, soft=soft)
    return RedirectResponse(f"/access?community={gate.community_id}#gate-{gate.id}", 303)


@router.post("/access/gates/{gate_id}/devices", response_class=HTMLResponse)
def create_device(
    gate_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form(max_length=64)],
) -> Response:
    """A new device; its key is shown on this answer only (never stored in clear)."""
    try:
        device, key = access.create_device(session=session, actor=actor, gate_id=gate_id, name=name)
    except Refusal as refused:
        return _gates_page(request, session, actor, None, error=refused.message)
    gate = access.get_gate(session=session, actor=actor, gate_id=gate_id)
    return _gates_page(request, session, actor, gate.community_id, new_key=key, new_device=device)


@router.post("/access/devices/{device_id}/revoke")
def revoke_device(device_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    device = access.revoke_device(session=session, actor=actor, device_id=device_id)
    return RedirectResponse(f"/access#gate-{device.gate_id}", 303)


# --- alert level -------------------------------------------------------------------------


@router.get("/access/alert", response_class=HTMLResponse)
def alert_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    community: OptionalRowId = None,
    switched: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The level in force for the community and each compound, and the switch."""
    require(actor, Permission.access_read)
    place = _community(session, actor, community)
    settings = {s.place: s for s in access.alert_settings(session=session, community_id=place.id)}
    compounds = [
        (c, access.level_at(session=session, community_id=place.id, compound_id=c.id))
        for c in _compounds(session, place.id)
    ]
    context = {
        "community": place,
        "communities": _communities(session, actor),
        "community_setting": settings.get("community"),
        "settings": settings,
        "compounds": compounds,
        "can_switch": actor.can(Permission.alert_switch),
        "switched": switched,
        **_labels(),
    }
    return render(request, "access/alert.html", context)


@router.post("/access/alert")
def switch_level(
    session: DbSession,
    actor: CurrentActor,
    community_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    level: Annotated[str, Form(max_length=16)],
    compound_id: Annotated[str, Form(max_length=12)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """One action: audited, broadcast, in force at every gate's next decision."""
    compound = int(compound_id) if compound_id.isdigit() else None
    access.set_level(session=session, actor=actor, community_id=community_id, level=level,
                     compound_id=compound, note=note)  # fmt: skip
    return RedirectResponse(f"/access/alert?community={community_id}&switched={level}", 303)


# --- rules and the simulator -------------------------------------------------------------


def _rules_context(session: Session, actor: Actor, community: Community) -> dict[str, Any]:
    rows = access.list_rules(session=session, actor=actor, community_id=community.id)
    rules = [access.to_policy_rule(r) for r in rows]
    gates = access.list_gates(session=session, actor=actor, community_id=community.id)
    return {
        "community": community,
        "communities": _communities(session, actor),
        "rules": rules,
        "rows": {r.id: r for r in rows},
        "gates": gates,
        "gate_names": {g.id: g.name for g in gates},
        "contradictions": policy.contradictions(rules),
        "can_manage": actor.can(Permission.access_manage),
        **_labels(),
    }


@router.get("/access/rules", response_class=HTMLResponse)
def rules_page(
    request: Request, session: DbSession, actor: CurrentActor, community: OptionalRowId = None
) -> Response:
    """The pass rules, their precedence, the contradictions among them, and the editor."""
    require(actor, Permission.access_read)
    place = _community(session, actor, community)
    return render(request, "access/rules.html", _rules_context(session, actor, place))


@router.post("/access/rules", response_class=HTMLResponse)
async def create_rule(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    form = await request.form()
    community_id = str(form.get("community_id", ""))
    place = _community(session, actor, int(community_id) if community_id.isdigit() else None)
    gate = str(form.get("gate_id", ""))
    try:
        access.create_rule(
            session=session, actor=actor, community_id=place.id,
            effect=str(form.get("effect", "")), name=str(form.get("name", ""))[:64],
            roles=[str(v) for v in form.getlist("roles")],
            gate_id=int(gate) if gate.isdigit() else None,
            direction=str(form.get("direction", "")) or None,
            weekdays=[int(str(v)) for v in form.getlist("weekdays") if str(v).isdigit()],
            start_time=str(form.get("start_time", "")) or None,
            end_time=str(form.get("end_time", "")) or None,
            levels=[str(v) for v in form.getlist("levels")],
            quota_exempt=form.get("quota_exempt") == "on",
        )  # fmt: skip
    except Refusal as refused:
        context = _rules_context(session, actor, place)
        context["error"] = refused.message
        return render(request, "access/rules.html", context, status_code=422)
    return RedirectResponse(f"/access/rules?community={place.id}", 303)


@router.post("/access/rules/{rule_id}/delete")
def delete_rule(rule_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    access.delete_rule(session=session, actor=actor, rule_id=rule_id)
    return RedirectResponse("/access/rules", 303)


@router.get("/access/simulate", response_class=HTMLResponse)
def simulate_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    gate_id: OptionalRowId = None,
    person_id: OptionalRowId = None,
    role: Annotated[str | None, Query(max_length=24)] = None,
    direction: Annotated[str, Query(pattern="^(in|out)$")] = "out",
    at: Annotated[str | None, Query(max_length=32)] = None,
    level: Annotated[str | None, Query(max_length=16)] = None,
    temperature: Annotated[str | None, Query(max_length=8)] = None,
) -> Response:
    """Would this person (or role) pass this gate at this time, and why."""
    require(actor, Permission.access_read)
    gates = access.list_gates(session=session, actor=actor)
    zone = records.local_zone()
    moment = dt.datetime.now(zone).replace(tzinfo=None, second=0, microsecond=0)
    error = None
    if at:
        try:
            moment = dt.datetime.fromisoformat(at).replace(tzinfo=None)
        except ValueError:
            error = _("时间要写成 2026-11-30T08:00 这样")
    result = None
    if gate_id is not None and error is None:
        try:
            result = flows.simulate(
                session=session, actor=actor, gate_id=gate_id, direction=direction, at=moment,
                person_id=person_id, role=role or None, level=level or None,
                temperature=temperature or None,
            )  # fmt: skip
        except Refusal as refused:
            error = refused.message
    context = {
        "gates": gates,
        "wanted": {
            "gate_id": gate_id,
            "person_id": person_id,
            "role": role or "",
            "direction": direction,
            "at": moment.strftime("%Y-%m-%dT%H:%M"),
            "level": level or "",
            "temperature": temperature or "",
        },
        "result": result,
        "error": error,
        "gate_names": {g.id: g.name for g in gates},
        **_labels(),
    }
    return render(request, "access/simulate.html", context, status_code=422 if error else 200)


# --- the access record -------------------------------------------------------------------


@router.get("/access/records", response_class=HTMLResponse)
def records_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    filters: Annotated[records.EventFilter, Depends(event_filter)],
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """Search the access record in the account's scope; newest first, 50 a page."""
    found = records.search(
        session=session, actor=actor, filters=filters, limit=50, offset=(page - 1) * 50
    )
    gates = access.list_gates(session=session, actor=actor)
    context = {
        "found": found,
        "gates": gates,
        "page": page,
        "wanted": request.query_params,
        **_labels(),
    }
    return render(request, "access/records.html", context)


@router.get("/access/people/{person_id}", response_class=HTMLResponse)
def person_timeline(
    person_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
    pin: Annotated[str | None, Query(max_length=1)] = None,
) -> Response:
    """One person's passages of the last days (溯源), and the PIN form for managers."""
    found = records.timeline(session=session, actor=actor, person_id=person_id, days=days)
    name = next((r.person_name for r in found.rows if r.person_name), None)
    context = {"found": found, "person_id": person_id, "days": days, "name": name,
               "pin_set": bool(pin), **_labels()}  # fmt: skip
    return render(request, "access/timeline.html", context)


@router.post("/access/people/{person_id}/pin", response_class=HTMLResponse)
def set_pin(
    person_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    pin: Annotated[str, Form(max_length=12)],
) -> Response:
    """Set the person's console PIN (the last resort without face or code)."""
    try:
        access.set_pin(session=session, actor=actor, person_id=person_id, pin=pin.strip())
    except Refusal as refused:
        found = records.timeline(session=session, actor=actor, person_id=person_id)
        context = {"found": found, "person_id": person_id, "days": 14, "name": None,
                   "pin_error": refused.message, **_labels()}  # fmt: skip
        return render(request, "access/timeline.html", context, status_code=422)
    return RedirectResponse(f"/access/people/{person_id}?pin=1", 303)


@router.get("/access/events/{event_id}", response_class=HTMLResponse)
def event_page(
    event_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    row = records.get_event(session=session, actor=actor, event_id=event_id)
    return render(request, "access/event.html", {"e": row, **_labels()})
