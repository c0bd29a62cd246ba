"""Pages of duty: the register, posts, the week's roster with coverage and holes, the repair
diff, check-in at a post (community workers); sign-up and availability from a phone
(volunteers); the XLSX and iCalendar exports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengchao.access import console
from fengchao.auth.service import NotFound, Permission, require
from fengchao.db import utcnow
from fengchao.duty import exports, service
from fengchao.duty.models import Identity, PostKind
from fengchao.duty.service import DutyRefused
from fengchao.registry.models import Community
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf, templates
from fengchao.web.i18n import _

router = APIRouter(prefix="/duty", dependencies=[Depends(require_csrf)], include_in_schema=False)
templates.env.filters["hole_text"] = service.hole_text

IDENTITY_LABELS = {
    Identity.party_member: "党员",
    Identity.veteran: "退役军人",
    Identity.retired_cadre: "退休干部",
    Identity.teacher: "教师",
    Identity.resident: "居民",
    Identity.property_staff: "物业",
    Identity.community_worker: "社区工作者",
}
KIND_LABELS = {
    PostKind.gate: "卡口",
    PostKind.sampling: "核酸采样点",
    PostKind.patrol: "巡逻",
    PostKind.sweep: "扫楼",
    PostKind.tracing: "流调",
    PostKind.other: "其他",
}
PERIOD_LABELS = {"night": "凌晨 0–8 点", "day": "白天 8–16 点", "evening": "晚上 16–24 点"}
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def _labels() -> dict[str, object]:
    return {
        "identity_labels": IDENTITY_LABELS,
        "kind_labels": KIND_LABELS,
        "period_labels": PERIOD_LABELS,
        "weekdays": WEEKDAYS,
    }


def _community(session: DbSession, actor: CurrentActor, community: int | None) -> Community:
    return service.community_for(session=session, actor=actor, community_id=community)


def _week(week: str | None, community: Community) -> dt.date:
    """The Monday of the week asked for; by default next week in the community's time."""
    try:
        day = dt.date.fromisoformat(week) if week else None
    except ValueError:
        raise DutyRefused(_("日期格式应为 YYYY-MM-DD"), field="week") from None
    return service.week_of(community, day)


Community_ = Annotated[int | None, Query(ge=1)]


# --- the register --------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def home(actor: CurrentActor) -> Response:
    if actor.can(Permission.duty_manage):
        return RedirectResponse("/duty/roster", status_code=303)
    require(actor, Permission.duty_self)
    return RedirectResponse("/duty/me", status_code=303)


def _register_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    community: Community,
    error: DutyRefused | None = None,
    form: Mapping[str, object] | None = None,
) -> Response:
    rows = service.register(session=session, actor=actor, community_id=community.id)
    party = [r for r in rows if r.volunteer.identity == Identity.party_member]
    return render(
        request,
        "duty/register.html",
        {
            "community": community,
            "rows": rows,
            "party_hours": sum(r.hours_served for r in party),
            "party_count": len(party),
            "identities": list(Identity),
            "error": error.message if error else None,
            "field": error.field if error else None,
            "form": form or {},
            **_labels(),
        },
        status_code=422 if error else 200,
    )


@router.get("/register", response_class=HTMLResponse)
def register_page(
    request: Request, session: DbSession, actor: CurrentActor, community: Community_ = None
) -> Response:
    return _register_page(request, session, actor, _community(session, actor, community))


@router.post("/register", response_class=HTMLResponse)
def register_add(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form(max_length=64)] = "",
    phone: Annotated[str, Form(max_length=20)] = "",
    identity: Annotated[str, Form(max_length=20)] = "resident",
    skills: Annotated[str, Form(max_length=200)] = "",
    max_hours_week: Annotated[int, Form(ge=0, le=84)] = 24,
    community: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    row = _community(session, actor, community)
    try:
        service.register_volunteer(
            session=session,
            actor=actor,
            community_id=row.id,
            name=name,
            phone=phone.strip() or None,
            identity=identity,
            skills=skills.replace("，", ",").split(","),
            max_hours_week=max_hours_week,
        )
    except DutyRefused as error:
        form = {"name": name, "phone": phone, "identity": identity, "skills": skills}
        return _register_page(request, session, actor, row, error, form)
    return RedirectResponse(f"/duty/register?community={row.id}", status_code=303)


@router.post("/volunteers/{volunteer_id}/certificates")
def certificate_add(
    volunteer_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    skill: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(max_length=100)] = "",
    expires_on: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    try:
        expires = dt.date.fromisoformat(expires_on) if expires_on else None
    except ValueError:
        raise DutyRefused(_("有效期格式应为 YYYY-MM-DD"), field="expires_on") from None
    certificate = service.add_certificate(
        session=session,
        actor=actor,
        volunteer_id=volunteer_id,
        skill=skill,
        name=name,
        expires_on=expires,
    )
    community = certificate.volunteer.community_id
    return RedirectResponse(f"/duty/register?community={community}", status_code=303)


