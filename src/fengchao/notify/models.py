"""Tables of notifications: messages and their recipients, inboxes, group chats (robots),
the outbox of deliveries with each attempt, scheduled jobs and the worker lease."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fengchao.auth.models import ScopeLevel
from fengchao.db import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Urgency(enum.StrEnum):
    """How urgent a message is: it orders the outbox and marks the message on screen."""

    info = "info"  # 提示
    normal = "normal"  # 通知
    urgent = "urgent"  # 紧急


class RecipientKind(enum.StrEnum):
    user = "user"  # one account
    role = "role"  # the accounts of a role at a node of the grid (and above or below it)
    group = "group"  # the group chats configured for a node of the grid


class ChannelKind(enum.StrEnum):
    """Which chat service a group chat is reached through (see ``channels.NOTIFIERS``)."""

    wecom = "wecom"  # 企业微信群机器人
    dingtalk = "dingtalk"  # 钉钉自定义机器人
    feishu = "feishu"  # 飞书自定义机器人
    webhook = "webhook"  # a generic JSON webhook, signed with HMAC


class DeliveryState(enum.StrEnum):
    pending = "pending"  # waiting for its time (first attempt, a retry, or the rate limit)
    sending = "sending"  # claimed by a worker until ``lease_until``
    sent = "sent"  # the chat service accepted it
    dead = "dead"  # given up: the last retry failed, or a fault no retry can mend


class Notification(Base):
    """A message a slice raised (通知): what happened, how urgent, and a link back to the
    page. ``body`` reaches inboxes and group chats; ``detail`` only the inboxes of
    accounts (it may name people, which chats outside the platform must not carry)."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    kind: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[Urgency] = mapped_column(_enum(Urgency), default=Urgency.normal)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(32), default="")
    # A caller's idempotency key: the same key sends one message, however often it is sent.
    key: Mapped[str | None] = mapped_column(String(128), unique=True)
    reached_nobody: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    recipients: Mapped[list[NotificationRecipient]] = relationship(
        back_populates="notification", order_by="NotificationRecipient.id"
    )


Index("ix_notification_community_created", Notification.community_id, Notification.created_at)
Index("ix_notification_created_at", Notification.created_at)


class NotificationRecipient(Base):
    """One addressee of a notification as the sender named it, and how many accounts or
    chats it reached when it was sent (0: it reached nobody, shown on the outbox page)."""

    __tablename__ = "notification_recipient"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notification.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[RecipientKind] = mapped_column(_enum(RecipientKind))
    user_id: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(32))
    node_level: Mapped[ScopeLevel | None] = mapped_column(_enum(ScopeLevel))
    node_id: Mapped[int | None] = mapped_column(Integer)
    below: Mapped[bool] = mapped_column(Boolean, default=False)
    reached: Mapped[int] = mapped_column(Integer, default=0)

    notification: Mapped[Notification] = relationship(back_populates="recipients")


class InboxItem(Base):
    """A notification in one account's inbox (收件箱), read or not."""

    __tablename__ = "inbox_item"
    __table_args__ = (UniqueConstraint("notification_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    notification: Mapped[Notification] = relationship()


Index("ix_inbox_item_user_read", InboxItem.user_id, InboxItem.read_at)


class Channel(Base):
    """A group chat a node of the grid reports to (群机器人): a WeCom, DingTalk or Feishu
    robot or a generic webhook. The address and the secret are encrypted at rest (the
    address carries the robot's token); ``url_hint`` is what a page may show of it."""

    __tablename__ = "notify_channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    node_level: Mapped[ScopeLevel] = mapped_column(_enum(ScopeLevel))
    node_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[ChannelKind] = mapped_column(_enum(ChannelKind))
    url_enc: Mapped[str] = mapped_column(String(2048))
    url_hint: Mapped[str] = mapped_column(String(128))
    secret_enc: Mapped[str | None] = mapped_column(String(512))
    keyword: Mapped[str | None] = mapped_column(String(32))
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_test_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_test_error: Mapped[str | None] = mapped_column(String(32))


Index("ix_notify_channel_node", Channel.node_level, Channel.node_id)


class Delivery(Base):
    """One notification on its way to one group chat: a row of the outbox (发件箱).

    Written in the same transaction as the event that raised the notification; a worker
    claims it (``sending`` until ``lease_until``), posts it with no transaction open, and
    records the outcome. ``uncertain`` is set while a post's outcome is unknown: a worker
    that finds it still set after the lease ran out knows the previous worker stopped
    mid-send, sends again and counts the possible duplicate in ``redelivered``.
    """

    __tablename__ = "notify_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notification.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channel.id"))
    community_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState), default=DeliveryState.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    redelivered: Mapped[int] = mapped_column(Integer, default=0)
    last_error_kind: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    notification: Mapped[Notification] = relationship()
    channel: Mapped[Channel] = relationship()


Index("ix_notify_delivery_due", Delivery.state, Delivery.next_attempt_at)
Index("ix_notify_delivery_channel_state", Delivery.channel_id, Delivery.state)


class DeliveryAttempt(Base):
    """One request to a chat service (a delivery's or a test message's): the per-channel
    rate limit counts these, and the outbox page shows why the last ones failed."""

    __tablename__ = "notify_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channel.id"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("notify_delivery.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))


Index("ix_notify_attempt_channel_at", DeliveryAttempt.channel_id, DeliveryAttempt.at)
Index("ix_notify_attempt_at", DeliveryAttempt.at)


class ScheduledJob(Base):
    """A job run every ``every_seconds`` by whichever worker leases it first (定时任务).

    A worker leases a due job until ``lease_until``, runs it, then sets the next run;
    a worker killed while running it leaves the lease to run out, and the job is run
    again by the next worker that finds it due.
    """

    __tablename__ = "scheduled_job"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    every_seconds: Mapped[float] = mapped_column(Float)
    next_run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_result: Mapped[str | None] = mapped_column(String(300))


class WorkerLease(Base):
    """A worker's lease and heartbeat (后台进程). On SQLite the row named "worker" is the
    one lease that lets a single worker run at a time; on PostgreSQL each worker keeps a
    row of its own so the outbox page can say that workers are running."""

    __tablename__ = "worker_lease"

    name: Mapped[str] = mapped_column(String(96), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
