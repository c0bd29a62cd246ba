"""JSON routes of notifications: the caller's inbox, and notices from staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fengchao.notify import schemas, service
from fengchao.notify.models import InboxItem
from fengchao.web.deps import CurrentActor, DbSession, RowId, require_csrf

router = APIRouter(prefix="/api/notify", tags=["notify"], dependencies=[Depends(require_csrf)])


def _read(item: InboxItem) -> schemas.InboxItemRead:
    n = item.notification
    return schemas.InboxItemRead(
        id=item.id,
        notification_id=n.id,
        kind=n.kind,
        urgency=n.urgency,
        title=n.title,
        body=n.body,
        detail=n.detail,
        link=n.link,
        created_at=item.created_at,
        read=item.read_at is not None,
    )


@router.get("/inbox", response_model=list[schemas.InboxItemRead])
def inbox(
    session: DbSession,
    actor: CurrentActor,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[schemas.InboxItemRead]:
    """The caller's inbox, newest first."""
    items, _total = service.inbox(
        session=session, actor=actor, limit=limit, offset=offset, unread_only=unread
    )
    return [_read(item) for item in items]


@router.get("/unread", response_model=schemas.Unread)
def unread(session: DbSession, actor: CurrentActor) -> schemas.Unread:
    return schemas.Unread(unread=service.unread_count(session=session, actor=actor))


@router.post("/inbox/{item_id}/read", response_model=schemas.InboxItemRead)
def mark_read(item_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.InboxItemRead:
    return _read(service.mark_read(session=session, actor=actor, item_id=item_id))


@router.post("/messages", response_model=schemas.NotificationSent, status_code=201)
def send_notice(
    notice: schemas.NotificationCreate, session: DbSession, actor: CurrentActor
) -> schemas.NotificationSent:
    """Send a notice to roles, groups or accounts within the caller's scope (staff who
    manage notifications); a repeated ``key`` sends nothing new."""
    sent = service.send_as(
        session=session,
        actor=actor,
        community_id=notice.community_id,
        title=notice.title,
        body=notice.body,
        detail=notice.detail,
        urgency=notice.urgency,
        link=notice.link,
        to=notice.to,
        key=notice.key,
    )
    return schemas.NotificationSent(
        notification_id=sent.notification_id,
        inboxes=sent.inboxes,
        deliveries=sent.deliveries,
        reached_nobody=list(sent.reached_nobody),
        duplicate=sent.duplicate,
    )
