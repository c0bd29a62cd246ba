"""Pages of the visitors slice: the public form at a poster's address and the visitor's
pass (no account), and the staff pages (today's visitors, approvals, who is inside now,
posters, a printed pass, couriers)."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from fengchao.access import codes
from fengchao.access import service as access
from fengchao.auth.service import Forbidden, Permission, require
from fengchao.db import utcnow
from fengchao.settings import get_settings
from fengchao.visitors import history, posters, service
from fengchao.visitors.models import PassKind, PassStatus, VisitorPass
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf
from fengchao.web.i18n import _

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

MAX_FORM_BYTES = 16 * 1024
FORM_FIELDS = (
    "name", "phone", "id_number", "host_room", "purpose", "stay_hours", "party_size",
    "plate", "travel", "health_code",
)  # fmt: skip


def _client(request: Request) -> str:
    from fengchao.auth.throttle import address_key
    from fengchao.auth.views import client_address

    return address_key(client_address(request))


def _local(moment: dt.datetime | None, pattern: str = "%m-%d %H:%M") -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(get_settings().timezone)).strftime(pattern)


def _stamp(moment: dt.datetime | None) -> str:
    return _local(moment, "%Y-%m-%d %H:%M")


def pass_view(session: Any, row: VisitorPass, now: dt.datetime) -> dict[str, Any]:
    """What a pass page shows (the visitor's, the staff's and the printed one)."""
    active = row.status == PassStatus.active
    expired = active and now >= row.valid_until
    used = row.entries_used >= row.entries_allowed
    token = service.token_for(row) if active and not expired else None
    return {
        "row": row,
        "token": token,
        "svg": codes.qr_svg(token, scale=6) if token else None,
        "gates": service.gate_names(session, list(row.gate_ids or ())),
        "valid_from": _local(row.valid_from),
        "valid_until": _local(row.valid_until),
        "expired": expired,
        "used": used,
        "status_text": _(service.STATUS_LABELS[row.status]),
        "symptoms": [_(service.SYMPTOM_LABELS[s]) for s in row.symptoms or ()],
        "health_code": _(service.HEALTH_CODE_LABELS.get(row.health_code, row.health_code)),
    }


# --- public: the form and the pass ------------------------------------------------------


def _form_page(
    request: Request,
    gate: service.PublicGate,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    token: str | None = None,
) -> Response:
    # A form sent back for a correction keeps its token: its fill time has been shown.
    context = {
        "gate": gate,
        "values": values or {},
        "errors": errors or {},
        "form_token": token or service.form_token(),
        "symptom_labels": service.SYMPTOM_LABELS,
        "health_codes": service.HEALTH_CODE_LABELS,
        "max_stay": service.MAX_STAY_HOURS,
    }
    response = render(request, "visitors/form.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/v/{token}", response_class=HTMLResponse)
def visitor_form(token: str, request: Request, session: DbSession) -> Response:
    """The visitor's one form, opened from the gate poster's QR."""
    gate = service.gate_for_token(session=session, token=token)
    return _form_page(request, gate)


@router.post("/v/{token}", response_class=HTMLResponse)
async def visitor_submit(token: str, request: Request, session: DbSession) -> Response:
    # The form is read here; everything that touches the database runs in the thread pool
    # (a SQLite writer waits for the write lock, which must never block the event loop).
    too_long = int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES
    form = None if too_long else await request.form()
    return await run_in_threadpool(_submit, token, request, session, form)


def _submit(token: str, request: Request, session: Any, form: Any) -> Response:
    gate = service.gate_for_token(session=session, token=token)
    if form is None:
        return _form_page(request, gate, errors={"form": _("提交的内容太长")}, status_code=413)
    values: dict[str, Any] = {name: str(form.get(name) or "")[:200] for name in FORM_FIELDS}
    values["symptoms"] = [str(s)[:20] for s in form.getlist("symptoms")[:10]]
    settings = get_settings().visitors
    now = utcnow()
    if not service.take_rate(
        session=session, kind="addr", value=_client(request),
        limit=settings.per_address_per_hour, now=now,
    ):  # fmt: skip
        return _form_page(
            request, gate, values=values, status_code=429,
            errors={"form": _("提交次数过多，请稍后再试或联系门岗")},
        )  # fmt: skip
    if form.get("website"):
        # The honeypot: a field people never see, which scripts fill in.
        return _form_page(request, gate, values=values, status_code=422,
                          errors={"form": _("表单无法提交，请联系门岗")})  # fmt: skip
    sent_token = str(form.get("form_token") or "")[:80]
    try:
        nonce = service.check_form_token(sent_token, now)
    except service.VisitorRefusal as refused:
        return _form_page(request, gate, values=values, status_code=422,
                          errors={"form": refused.message})  # fmt: skip
    application = service.check_form(values)
    if application.errors:
        return _form_page(
            request, gate, values=values, errors=application.errors, status_code=422,
            token=sent_token,
        )  # fmt: skip
    if not service.take_rate(
        session=session, kind="phone", value=application.phone,
        limit=settings.per_phone_per_hour, now=now,
    ):  # fmt: skip
        return _form_page(
            request, gate, values=values, status_code=429,
            errors={"phone": _("这个手机号提交次数过多，请稍后再试")}, token=sent_token,
        )  # fmt: skip
    try:
        submitted = service.submit(
            session=session, gate=gate, application=application, form_key=nonce, now=now
        )
    except service.VisitorRefusal as refused:
        return _form_page(request, gate, values=values, status_code=422, token=sent_token,
                          errors={refused.field or "form": refused.message})  # fmt: skip
    return RedirectResponse(f"/v/pass/{submitted.link}", status_code=303)


@router.get("/v/pass/{link}", response_class=HTMLResponse)
def visitor_pass(link: str, request: Request, session: DbSession) -> Response:
    """The visitor's pass on their phone: the QR, the validity window, the gates (a
    private link: whoever has it sees the pass, nothing else)."""
    row = service.pass_by_link(session=session, link=link)
    context = {**pass_view(session, row, utcnow()), "public": True}
    response = render(request, "visitors/pass.html", context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# --- staff ------------------------------------------------------------------------------


@router.get("/visitors", response_class=HTMLResponse)
def visitors_home(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    show: Annotated[str, Query(max_length=16)] = "today",
) -> Response:
    """Today's visitors, the approvals waiting, and who is inside now."""
    if show not in ("today", "pending", "inside"):
        show = "today"
    zone = ZoneInfo(get_settings().timezone)
    midnight = dt.datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    if show == "pending":
        rows = service.list_passes(session=session, actor=actor, status=PassStatus.pending)
    elif show == "inside":
        rows = service.list_passes(session=session, actor=actor, inside=True)
    else:
        rows = service.list_passes(session=session, actor=actor, since=midnight)
    pending = len(service.list_passes(session=session, actor=actor, status=PassStatus.pending))
    context = {
        "show": show,
        "rows": rows,
        "pending": pending,
        "status_text": partial(history.status_text, now=utcnow()),
        "local": _local,
    }
    return render(request, "visitors/home.html", context)


