"""The gate console's routes: the page a guard leaves running at a gate, the JSON it
posts frames, codes, picks and overrules to (session login + CSRF header), and the
htmx partials it polls (the gate's last events, the alert-level banner)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from fengchao.access import console
from fengchao.web import STATIC_DIR
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf
from fengchao.web.i18n import _

SERVICE_WORKER = STATIC_DIR / "js" / "console-sw.js"

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api = APIRouter(prefix="/api/gates", dependencies=[Depends(require_csrf)], tags=["gates"])


@router.get("/gates", response_class=HTMLResponse)
def gate_list(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """The gates in the account's scope, each with its console."""
    gates = console.gates_to_operate(session=session, actor=actor)
    return render(request, "access/console/gates.html", {"gates": gates})


@router.get("/gates/console-sw.js", include_in_schema=False)
def console_service_worker() -> Response:
    """The console's service worker, served under /gates/ so that its scope covers every
    console page (a script under /static/ could only control /static/)."""
    return FileResponse(
        SERVICE_WORKER,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/gates/"},
    )


@router.get("/gates/{gate_id}/console", response_class=HTMLResponse)
def console_page(
    gate_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    """The console of one gate: camera, the big card, the guard's keys."""
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    events = console.recent_events(session=session, gate=gate)
    context = {
        "gate": gate,
        "events": events,
        "override_reasons": [
            (digit, code, console.reason_text(code)) for digit, code in console.OVERRIDE_REASONS
        ],
        "provinces": PROVINCES,
        "declared_roles": console.declared_roles(),
    }
    return render(request, "access/console/page.html", context)


@router.get("/gates/{gate_id}/console/events", response_class=HTMLResponse)
def console_events(
    gate_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    events = console.recent_events(session=session, gate=gate)
    return render(request, "access/console/_events.html", {"gate": gate, "events": events})


@router.get("/gates/{gate_id}/console/people/{person_id}/face.jpg")
def console_face(
    gate_id: RowId, person_id: RowId, session: DbSession, actor: CurrentActor
) -> Response:
    """The card's face thumbnail (someone decided at this gate minutes ago; audited)."""
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    jpeg = console.card_thumbnail(session=session, actor=actor, gate=gate, person_id=person_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.get("/gates/{gate_id}/console/banner", response_class=HTMLResponse)
def console_banner(
    gate_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    return render(request, "access/console/_banner.html", {"gate": gate})


@api.get("/{gate_id}/console/ping")
def console_ping(gate_id: RowId, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    """The page's heartbeat: reachable, still logged in, the level in force."""
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    return {"ok": True, "level": gate.level, "level_text": gate.level_text}


@api.post("/{gate_id}/console/pass")
def console_pass(
    gate_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    key: Annotated[str, Form(max_length=128)],
    method: Annotated[Literal["frame", "code", "person", "plate", "room", "role"], Form()],
    direction: Annotated[Literal["in", "out"], Form()],
    value: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
    mode: Annotated[Literal["person", "vehicle"], Form()] = "person",
    temperature: Annotated[str, Form(max_length=16)] = "",
    retest: Annotated[str, Form(max_length=16)] = "",
    device_time: Annotated[str, Form(max_length=40)] = "",
    sent_at: Annotated[str, Form(max_length=40)] = "",
    frame: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    """One passage from the console; answers the card as JSON. ``device_time`` and
    ``sent_at`` come with events the page kept while the server was away (marked late)."""
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    base: dict[str, Any] = {
        "gate_id": gate.id,
        "direction": direction,
        "temperature": console.parse_temperature(temperature),
        "retest_temperature": console.parse_temperature(retest),
        "device_time": console.parse_device_time(device_time, "device_time"),
        "device_sent_at": console.parse_device_time(sent_at, "sent_at"),
        "idempotency_key": console.check_key(key),
    }
    if method == "frame":
        if frame is None:
            raise console.ConsoleRefusal(_("画面缺失"), field="frame")
        data = frame.file.read(console.MAX_FRAME_BYTES + 1)
        answer = console.pass_frame(
            session=session, actor=actor, gate=gate, frame=data, mode=mode, base=base
        )
    elif method == "room":
        person_id = console.person_by_room(
            session=session, actor=actor, gate=gate, room=value, name=name
        )
        answer = console.pass_value(
            session=session, actor=actor, gate=gate, method="person", value=str(person_id),
            base=base,
        )  # fmt: skip
    else:
        answer = console.pass_value(
            session=session, actor=actor, gate=gate, method=method, value=value, base=base
        )
    return JSONResponse(console.card(session, answer, gate))


@api.get("/{gate_id}/console/people")
def console_people(
    gate_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    q: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    """Flats of the gate's compound by room ("5-2-1302") or residents by name, to pick."""
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    return {"households": console.people_at(session=session, actor=actor, gate=gate, query=q)}


@api.post("/{gate_id}/console/overrule")
def console_overrule(
    gate_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    key: Annotated[str, Form(max_length=128)],
    event_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    reason: Annotated[str, Form(max_length=32)],
    note: Annotated[str, Form(max_length=200)] = "",
) -> JSONResponse:
    """The guard reverses the card's decision, with a reason (recorded, audited)."""
    gate = console.console_gate(session=session, actor=actor, gate_id=gate_id)
    decision = console.overrule(
        session=session, actor=actor, gate=gate, event_id=event_id, reason=reason, note=note,
        key=key,
    )  # fmt: skip
    return JSONResponse(console.card(session, console.ConsoleAnswer(decision), gate))


# The province characters of Chinese plates, 闽 (Fujian, the reference community's) first.
PROVINCES = tuple("闽京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉贵粤青藏川宁琼")
