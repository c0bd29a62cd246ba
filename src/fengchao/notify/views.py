"""Pages of notifications: the bell and the inbox (everyone), a message, writing a notice,
the group chats of the grid with their test button, and the outbox (staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Permission, Refusal, require
from fengchao.db import utcnow
from fengchao.notify import channels as chans
from fengchao.notify import groups, outbox, service
from fengchao.notify.models import Urgency
from fengchao.notify.render import URGENCY_LABELS
from fengchao.registry import scope as grid
from fengchao.settings import get_settings
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf, templates
from fengchao.web.i18n import _

router = APIRouter(prefix="/notify", dependencies=[Depends(require_csrf)], include_in_schema=False)

templates.env.globals["urgency_labels"] = URGENCY_LABELS
templates.env.filters["failure_text"] = chans.failure_text

PER_PAGE = 30
# Roles a notice may be addressed to, in the order the form lists them.
NOTICE_ROLES = (Role.building_lead, Role.community_worker, Role.property_staff, Role.guard)


def _htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def public_base(request: Request) -> str:
    """Where people open the platform: the setting, else the address of this request."""
    return get_settings().notify.public_url or str(request.base_url).rstrip("/")


# --- bell and inbox --------------------------------------------------------------------


@router.get("/bell", response_class=HTMLResponse)
def bell(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    count = service.unread_count(session=session, actor=actor)
    return render(request, "notify/_bell.html", {"count": count, "initial": False})


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    unread: Annotated[bool, Query()] = False,
) -> Response:
    items, total = service.inbox(
        session=session,
        actor=actor,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
        unread_only=unread,
    )
    return render(
        request,
        "notify/inbox.html",
        {
            "items": items,
            "total": total,
            "unread_count": service.unread_count(session=session, actor=actor),
            "unread": unread,
            "page": page,
            "pages": max(1, -(-total // PER_PAGE)),
        },
    )


@router.post("/inbox/{item_id}/read", response_class=HTMLResponse)
def mark_read(
    item_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    item = service.mark_read(session=session, actor=actor, item_id=item_id)
    if not _htmx(request):
        return RedirectResponse("/notify/inbox", status_code=303)
    response = render(request, "notify/_item.html", {"item": item})
    response.headers["HX-Trigger"] = "notify-read"  # the bell counts again
    return response


@router.post("/inbox/read-all")
def mark_all_read(session: DbSession, actor: CurrentActor) -> Response:
    service.mark_all_read(session=session, actor=actor)
    return RedirectResponse("/notify/inbox", status_code=303)


@router.get("/messages/{notification_id}", response_class=HTMLResponse)
def message_page(
    notification_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    view = service.open_message(session=session, actor=actor, notification_id=notification_id)
    return render(request, "notify/message.html", {"view": view, "n": view.notification})


# --- writing a notice ----------------------------------------------------------------------


def _compose_context(session: DbSession, actor: CurrentActor, **extra: object) -> dict[str, object]:
    return {
        "nodes": grid.nodes_in_scope(session=session, scope=actor.scope),
        "roles": NOTICE_ROLES,
        "urgencies": list(Urgency),
        "error": None,
        "field": None,
        "form": {},
        **extra,
    }


@router.get("/compose", response_class=HTMLResponse)
def compose_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    require(actor, Permission.notify_manage)
    return render(request, "notify/compose.html", _compose_context(session, actor))


@router.post("/compose", response_class=HTMLResponse)
def compose(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    node: Annotated[str, Form(max_length=40)] = "",
    title: Annotated[str, Form(max_length=400)] = "",
    body: Annotated[str, Form(max_length=20000)] = "",
    urgency: Annotated[str, Form(max_length=16)] = "normal",
    roles: Annotated[list[str] | None, Form()] = None,
    groups_too: Annotated[bool, Form(alias="groups")] = False,
) -> Response:
    require(actor, Permission.notify_manage)
    form = {"node": node, "title": title, "body": body, "urgency": urgency,
            "roles": roles or [], "groups": groups_too}  # fmt: skip
    try:
        level_text, _sep, id_text = node.partition(":")
        if not id_text.isdigit() or level_text not in ScopeLevel.__members__:
            raise service.BadMessage(_("请选择发给哪个网格节点"), field="node")
        level, node_id = ScopeLevel(level_text), int(id_text)
        to: list[service.Recipient] = [
            service.Recipient.at(Role(r), level, node_id)
            for r in roles or []
            if r in Role.__members__
        ]
        if groups_too:
            to.append(service.Recipient.group(level, node_id, below=True))
        if not to:
            raise service.BadMessage(_("请至少选择一类收件人"), field="roles")
        lineage = grid.node_lineage(session=session, level=level, node_id=node_id)
        community_id = next((i for lvl, i in lineage if lvl == ScopeLevel.community), 0)
        sent = service.send_as(
            session=session,
            actor=actor,
            community_id=community_id,
            title=title,
            body=body,
            urgency=urgency,
            to=to,
        )
    except Refusal as refusal:
        context = _compose_context(
            session, actor, error=refusal.message, field=refusal.field, form=form
        )
        return render(request, "notify/compose.html", context, status_code=refusal.status)
    return RedirectResponse(f"/notify/messages/{sent.notification_id}", status_code=303)


# --- group chats -------------------------------------------------------------------------------


def _channels_context(
    session: DbSession, actor: CurrentActor, **extra: object
) -> dict[str, object]:
    return {
        "rows": groups.list_channels(session=session, actor=actor),
        "nodes": grid.nodes_in_scope(session=session, scope=actor.scope),
        "kinds": [(kind, groups.kind_label(kind)) for kind in chans.NOTIFIERS],
        "error": None,
        "field": None,
        "form": {},
        **extra,
    }


def _form(
    node: str, name: str, kind: str, url: str, secret: str, keyword: str, rate: str, clear: bool
) -> groups.ChannelForm:
    rate_value = int(rate) if rate.strip().isdigit() else None
    if rate.strip() and rate_value is None:
        raise service.BadMessage(_("每分钟条数应为整数"), field="rate_per_minute")
    return groups.ChannelForm(node, name, kind, url, secret, keyword, rate_value, clear)


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return render(request, "notify/channels.html", _channels_context(session, actor))


@router.post("/channels", response_class=HTMLResponse)
def add_channel(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    node: Annotated[str, Form(max_length=40)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    url: Annotated[str, Form(max_length=2000)] = "",
    secret: Annotated[str, Form(max_length=400)] = "",
    keyword: Annotated[str, Form(max_length=100)] = "",
    rate_per_minute: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    require(actor, Permission.notify_manage)
    kept = {
        "node": node,
        "name": name,
        "kind": kind,
        "keyword": keyword,
        "rate_per_minute": rate_per_minute,
    }
    try:
        form = _form(node, name, kind, url, secret, keyword, rate_per_minute, False)
        groups.save_channel(
            session=session, actor=actor, form=form, own_origins=[str(request.base_url)]
        )
    except Refusal as refusal:
        context = _channels_context(
            session, actor, error=refusal.message, field=refusal.field, form=kept
        )
        return render(request, "notify/channels.html", context, status_code=refusal.status)
    return RedirectResponse("/notify/channels", status_code=303)


@router.get("/channels/{channel_id}", response_class=HTMLResponse)
def channel_page(
    channel_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    channel = groups.get_channel(session=session, actor=actor, channel_id=channel_id)
    return render(request, "notify/channel.html", _channel_context(session, actor, channel))


def _channel_context(
    session: DbSession, actor: CurrentActor, channel: object, **extra: object
) -> dict[str, object]:
    return {
        "channel": channel,
        "nodes": grid.nodes_in_scope(session=session, scope=actor.scope),
        "kinds": [(kind, groups.kind_label(kind)) for kind in chans.NOTIFIERS],
        "error": None,
        "field": None,
        "result": None,
        **extra,
    }


@router.post("/channels/{channel_id}", response_class=HTMLResponse)
def change_channel(
    channel_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    node: Annotated[str, Form(max_length=40)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    url: Annotated[str, Form(max_length=2000)] = "",
    secret: Annotated[str, Form(max_length=400)] = "",
    keyword: Annotated[str, Form(max_length=100)] = "",
    rate_per_minute: Annotated[str, Form(max_length=10)] = "",
    clear_secret: Annotated[bool, Form()] = False,
) -> Response:
    try:
        form = _form(node, name, kind, url, secret, keyword, rate_per_minute, clear_secret)
        groups.save_channel(
            session=session,
            actor=actor,
            form=form,
            channel_id=channel_id,
            own_origins=[str(request.base_url)],
        )
    except Refusal as refusal:
        channel = groups.get_channel(session=session, actor=actor, channel_id=channel_id)
        context = _channel_context(
            session, actor, channel, error=refusal.message, field=refusal.field
        )
        return render(request, "notify/channel.html", context, status_code=refusal.status)
    return RedirectResponse("/notify/channels", status_code=303)


@router.post("/channels/{channel_id}/remove")
def remove_channel(channel_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    groups.remove_channel(session=session, actor=actor, channel_id=channel_id)
    return RedirectResponse("/notify/channels", status_code=303)


@router.post("/channels/{channel_id}/test", response_class=HTMLResponse)
def test_channel(
    channel_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    """Send a test message now; the answer replaces the button's result line."""
    try:
        result = groups.test_channel(
            session=session, actor=actor, channel_id=channel_id, public_url=public_base(request)
        )
    except groups.TooManyTests as refusal:
        if not _htmx(request):
            raise
        result = groups.TestResult(False, "too_many_tests", refusal.message)
    context = {"result": result, "channel_id": channel_id}
    if _htmx(request):
        return render(request, "notify/_test_result.html", context)
    channel = groups.get_channel(session=session, actor=actor, channel_id=channel_id)
    return render(
        request, "notify/channel.html", _channel_context(session, actor, channel, result=result)
    )


# --- the outbox ---------------------------------------------------------------------------------


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    view = outbox.outbox_view(session=session, actor=actor, now=utcnow())
    return render(request, "notify/outbox.html", {"view": view, "now": utcnow()})


@router.post("/deliveries/{delivery_id}/retry")
def retry_delivery(delivery_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    outbox.retry_now(session=session, actor=actor, delivery_id=delivery_id, now=utcnow())
    return RedirectResponse("/notify/outbox", status_code=303)