@router.get("/visitors/passes/{pass_id}", response_class=HTMLResponse)
def pass_page(
    pass_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    row = service.get_pass(session=session, actor=actor, pass_id=pass_id)
    context = {**pass_view(session, row, utcnow()), "public": False}
    return render(request, "visitors/pass.html", context)


@router.post("/visitors/passes/{pass_id}/decide")
def pass_decide(
    pass_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    approve: Annotated[str, Form(max_length=8)],
) -> Response:
    service.decide_pass(session=session, actor=actor, pass_id=pass_id, approve=approve == "yes")
    return RedirectResponse(f"/visitors/passes/{pass_id}", status_code=303)


@router.post("/visitors/passes/{pass_id}/revoke")
def pass_revoke(pass_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    service.revoke(session=session, actor=actor, pass_id=pass_id)
    return RedirectResponse(f"/visitors/passes/{pass_id}", status_code=303)


@router.get("/visitors/passes/{pass_id}/print", response_class=HTMLResponse)
def pass_print(
    pass_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    """A pass on paper for a visitor without a smartphone."""
    require(actor, Permission.visitors_issue)
    row = service.get_pass(session=session, actor=actor, pass_id=pass_id)
    context = {**pass_view(session, row, utcnow()), "public": False, "printing": True}
    return render(request, "visitors/pass.html", context)


def _issue_gates(session: Any, actor: Any) -> list[Any]:
    return [g for g in access.list_gates(session=session, actor=actor) if g.active]


@router.get("/visitors/issue", response_class=HTMLResponse)
def issue_form(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    kind: Annotated[str, Query(max_length=10)] = "visitor",
) -> Response:
    """A pass typed by the guard in a few keystrokes (gate, name, phone, room), or a
    courier registered by the property."""
    require(actor, Permission.visitors_issue)
    if kind == "courier":
        require(actor, Permission.visitors_manage)
    context: dict[str, Any] = {
        "gates": _issue_gates(session, actor),
        "kind": kind,
        "values": {},
        "error": None,
    }
    return render(request, "visitors/issue.html", context)


@router.post("/visitors/issue", response_class=HTMLResponse)
def issue_submit(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    gate_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    name: Annotated[str, Form(max_length=80)],
    phone: Annotated[str, Form(max_length=20)],
    host_room: Annotated[str, Form(max_length=40)] = "",
    hours: Annotated[int, Form(ge=1, le=24 * service.COURIER_DAYS)] = 2,
    entries: Annotated[int, Form(ge=1, le=service.COURIER_ENTRIES)] = 1,
    plate: Annotated[str, Form(max_length=20)] = "",
    kind: Annotated[str, Form(max_length=10)] = "visitor",
) -> Response:
    pass_kind = PassKind.courier if kind == "courier" else PassKind.visitor
    if pass_kind == PassKind.courier:
        hours, entries = 24 * service.COURIER_DAYS, service.COURIER_ENTRIES
    try:
        row, _link = service.issue(
            session=session, actor=actor, gate_id=gate_id, name=name, phone=phone,
            host_room=host_room, hours=hours, entries=entries, kind=pass_kind,
            plate=plate or None,
        )  # fmt: skip
    except service.VisitorRefusal as refused:
        values = {"gate_id": gate_id, "name": name, "phone": phone, "host_room": host_room,
                  "hours": hours, "entries": entries, "plate": plate}  # fmt: skip
        context = {
            "gates": _issue_gates(session, actor),
            "kind": kind,
            "values": values,
            "error": refused,
        }
        return render(request, "visitors/issue.html", context, status_code=422)
    return RedirectResponse(f"/visitors/passes/{row.id}/print", status_code=303)


@router.get("/visitors/posters", response_class=HTMLResponse)
def posters_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """Every gate in scope with its poster (PDF, PNG) and the rotation."""
    require(actor, Permission.visitors_manage)
    rows = []
    for gate in _issue_gates(session, actor):
        _gate, poster = service.poster_for_gate(session=session, actor=actor, gate_id=gate.id)
        rows.append({"gate": gate, "url": service.poster_url(poster.token), "poster": poster})
    return render(request, "visitors/posters.html", {"rows": rows})


@router.get("/visitors/posters/{gate_id}.{fmt}")
def poster_file(gate_id: RowId, fmt: str, session: DbSession, actor: CurrentActor) -> Response:
    if fmt not in ("pdf", "png"):
        raise Forbidden("format")
    gate, poster = service.poster_for_gate(session=session, actor=actor, gate_id=gate_id)
    from fengchao.registry.models import Compound

    compound = session.get(Compound, gate.compound_id)
    args = {
        "url": service.poster_url(poster.token),
        "compound": compound.name if compound else "",
        "gate": gate.name,
    }
    if fmt == "pdf":
        body, media = posters.pdf(**args), "application/pdf"
    else:
        body, media = posters.png(**args), "image/png"
    filename = f"visitor-poster-{gate.id}.{fmt}"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )


@router.post("/visitors/posters/{gate_id}/rotate")
def poster_rotate(gate_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    service.rotate_poster(session=session, actor=actor, gate_id=gate_id)
    return RedirectResponse("/visitors/posters?rotated=1", status_code=303)


@router.get("/visitors/watch", response_class=HTMLResponse)
def watch_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """The watchlist: people not admitted as visitors, with the reason and the expiry."""
    rows = service.list_watch(session=session, actor=actor)
    context = {"rows": rows, "local": _local, "error": None, "values": {}}
    return render(request, "visitors/watch.html", context)


@router.post("/visitors/watch", response_class=HTMLResponse)
def watch_add(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    reason: Annotated[str, Form(max_length=400)],
    days: Annotated[int, Form(ge=1, le=365)] = 30,
    id_number: Annotated[str, Form(max_length=30)] = "",
    phone: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    community_id = service.actor_community(session, actor)
    try:
        if community_id is None:
            raise service.VisitorRefusal(_("请用社区的账号办理"), field="reason")
        service.add_watch(
            session=session, actor=actor, community_id=community_id, reason=reason,
            days=days, id_number=id_number, phone=phone,
        )  # fmt: skip
    except service.VisitorRefusal as refused:
        rows = service.list_watch(session=session, actor=actor)
        values = {"reason": reason, "days": days, "id_number": id_number, "phone": phone}
        context = {"rows": rows, "local": _local, "error": refused, "values": values}
        return render(request, "visitors/watch.html", context, status_code=422)
    return RedirectResponse("/visitors/watch", status_code=303)


@router.post("/visitors/watch/{watch_id}/remove")
def watch_remove(watch_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    service.remove_watch(session=session, actor=actor, watch_id=watch_id)
    return RedirectResponse("/visitors/watch", status_code=303)


HistoryDate = Annotated[dt.date | None, Query()]
OptionalId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("/visitors/history", response_class=HTMLResponse)
def history_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    since: HistoryDate = None,
    until: HistoryDate = None,
    gate: OptionalId = None,
    building: OptionalId = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    """Visitors of a date range in scope, by gate and host building, a page at a time."""
    history.require_history(actor)
    gates, buildings = history.filter_choices(session=session, actor=actor)
    error = None
    try:
        want = history.wanted(since, until, gate, building)
    except history.HistoryRefused as refused:
        error = refused
        want = history.wanted(None, None, gate, building)
    rows, total = history.page_of(session=session, actor=actor, want=want, page=page)
    context = {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // history.PER_PAGE)),
        "want": want,
        "gates": gates,
        "gate_names": history.gate_names(session, rows),
        "buildings": buildings,
        "error": error,
        "status_text": partial(history.status_text, now=utcnow()),
        "local": _local,
    }
    return render(request, "visitors/history.html", context, status_code=422 if error else 200)


@router.get("/visitors/export.xlsx")
def visitors_export(
    session: DbSession,
    actor: CurrentActor,
    since: HistoryDate = None,
    until: HistoryDate = None,
    gate: OptionalId = None,
    building: OptionalId = None,
    whole_ids: Annotated[bool, Query()] = False,
    reason: Annotated[str, Query(max_length=400)] = "",
) -> Response:
    """The history's selection as XLSX (ID numbers masked unless the role may see them and
    a reason is given; cells that would run as formulas neutralised); audited."""
    from fengchao.tabular import xlsx_bytes

    want = history.wanted(since, until, gate, building)
    sheet = history.export(
        session=session, actor=actor, want=want, local=_stamp, whole_ids=whole_ids,
        reason=reason,
    )  # fmt: skip
    name = f"visitors-{want.since:%Y%m%d}-{want.until:%Y%m%d}.xlsx"
    return Response(
        xlsx_bytes([sheet]),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
