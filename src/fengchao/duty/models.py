"""Tables of duty: volunteers (志愿者) with certificates and availability, posts (岗位) with
shift templates, the shifts of a roster (排班), assignments, check-ins, and the repair
proposed after a cancellation."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fengchao.db import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Identity(enum.StrEnum):
    """Who the volunteer is (党员亮身份: the identity shows on the register and their page)."""

    party_member = "party_member"  # 党员
    veteran = "veteran"  # 退役军人
    retired_cadre = "retired_cadre"  # 退休干部
    teacher = "teacher"  # 教师
    resident = "resident"  # 居民
    property_staff = "property_staff"  # 物业
    community_worker = "community_worker"  # 社区工作者


class PostKind(enum.StrEnum):
    gate = "gate"  # 卡口
    sampling = "sampling"  # 核酸采样点
    patrol = "patrol"  # 巡逻
    sweep = "sweep"  # 扫楼
    tracing = "tracing"  # 流调
    other = "other"


class AssignmentStatus(enum.StrEnum):
    assigned = "assigned"
    cancelled = "cancelled"  # the volunteer dropped out; kept for the record


class RepairStatus(enum.StrEnum):
    proposed = "proposed"
    confirmed = "confirmed"
    discarded = "discarded"


class Volunteer(Base):
    """A volunteer of the community (志愿者): identity, contact, skills, weekly hours.

    Optionally the registry's person (their resident code checks them in) and an account
    (their phone page). ``weekly`` is the standing availability as a list of
    ``"<weekday 0–6>-<period>"`` (periods: night 00–08, day 08–16, evening 16–24).
    """

    __tablename__ = "duty_volunteer"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(20))
    identity: Mapped[Identity] = mapped_column(_enum(Identity), default=Identity.resident)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_hours_week: Mapped[int] = mapped_column(Integer, default=24)
    weekly: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    certificates: Mapped[list[Certificate]] = relationship(
        back_populates="volunteer", cascade="all, delete-orphan", order_by="Certificate.id"
    )
    exceptions: Mapped[list[AvailabilityException]] = relationship(
        back_populates="volunteer",
        cascade="all, delete-orphan",
        order_by="AvailabilityException.day",
    )


class Certificate(Base):
    """A certificate that grants a skill until it expires (医护资格: medical; 流调培训: tracing)."""

    __tablename__ = "duty_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(
        ForeignKey("duty_volunteer.id", ondelete="CASCADE"), index=True
    )
    skill: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100), default="")
    expires_on: Mapped[dt.date | None] = mapped_column(Date)

    volunteer: Mapped[Volunteer] = relationship(back_populates="certificates")


class AvailabilityException(Base):
    """One day that differs from the weekly pattern: away (``available`` false) or extra."""

    __tablename__ = "duty_availability_exception"
    __table_args__ = (UniqueConstraint("volunteer_id", "day", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(
        ForeignKey("duty_volunteer.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(8), default="all")  # all, night, day, evening
    available: Mapped[bool] = mapped_column(Boolean, default=False)

    volunteer: Mapped[Volunteer] = relationship(back_populates="exceptions")


class Post(Base):
    """A post that needs people (岗位): a gate, the sampling site, a patrol, the tracing desk."""

    __tablename__ = "duty_post"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[PostKind] = mapped_column(_enum(PostKind), default=PostKind.gate)
    place: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    templates: Mapped[list[ShiftTemplate]] = relationship(
        back_populates="post", cascade="all, delete-orphan", order_by="ShiftTemplate.starts"
    )


class ShiftTemplate(Base):
    """A recurring shift of a post (值大夜 00:00–08:00 every day): demand and skills.

    ``ends`` at or before ``starts`` means the shift ends the next day.
    """

    __tablename__ = "duty_shift_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("duty_post.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    starts: Mapped[dt.time] = mapped_column(Time)
    ends: Mapped[dt.time] = mapped_column(Time)
    weekdays: Mapped[list[int]] = mapped_column(JSON, default=lambda: list(range(7)))
    min_people: Mapped[int] = mapped_column(Integer, default=1)
    max_people: Mapped[int] = mapped_column(Integer, default=2)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)

    post: Mapped[Post] = relationship(back_populates="templates")


class Shift(Base):
    """One shift of one post on one day (班次); times in UTC, shown in the community's zone."""

    __tablename__ = "duty_shift"
    __table_args__ = (
        UniqueConstraint("post_id", "starts_at"),
        Index("ix_duty_shift_community_starts", "community_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    post_id: Mapped[int] = mapped_column(ForeignKey("duty_post.id", ondelete="CASCADE"))
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("duty_shift_template.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    min_people: Mapped[int] = mapped_column(Integer, default=1)
    max_people: Mapped[int] = mapped_column(Integer, default=2)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("duty_volunteer.id"))
    # Why the solver left it short, kept from the last computation: the reason's code and
    # figures (``solver.Hole``), worded in the reader's language by ``service.hole_text``.
    hole: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    post: Mapped[Post] = relationship()
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="shift", cascade="all, delete-orphan", order_by="Assignment.id"
    )


class Assignment(Base):
    """A volunteer on a shift; a cancellation keeps the row (status ``cancelled``)."""

    __tablename__ = "duty_assignment"
    __table_args__ = (UniqueConstraint("shift_id", "volunteer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("duty_shift.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("duty_volunteer.id"), index=True)
    status: Mapped[AssignmentStatus] = mapped_column(
        _enum(AssignmentStatus), default=AssignmentStatus.assigned
    )
    source: Mapped[str] = mapped_column(String(16), default="solver")  # solver, repair, manual
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    shift: Mapped[Shift] = relationship(back_populates="assignments")
    volunteer: Mapped[Volunteer] = relationship()


class CheckIn(Base):
    """Arrival and departure at the post (签到/签退), by resident code or typed at the post."""

    __tablename__ = "duty_check_in"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        UniqueConstraint("post_id", "in_key"),
        UniqueConstraint("post_id", "out_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("duty_assignment.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("duty_volunteer.id"), index=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("duty_post.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16), default="code")  # code, typed, self
    checked_in_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    checked_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The post's idempotency keys (the API's ``Idempotency-Key``): a retried check-in or
    # check-out with the same key gets this row back instead of a refusal.
    in_key: Mapped[str | None] = mapped_column(String(128))
    out_key: Mapped[str | None] = mapped_column(String(128))

    assignment: Mapped[Assignment] = relationship()


class RepairProposal(Base):
    """The change proposed after a cancellation: shown as a diff, applied on confirmation.

    ``diff`` holds {"added": [[shift_id, volunteer_id]…], "removed": […]}.
    """

    __tablename__ = "duty_repair"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("duty_assignment.id"))
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    holes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[RepairStatus] = mapped_column(_enum(RepairStatus), default=RepairStatus.proposed)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    assignment: Mapped[Assignment] = relationship()