@router.get("/volunteers/{volunteer_id}/calendar.ics")
def volunteer_calendar(volunteer_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    volunteer, shifts = service.volunteer_shifts(
        session=session, actor=actor, volunteer_id=volunteer_id
    )
    return Response(
        exports.volunteer_ics(volunteer, shifts),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="duty-{volunteer.id}.ics"'},
    )


# --- posts ---------------------------------------------------------------------------


@router.get("/posts", response_class=HTMLResponse)
def posts_page(
    request: Request, session: DbSession, actor: CurrentActor, community: Community_ = None
) -> Response:
    row = _community(session, actor, community)
    return render(
        request,
        "duty/posts.html",
        {
            "community": row,
            "posts": service.posts(session=session, actor=actor, community_id=row.id),
            "kinds": list(PostKind),
            **_labels(),
        },
    )


@router.post("/posts")
def post_add(
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form(max_length=64)],
    kind: Annotated[str, Form(max_length=16)] = "gate",
    place: Annotated[str, Form(max_length=100)] = "",
    community: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    row = _community(session, actor, community)
    service.create_post(
        session=session, actor=actor, community_id=row.id, name=name, kind=kind, place=place
    )
    return RedirectResponse(f"/duty/posts?community={row.id}", status_code=303)


def _time(value: str, field: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise DutyRefused(_("时间格式应为 HH:MM"), field=field) from None


@router.post("/posts/{post_id}/templates")
def template_add(
    post_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form(max_length=32)],
    starts: Annotated[str, Form(max_length=8)],
    ends: Annotated[str, Form(max_length=8)],
    min_people: Annotated[int, Form(ge=-100, le=100)] = 1,
    max_people: Annotated[int, Form(ge=-100, le=100)] = 2,
    skills: Annotated[str, Form(max_length=200)] = "",
    weekdays: Annotated[list[int] | None, Form()] = None,
) -> Response:
    template = service.add_template(
        session=session,
        actor=actor,
        post_id=post_id,
        name=name,
        starts=_time(starts, "starts"),
        ends=_time(ends, "ends"),
        min_people=min_people,
        max_people=max_people,
        skills=skills.replace("，", ",").split(","),
        weekdays=weekdays if weekdays is not None else list(range(7)),
    )
    community = template.post.community_id
    return RedirectResponse(f"/duty/posts?community={community}", status_code=303)


# --- the roster ----------------------------------------------------------------------


@router.get("/roster", response_class=HTMLResponse)
def roster_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    week: Annotated[str | None, Query(max_length=10)] = None,
    community: Community_ = None,
) -> Response:
    row = _community(session, actor, community)
    monday = _week(week, row)
    view = service.roster(session=session, actor=actor, community_id=row.id, monday=monday)
    return render(
        request,
        "duty/roster.html",
        {
            "view": view,
            "community": row,
            "previous": monday - dt.timedelta(days=7),
            "next": monday + dt.timedelta(days=7),
            "now": utcnow(),
            **_labels(),
        },
    )


