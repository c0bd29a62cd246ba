"""Sending a notification (other slices call ``send`` with plain values, in their own
transaction) and reading the inbox: unread counts, lists, marking read.

Who a message reaches, decided when it is sent:

- ``user:12`` — that account.
- ``building_lead@building:5`` — every active account of that role whose scope is the
  node itself, a node above it (a lead responsible for the whole compound is responsible
  for building 5 too) or a node below it (a message to ``building_lead@compound:3``
  reaches the leads of every building of compound 3). Never an account whose scope lies
  beside the node: building 6's lead does not see building 5's messages.
- ``group@building:5`` — the active group chats configured for that node;
  ``group@community:1+below`` also those of every compound and building below it.

A recipient that reaches nobody (a role nobody holds there, a node without a chat) is
kept with the message and listed on the outbox page. Accounts that take a role later do
not receive earlier messages.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from fengchao.auth import service as auth_service
from fengchao.auth.models import ROLE_LABELS, Role, ScopeLevel
from fengchao.auth.service import Actor, GridScope, NotFound, Permission, Refusal
from fengchao.db import begin_write, utcnow
from fengchao.notify.models import (
    Channel,
    Delivery,
    InboxItem,
    Notification,
    NotificationRecipient,
    RecipientKind,
    Urgency,
)
from fengchao.registry import scope as grid
from fengchao.web.i18n import _

ADDRESSABLE = (ScopeLevel.community, ScopeLevel.compound, ScopeLevel.building)
PRIORITY = {Urgency.urgent: 2, Urgency.normal: 1, Urgency.info: 0}
MAX_TITLE = 200
MAX_BODY = 20_000

# Set when a unit of work that queued deliveries commits: a worker in this process (the
# demo, `serve --with-worker`) wakes at once instead of at its next poll.
WAKE = threading.Event()
_QUEUED = "fengchao_notify_queued"


@event.listens_for(Session, "after_commit")
def _wake_worker(session: Session) -> None:
    if session.info.pop(_QUEUED, False):
        WAKE.set()


class BadMessage(Refusal):
    """A notification that cannot be sent as given (names the field)."""

    status = 422


@dataclass(frozen=True)
class Recipient:
    """Whom a notification is for: an account, a role at a node of the grid, or the group
    chats of a node (see the module's docstring)."""

    kind: RecipientKind
    user_id: int | None = None
    role: Role | None = None
    level: ScopeLevel | None = None
    node_id: int | None = None
    below: bool = False

    @classmethod
    def user(cls, user_id: int) -> Recipient:
        return cls(RecipientKind.user, user_id=user_id)

    @classmethod
    def at(cls, role: Role, level: ScopeLevel, node_id: int) -> Recipient:
        return cls(RecipientKind.role, role=role, level=level, node_id=node_id)

    @classmethod
    def group(cls, level: ScopeLevel, node_id: int, *, below: bool = False) -> Recipient:
        return cls(RecipientKind.group, level=level, node_id=node_id, below=below)

    @classmethod
    def parse(cls, text: str) -> Recipient:
        """``user:12``, ``building_lead@building:5``, ``group@compound:3`` or
        ``group@community:1+below``; raises :class:`BadMessage`."""
        text = text.strip()
        if match := re.fullmatch(r"user:(\d{1,10})", text):
            return cls.user(int(match[1]))
        match = re.fullmatch(r"([a-z_]+)@([a-z]+):(\d{1,10})(\+below)?", text)
        if match is None:
            raise BadMessage(
                _(
                    "收件人 {text} 的写法不对"
                    "（例如 building_lead@building:5、group@compound:3、user:12）"
                ).format(text=text[:80]),
                field="to",
            )
        who, level_text, node_id, below = match.groups()
        try:
            level = ScopeLevel(level_text)
        except ValueError:
            raise BadMessage(
                _("收件人 {text}：没有 {level} 这一级网格").format(text=text, level=level_text),
                field="to",
            ) from None
        if who == "group":
            return cls.group(level, int(node_id), below=bool(below))
        try:
            role = Role(who)
        except ValueError:
            raise BadMessage(
                _("收件人 {text}：没有 {role} 这个角色").format(text=text, role=who), field="to"
            ) from None
        if below:
            raise BadMessage(_("收件人 {text}：+below 只用于群").format(text=text), field="to")
        return cls.at(role, level, int(node_id))

    def __str__(self) -> str:
        if self.kind == RecipientKind.user:
            return f"user:{self.user_id}"
        who = "group" if self.kind == RecipientKind.group else str(self.role)
        return f"{who}@{self.level}:{self.node_id}" + ("+below" if self.below else "")


@dataclass(frozen=True)
class Sent:
    """What ``send`` did: the notification, how many inboxes and chats it reached, the
    recipients that reached nobody, and whether its key had been sent before (then
    nothing new was written)."""

    notification_id: int
    inboxes: int
    deliveries: int
    reached_nobody: tuple[str, ...]
    duplicate: bool = False


def _check_link(link: str | None) -> str | None:
    if link is None or link == "":
        return None
    if not link.startswith("/") or link.startswith("//") or "\\" in link or len(link) > 500:
        raise BadMessage(_("链接只能是本平台内的路径（以 / 开头）"), field="link")
    return link


def _check_node(session: Session, recipient: Recipient, community_id: int) -> None:
    assert recipient.level is not None and recipient.node_id is not None
    if recipient.level not in ADDRESSABLE:
        raise BadMessage(_("收件人 {r}：只能发给社区、小区或楼栋").format(r=recipient), field="to")
    lineage = grid.node_lineage(session=session, level=recipient.level, node_id=recipient.node_id)
    if (ScopeLevel.community, community_id) not in lineage:
        raise BadMessage(
            _("收件人 {r}：这个网格节点不存在，或不属于本社区").format(r=recipient), field="to"
        )


def _reach(
    session: Session, recipient: Recipient, community_id: int
) -> tuple[list[int], list[int]]:
    """(account ids, channel ids) a recipient reaches now."""
    if recipient.kind == RecipientKind.user:
        assert recipient.user_id is not None
        account = auth_service.account_scope(session=session, user_id=recipient.user_id)
        if account is None:
            raise BadMessage(_("收件人 {r}：没有这个在用的账号").format(r=recipient), field="to")
        nodes = grid.node_lineage(session=session, level=ScopeLevel.community, node_id=community_id)
        nodes += grid.nodes_within(
            session=session, level=ScopeLevel.community, node_id=community_id
        )
        if (account.level, account.node_id) not in nodes:
            raise BadMessage(_("收件人 {r}：这个账号不负责本社区").format(r=recipient), field="to")
        return [recipient.user_id], []
    _check_node(session, recipient, community_id)
    assert recipient.level is not None and recipient.node_id is not None
    below = grid.nodes_within(session=session, level=recipient.level, node_id=recipient.node_id)
    if recipient.kind == RecipientKind.role:
        assert recipient.role is not None
        lineage = grid.node_lineage(
            session=session, level=recipient.level, node_id=recipient.node_id
        )
        users = auth_service.accounts_with_role(
            session=session, role=recipient.role, nodes=[*lineage, *below]
        )
        return users, []
    nodes = below if recipient.below else [(recipient.level, recipient.node_id)]
    channels = [
        channel.id
        for channel in session.scalars(
            select(Channel).where(Channel.active.is_(True), Channel.community_id == community_id)
        )
        if (channel.node_level, channel.node_id) in nodes
    ]
    return [], channels


def send(
    *,
    session: Session,
    community_id: int,
    kind: str,
    title: str,
    to: Sequence[Recipient | str],
    body: str = "",
    detail: str | None = None,
    urgency: Urgency | str = Urgency.normal,
    link: str | None = None,
    key: str | None = None,
    source: str = "",
    now: dt.datetime | None = None,
) -> Sent:
    """Queue a notification in the caller's transaction: it is in the inboxes and the
    outbox when the caller commits, and nowhere if the caller rolls back.

    ``body`` goes to inboxes and group chats, ``detail`` only to inboxes (put names and
    rooms there: chats are outside the platform). ``link`` is a path of this platform
    (``/registry/buildings/5``). A ``key`` makes the call idempotent: a second call with
    the same key writes nothing and returns the first message. Raises :class:`BadMessage`
    (naming the field) for a message that cannot be sent as given.
    """
    now = now or utcnow()
    if not kind or len(kind) > 32:
        raise BadMessage(_("消息类别不能为空，最多 32 个字符"), field="kind")
    title = title.strip()
    if not title:
        raise BadMessage(_("标题不能为空"), field="title")
    if len(title) > MAX_TITLE:
        raise BadMessage(_("标题太长（最多 {n} 个字符）").format(n=MAX_TITLE), field="title")
    if len(body) > MAX_BODY or len(detail or "") > MAX_BODY:
        raise BadMessage(_("正文太长（最多 {n} 个字符）").format(n=MAX_BODY), field="body")
    try:
        level = Urgency(urgency)
    except ValueError:
        raise BadMessage(_("紧急程度只能是 info、normal 或 urgent"), field="urgency") from None
    if key is not None and not 1 <= len(key) <= 128:
        raise BadMessage(_("幂等键最多 128 个字符"), field="key")
    link = _check_link(link)
    recipients = [r if isinstance(r, Recipient) else Recipient.parse(r) for r in to]
    if not recipients:
        raise BadMessage(_("至少要有一个收件人"), field="to")
    if not grid.grid_node_exists(session=session, level=ScopeLevel.community, node_id=community_id):
        raise BadMessage(_("没有编号为 {id} 的社区").format(id=community_id), field="community_id")
    begin_write(session)
    if key is not None and (found := _sent_before(session, key)) is not None:
        return found
    reach = [(r, *_reach(session, r, community_id)) for r in recipients]
    notification = Notification(
        community_id=community_id,
        kind=kind,
        urgency=level,
        title=title,
        body=body,
        detail=detail,
        link=link,
        source=source[:32],
        key=key,
        created_at=now,
        reached_nobody=any(not users and not channels for _r, users, channels in reach),
    )
    try:
        with session.begin_nested():
            session.add(notification)
            session.flush()
    except IntegrityError:
        # The same key committed meanwhile by another process (PostgreSQL).
        if key is not None and (found := _sent_before(session, key)) is not None:
            return found
        raise
    users: dict[int, None] = {}
    channels: dict[int, None] = {}
    for recipient, reached_users, reached_channels in reach:
        session.add(
            NotificationRecipient(
                notification_id=notification.id,
                kind=recipient.kind,
                user_id=recipient.user_id,
                role=None if recipient.role is None else str(recipient.role),
                node_level=recipient.level,
                node_id=recipient.node_id,
                below=recipient.below,
                reached=len(reached_users) + len(reached_channels),
            )
        )
        users.update(dict.fromkeys(reached_users))
        channels.update(dict.fromkeys(reached_channels))
    for user_id in users:
        session.add(
            InboxItem(
                notification_id=notification.id,
                user_id=user_id,
                community_id=community_id,
                created_at=now,
            )
        )
    for channel_id in channels:
        session.add(
            Delivery(
                notification_id=notification.id,
                channel_id=channel_id,
                community_id=community_id,
                key=uuid.uuid4().hex,
                priority=PRIORITY[level],
                next_attempt_at=now,
                created_at=now,
            )
        )
    session.flush()
    if channels:
        session.info[_QUEUED] = True
    nobody = tuple(str(r) for r, u, c in reach if not u and not c)
    return Sent(notification.id, len(users), len(channels), nobody)


def _sent_before(session: Session, key: str) -> Sent | None:
    notification = session.scalar(select(Notification).where(Notification.key == key))
    if notification is None:
        return None
    inboxes = session.scalar(
        select(func.count()).where(InboxItem.notification_id == notification.id)
    )
    deliveries = session.scalar(
        select(func.count()).where(Delivery.notification_id == notification.id)
    )
    nobody = tuple(recipient_text(r) for r in notification.recipients if r.reached == 0)
    return Sent(notification.id, inboxes or 0, deliveries or 0, nobody, duplicate=True)


def sent_before(*, session: Session, key: str) -> bool:
    """Whether a notification with idempotency ``key`` was queued (a job that builds an
    expensive message asks before building it)."""
    return session.scalar(select(Notification.id).where(Notification.key == key)) is not None


def recipient_text(row: NotificationRecipient) -> str:
    return str(
        Recipient(
            row.kind,
            user_id=row.user_id,
            role=None if row.role is None else Role(row.role),
            level=row.node_level,
            node_id=row.node_id,
            below=row.below,
        )
    )


def describe_recipient(session: Session, row: NotificationRecipient) -> tuple[str, str]:
    """How a recipient reads on a page (华润中央公园 5号楼 · 楼栋长) and its code."""
    code = recipient_text(row)
    if row.kind == RecipientKind.user or row.node_level is None or row.node_id is None:
        return _("账号 #{id}").format(id=row.user_id), code
    place = grid.scope_label(session=session, scope=GridScope(row.node_level, row.node_id))
    if row.kind == RecipientKind.group:
        who = _("工作群（含下属各级）") if row.below else _("工作群")
    else:
        who = _(ROLE_LABELS.get(row.role or "", row.role or ""))
    return f"{place} · {who}", code


# --- the inbox ---------------------------------------------------------------------------


def unread_count(*, session: Session, actor: Actor) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(InboxItem)
            .where(InboxItem.user_id == actor.user_id, InboxItem.read_at.is_(None))
        )
        or 0
    )


