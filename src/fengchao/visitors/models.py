"""Tables of the visitors slice: each gate's poster token, the visitor passes (one row per
application: who, whom they visit, the health declaration, the pass and its use) and the
form's rate counters."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fengchao.db import Base, UTCDateTime, utcnow


def _str_enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class VisitorPoster(Base):
    """A gate's visitor poster (访客二维码): the opaque token its QR's address carries
    (never the gate id). Rotating it (a new token, the version raised) voids the printed
    posters and the passes applied for through them and not yet used."""

    __tablename__ = "visitor_poster"

    gate_id: Mapped[int] = mapped_column(
        ForeignKey("access_gate.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    rotated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PassKind(enum.StrEnum):
    visitor = "visitor"  # 访客
    courier = "courier"  # 快递、外卖


class PassStatus(enum.StrEnum):
    pending = "pending"  # 待审批
    active = "active"  # 有效 (within its window; expiry is read from valid_until)
    refused = "refused"  # 未批准
    revoked = "revoked"  # 已撤销


class VisitorPass(Base):
    """A visitor's or courier's pass (访客通行证) with the application behind it: who they
    are (the ID number encrypted, hashed and masked like the registry's), whom they visit,
    the health declaration as declared, the gates and the validity window, entries
    allowed and used, and whether the holder is inside now."""

    __tablename__ = "visitor_pass"
    __table_args__ = (
        Index("ix_visitor_pass_community_created", "community_id", "created_at"),
        Index("ix_visitor_pass_community_plate", "community_id", "plate"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"), index=True)
    kind: Mapped[PassKind] = mapped_column(_str_enum(PassKind), default=PassKind.visitor)
    status: Mapped[PassStatus] = mapped_column(_str_enum(PassStatus), default=PassStatus.pending)
    name: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(11))
    id_number_enc: Mapped[str | None] = mapped_column(String(128))
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    id_mask: Mapped[str | None] = mapped_column(String(18))
    host_household_id: Mapped[int | None] = mapped_column(
        ForeignKey("household.id", ondelete="SET NULL"), index=True
    )
    host_building_id: Mapped[int | None] = mapped_column(
        ForeignKey("building.id", ondelete="SET NULL"), index=True
    )
    host_place: Mapped[str] = mapped_column(String(64), default="")
    purpose: Mapped[str] = mapped_column(String(100), default="")
    stay_hours: Mapped[int] = mapped_column(Integer, default=2)
    party_size: Mapped[int] = mapped_column(Integer, default=1)
    plate: Mapped[str | None] = mapped_column(String(12))
    symptoms: Mapped[list[str]] = mapped_column(JSON, default=list)
    travel: Mapped[str] = mapped_column(String(100), default="")
    health_code: Mapped[str] = mapped_column(String(8), default="green")
    gate_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    poster_gate_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_gate.id", ondelete="SET NULL")
    )
    poster_version: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    entries_allowed: Mapped[int] = mapped_column(Integer, default=1)
    entries_used: Mapped[int] = mapped_column(Integer, default=0)
    inside: Mapped[bool] = mapped_column(Boolean, default=False)
    last_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    link_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    form_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(String(200), default="")
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class VisitorRate(Base):
    """A fixed-window counter of form submissions per client address or phone (the key
    is a keyed hash, never the address or number in clear)."""

    __tablename__ = "visitor_rate"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=0)


class VisitorWatch(Base):
    """A person staff do not admit as a visitor (访客限制名单), by the keyed hash of the ID
    number or by the mobile number, with a reason for staff and an expiry; the form and the
    gate honour it without telling the visitor why."""

    __tablename__ = "visitor_watch"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    id_mask: Mapped[str | None] = mapped_column(String(18))
    phone: Mapped[str | None] = mapped_column(String(11), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
