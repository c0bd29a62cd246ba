"""Tables of the access slice: residents' codes, gates and their devices, pass rules,
alert levels, the append-only access record, the household quota counter and the PIN."""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fengchao.db import Base, UTCDateTime, utcnow


class ResidentCode(Base):
    """The version of a person's resident code (通行码): raising it voids every code printed
    or shown before. A person without a row is on version 1, so nothing has to be issued
    before a household can print its cards."""

    __tablename__ = "resident_code"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    rotated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _str_enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class GateKind(enum.StrEnum):
    pedestrian = "pedestrian"  # 人行
    vehicle = "vehicle"  # 车行
    both = "both"


class Gate(Base):
    """A gate (卡口 / 出入口) of a compound, for people, vehicles or both, with the
    directions it serves; ``soft_temperature`` lets a fever pass with an alert."""

    __tablename__ = "access_gate"
    __table_args__ = (UniqueConstraint("compound_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[GateKind] = mapped_column(_str_enum(GateKind))
    allows_in: Mapped[bool] = mapped_column(Boolean, default=True)
    allows_out: Mapped[bool] = mapped_column(Boolean, default=True)
    soft_temperature: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    devices: Mapped[list[Device]] = relationship(back_populates="gate", order_by="Device.id")


class Device(Base):
    """A device at a gate (a face terminal, a plate camera, the guard's console) with its
    own API key: only the SHA-256 of the key is stored, the key is shown once."""

    __tablename__ = "access_device"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    gate_id: Mapped[int] = mapped_column(ForeignKey("access_gate.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    gate: Mapped[Gate] = relationship(back_populates="devices")


class PassRule(Base):
    """A pass rule (通行规则) of a community: allow or deny, by roles, gate, direction,
    weekdays, a local time window and alert levels (empty means any); see
    :mod:`fengchao.access.policy` for the precedence."""

    __tablename__ = "access_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    effect: Mapped[str] = mapped_column(String(8))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    gate_id: Mapped[int | None] = mapped_column(ForeignKey("access_gate.id"))
    direction: Mapped[str | None] = mapped_column(String(8))
    weekdays: Mapped[list[int]] = mapped_column(JSON, default=list)
    start_time: Mapped[str | None] = mapped_column(String(5))
    end_time: Mapped[str | None] = mapped_column(String(5))
    levels: Mapped[list[str]] = mapped_column(JSON, default=list)
    quota_exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class AlertSetting(Base):
    """The alert level (防控等级) in force for a whole community (``compound_id`` None) or
    for one compound, which then overrides the community's. One row per place; its
    history is in the audit log."""

    __tablename__ = "access_alert_level"
    __table_args__ = (UniqueConstraint("community_id", "place"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    compound_id: Mapped[int | None] = mapped_column(ForeignKey("compound.id"))
    place: Mapped[str] = mapped_column(String(24))  # "community" or "compound:ID"
    level: Mapped[str] = mapped_column(String(16))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    set_by: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(String(200), default="")


class AccessEvent(Base):
    """One decision at a gate (通行记录), allowed or refused: append-only, never updated.

    ``occurred_at`` is the device's time when its clock is trusted (else the server's);
    ``late`` marks an event sent after the gate was offline, ``clock_off`` a device clock
    too far from the server's. ``compound_id`` is the gate's, ``building_id`` and
    ``household_id`` the person's (or the vehicle's household), kept on the row so that
    scope filters need no joins. ``idem_scope`` + ``idem_key`` make a retry idempotent,
    ``body_hash`` tells a retry from a different request under the same key.
    """

    __tablename__ = "access_event"
    __table_args__ = (
        Index("ix_access_event_gate_time", "gate_id", "occurred_at"),
        Index("ix_access_event_person_time", "person_id", "occurred_at"),
        Index("ix_access_event_household_time", "household_id", "occurred_at"),
        Index("ix_access_event_community_time", "community_id", "occurred_at"),
        UniqueConstraint("idem_scope", "idem_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(Integer)
    compound_id: Mapped[int] = mapped_column(Integer)
    gate_id: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(4))
    method: Mapped[str] = mapped_column(String(8))
    decision: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    person_id: Mapped[int | None] = mapped_column(Integer)
    household_id: Mapped[int | None] = mapped_column(Integer)
    building_id: Mapped[int | None] = mapped_column(Integer)
    vehicle_id: Mapped[int | None] = mapped_column(Integer)
    plate_read: Mapped[str | None] = mapped_column(String(32))
    match_how: Mapped[str | None] = mapped_column(String(16))
    masked: Mapped[bool] = mapped_column(Boolean, default=False)
    distance: Mapped[float | None] = mapped_column(Float)
    temperature: Mapped[float | None] = mapped_column(Float)
    retest_temperature: Mapped[float | None] = mapped_column(Float)
    alert_level: Mapped[str] = mapped_column(String(16))
    device_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    server_time: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    clock_off: Mapped[bool] = mapped_column(Boolean, default=False)
    operator_id: Mapped[int | None] = mapped_column(Integer)
    operator_name: Mapped[str | None] = mapped_column(String(64))
    idem_scope: Mapped[str | None] = mapped_column(String(24))
    idem_key: Mapped[str | None] = mapped_column(String(128))
    body_hash: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class QuotaUse(Base):
    """How many passes out a household has used in one quota period (封闭管理出入额度),
    taken with one conditional UPDATE so that two gates cannot both take the last one."""

    __tablename__ = "access_quota_use"

    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    community_id: Mapped[int] = mapped_column(Integer, index=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class PersonPin(Base):
    """A resident's console PIN (最后手段): an argon2 hash, the failures in a row and the
    lock they lead to."""

    __tablename__ = "access_pin"

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    community_id: Mapped[int] = mapped_column(Integer, index=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