def inbox(
    *, session: Session, actor: Actor, limit: int = 30, offset: int = 0, unread_only: bool = False
) -> tuple[list[InboxItem], int]:
    """The actor's inbox, newest first, and how many items it holds in all."""
    where: list[Any] = [InboxItem.user_id == actor.user_id]
    if unread_only:
        where.append(InboxItem.read_at.is_(None))
    total = session.scalar(select(func.count()).select_from(InboxItem).where(*where)) or 0
    items = session.scalars(
        select(InboxItem)
        .options(joinedload(InboxItem.notification))
        .where(*where)
        .order_by(InboxItem.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(items), total


def mark_read(*, session: Session, actor: Actor, item_id: int) -> InboxItem:
    """Mark one item of the actor's own inbox read (another's is not found)."""
    begin_write(session)
    item = session.scalar(
        select(InboxItem)
        .options(joinedload(InboxItem.notification))
        .where(InboxItem.id == item_id, InboxItem.user_id == actor.user_id)
    )
    if item is None:
        raise NotFound(f"inbox item {item_id}")
    if item.read_at is None:
        item.read_at = utcnow()
        session.flush()
    return item


def mark_all_read(*, session: Session, actor: Actor) -> int:
    begin_write(session)
    result = session.execute(
        update(InboxItem)
        .where(InboxItem.user_id == actor.user_id, InboxItem.read_at.is_(None))
        .values(read_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class MessageView:
    notification: Notification
    item: InboxItem | None  # the actor's own inbox item, if it was sent to them
    recipients: list[tuple[str, str]]  # (how it reads, its code)
    community: str


def open_message(*, session: Session, actor: Actor, notification_id: int) -> MessageView:
    """A whole message: for an account it reached (opening it marks it read), or for
    staff who manage notifications of its community. Anyone else: not found."""
    notification = session.get(Notification, notification_id)
    if notification is None:
        raise NotFound(f"notification {notification_id}")
    item = session.scalar(
        select(InboxItem).where(
            InboxItem.notification_id == notification_id, InboxItem.user_id == actor.user_id
        )
    )
    if item is None and not _manages(session, actor, notification.community_id):
        raise NotFound(f"notification {notification_id}")
    if item is not None and item.read_at is None:
        item = mark_read(session=session, actor=actor, item_id=item.id)
        notification = item.notification
    communities = grid.communities_in_scope(session=session, scope=actor.scope)
    name = next((c.name for c in communities if c.id == notification.community_id), "")
    recipients = [describe_recipient(session, r) for r in notification.recipients]
    return MessageView(notification, item, recipients, name)


def _manages(session: Session, actor: Actor, community_id: int) -> bool:
    if not actor.can(Permission.notify_manage):
        return False
    communities = grid.communities_in_scope(session=session, scope=actor.scope)
    if actor.scope.level in (ScopeLevel.compound, ScopeLevel.building):
        return False  # staff below a community manage only their own chats, not its messages
    return any(c.id == community_id for c in communities)


def send_as(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    title: str,
    to: Sequence[Recipient | str],
    body: str = "",
    detail: str | None = None,
    urgency: Urgency | str = Urgency.normal,
    link: str | None = None,
    key: str | None = None,
) -> Sent:
    """A message written by staff (a notice to building leads and groups): their role may
    manage notifications, and every recipient lies within their scope; audited."""
    auth_service.require(actor, Permission.notify_manage)
    if not _manages(session, actor, community_id):
        raise NotFound(f"community {community_id}")
    recipients = [r if isinstance(r, Recipient) else Recipient.parse(r) for r in to]
    for recipient in recipients:
        if recipient.kind == RecipientKind.user:
            continue  # any account of the community (checked by send)
        assert recipient.level is not None and recipient.node_id is not None
        if not grid.node_in_scope(
            session=session, scope=actor.scope, level=recipient.level, node_id=recipient.node_id
        ):
            raise BadMessage(_("收件人 {r}：不在您负责的范围内").format(r=recipient), field="to")
    sent = send(
        session=session,
        community_id=community_id,
        kind="notice",
        title=title,
        to=recipients,
        body=body,
        detail=detail,
        urgency=urgency,
        link=link,
        key=key,
        source=f"user:{actor.user_id}",
    )
    auth_service.audit(
        session=session,
        actor=actor,
        action="notify_send",
        object_type="notification",
        object_id=sent.notification_id,
        community_id=community_id,
        to=[str(r) for r in recipients],
    )
    return sent