@router.post("/roster/compute")
def roster_compute(
    session: DbSession,
    actor: CurrentActor,
    week: Annotated[str, Form(max_length=10)],
    community: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    row = _community(session, actor, community)
    monday = _week(week, row)
    service.compute_roster(
        session=session, actor=actor, community_id=row.id, monday=monday, time_limit=10
    )
    return RedirectResponse(
        f"/duty/roster?week={monday.isoformat()}&community={row.id}", status_code=303
    )


@router.post("/roster/post")
def roster_post(
    session: DbSession,
    actor: CurrentActor,
    week: Annotated[str, Form(max_length=10)],
    community: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    row = _community(session, actor, community)
    monday = _week(week, row)
    service.post_roster(session=session, actor=actor, community_id=row.id, monday=monday)
    return RedirectResponse(
        f"/duty/roster?week={monday.isoformat()}&community={row.id}&posted=1", status_code=303
    )


@router.get("/roster.xlsx")
def roster_xlsx(
    session: DbSession,
    actor: CurrentActor,
    week: Annotated[str | None, Query(max_length=10)] = None,
    community: Community_ = None,
) -> Response:
    row = _community(session, actor, community)
    monday = _week(week, row)
    view = service.roster(session=session, actor=actor, community_id=row.id, monday=monday)
    return Response(
        exports.roster_xlsx(view),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="roster-{monday}.xlsx"'},
    )


@router.post("/assignments/{assignment_id}/cancel")
def assignment_cancel(assignment_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    proposal = service.cancel_assignment(session=session, actor=actor, assignment_id=assignment_id)
    return RedirectResponse(f"/duty/repairs/{proposal.id}", status_code=303)


@router.get("/repairs/{repair_id}", response_class=HTMLResponse)
def repair_page(
    repair_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    proposal, lines = service.repair_view(session=session, actor=actor, repair_id=repair_id)
    return render(request, "duty/repair.html", {"proposal": proposal, "lines": lines})


@router.post("/repairs/{repair_id}/confirm")
def repair_confirm(repair_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    service.confirm_repair(session=session, actor=actor, repair_id=repair_id)
    return RedirectResponse(f"/duty/repairs/{repair_id}", status_code=303)


@router.post("/repairs/{repair_id}/discard")
def repair_discard(repair_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    service.discard_repair(session=session, actor=actor, repair_id=repair_id)
    return RedirectResponse(f"/duty/repairs/{repair_id}", status_code=303)


# --- check-in at a post --------------------------------------------------------------


@router.get("/checkin", response_class=HTMLResponse)
def checkin_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    post: Annotated[int | None, Query(ge=1)] = None,
    community: Community_ = None,
) -> Response:
    row = _community(session, actor, community)
    posts = service.posts(session=session, actor=actor, community_id=row.id)
    return render(
        request,
        "duty/checkin.html",
        {"community": row, "posts": posts, "post_id": post, "done": None, "error": None},
    )


@router.post("/checkin", response_class=HTMLResponse)
def checkin_submit(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    post: Annotated[int, Form(ge=1)],
    code: Annotated[str, Form(max_length=80)] = "",
    action: Annotated[str, Form(pattern="^(in|out)$")] = "in",
    community: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    row = _community(session, actor, community)
    posts = service.posts(session=session, actor=actor, community_id=row.id)
    context: dict[str, object] = {"community": row, "posts": posts, "post_id": post}
    try:
        step = service.check_in if action == "in" else service.check_out
        done = step(session=session, actor=actor, post_id=post, code=code)
    except DutyRefused as error:
        return render(
            request,
            "duty/checkin.html",
            {**context, "done": None, "error": error.message},
            status_code=422,
        )
    return render(
        request,
        "duty/checkin.html",
        {**context, "done": done, "action": action, "error": None},
    )


@router.post("/checkin/read-code")
def checkin_read_code(
    actor: CurrentActor, frame: Annotated[UploadFile, File()]
) -> dict[str, str | None]:
    """The resident code in a frame from the check-in page's camera, for browsers without
    a BarcodeDetector of their own (the page fills the code field with it)."""
    require(actor, Permission.duty_manage)
    try:
        pixels = console.decode_frame(frame.file.read(console.MAX_FRAME_BYTES + 1))
    except console.ConsoleRefusal as exc:
        raise DutyRefused(exc.message, field="frame") from None
    found = console.read_codes(pixels)
    return {"code": found[0] if found else None}


# --- the volunteer's own page --------------------------------------------------------


def _me_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    error: DutyRefused | None = None,
    form: Mapping[str, object] | None = None,
) -> Response:
    mine = service.my_duty(session=session, actor=actor)
    return render(
        request,
        "duty/me.html",
        {
            "mine": mine,
            "identities": list(Identity),
            "periods": list(service.PERIODS),
            "error": error.message if error else None,
            "field": error.field if error else None,
            "form": form or {},
            **_labels(),
        },
        status_code=422 if error else 200,
    )


@router.get("/me", response_class=HTMLResponse)
def me_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return _me_page(request, session, actor)


@router.post("/me", response_class=HTMLResponse)
def me_save(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form(max_length=64)] = "",
    phone: Annotated[str, Form(max_length=20)] = "",
    identity: Annotated[str, Form(max_length=20)] = "resident",
    max_hours_week: Annotated[int, Form(ge=0, le=84)] = 16,
    weekly: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        service.sign_up(
            session=session,
            actor=actor,
            name=name,
            phone=phone.strip() or None,
            identity=identity,
            weekly=weekly or [],
            max_hours_week=max_hours_week,
        )
    except DutyRefused as error:
        form = {"name": name, "phone": phone, "identity": identity, "weekly": weekly or []}
        return _me_page(request, session, actor, error, form)
    return RedirectResponse("/duty/me?saved=1", status_code=303)


@router.post("/me/away")
def me_away(
    session: DbSession,
    actor: CurrentActor,
    day: Annotated[str, Form(max_length=10)],
) -> Response:
    volunteer = service.my_volunteer(session=session, actor=actor)
    if volunteer is None:
        raise NotFound("volunteer")
    try:
        when = dt.date.fromisoformat(day)
    except ValueError:
        raise DutyRefused(_("日期格式应为 YYYY-MM-DD"), field="day") from None
    service.add_exception(
        session=session, actor=actor, volunteer_id=volunteer.id, day=when, available=False
    )
    return RedirectResponse("/duty/me?saved=1", status_code=303)


def _catalog_texts() -> list[str]:
    """Never called: lists the label texts above for scripts/update_translations.py (the
    templates translate them with ``_()`` when they show them)."""
    return [
        _("党员"),
        _("退役军人"),
        _("退休干部"),
        _("教师"),
        _("居民"),
        _("物业"),
        _("社区工作者"),
        _("卡口"),
        _("核酸采样点"),
        _("巡逻"),
        _("扫楼"),
        _("流调"),
        _("其他"),
        _("凌晨 0–8 点"),
        _("白天 8–16 点"),
        _("晚上 16–24 点"),
        _("周一"),
        _("周二"),
        _("周三"),
        _("周四"),
        _("周五"),
        _("周六"),
        _("周日"),
    ]
