"""Tables of accounts, login sessions, failed-login throttling and the audit log."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fengchao.db import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    """What an account does in the community."""

    admin = "admin"
    community_worker = "community_worker"  # 社区干部
    building_lead = "building_lead"  # 楼栋长 / 楼栋党小组
    property_staff = "property_staff"  # 物业
    guard = "guard"  # 卡口
    sampler = "sampler"  # 采样点
    volunteer = "volunteer"  # 志愿者


# How each role reads on screen (Chinese message ids; English via the catalog).
ROLE_LABELS: dict[str, str] = {
    Role.admin: "管理员",
    Role.community_worker: "社区干部",
    Role.building_lead: "楼栋长",
    Role.property_staff: "物业",
    Role.guard: "卡口值守",
    Role.sampler: "采样点工作人员",
    Role.volunteer: "志愿者",
}


class ScopeLevel(enum.StrEnum):
    """The node of the grid an account is limited to."""

    street = "street"
    community = "community"
    compound = "compound"
    building = "building"


class User(Base):
    """A login account (账号), scoped to one node of the grid.

    The username is stored normalised (NFKC, trimmed, lower-case), so uniqueness and login
    are case-insensitive: a phone keyboard that capitalises the first letter still logs in.
    """

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    )
    scope_level: Mapped[ScopeLevel] = mapped_column(
        Enum(
            ScopeLevel,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    scope_id: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginSession(Base):
    """A server-side login session; the cookie carries only a random token whose hash is here."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class ThrottleKind(enum.StrEnum):
    """What a failed-login counter is kept for."""

    account = "account"  # the typed account name, normalised (whether the account exists or not)
    address = "address"  # the client address (an IPv6 client by its /64 network)


class LoginThrottle(Base):
    """Failed logins of one account name or one client address (登录限速).

    Kept in the database so that every web process sees the same counts. ``failures`` is
    a leaky bucket: one failure is forgiven per ``forgive_minutes`` since the last one.
    Attempts before ``retry_at`` are refused without checking the password; ``locked``
    says that the wait is a lock (account rows only).
    """

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ThrottleKind] = mapped_column(
        Enum(
            ThrottleKind,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    key: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    retry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    locked: Mapped[bool] = mapped_column(Boolean, default=False)


Index("ix_login_throttle_last_failure_at", LoginThrottle.last_failure_at)


class AuditEvent(Base):
    """One audited act (审计日志): a read of personal data or a change. Append-only."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    community_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


Index("ix_audit_event_at", AuditEvent.at)
Index("ix_audit_event_object", AuditEvent.object_type, AuditEvent.object_id)
