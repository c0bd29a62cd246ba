"""Tables of the sampling site: sites, rounds, exemptions, tubes, swabs, lab imports, retests."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fengchao.db import Base, UTCDateTime, utcnow
from fengchao.registry.models import _enum


class RoundScope(enum.StrEnum):
    """Who a round covers."""

    community = "community"
    compounds = "compounds"
    buildings = "buildings"
    people = "people"


class ExemptionKind(enum.StrEnum):
    """Why a person is not expected at the site (免采原因)."""

    home_visit = "home_visit"  # bedridden or frail: sampled at home (上门采样)
    infant = "infant"
    away = "away"
    other = "other"


class TubeStatus(enum.StrEnum):
    open = "open"
    closed = "closed"


class LabResult(enum.StrEnum):
    negative = "negative"
    positive = "positive"
    invalid = "invalid"


class RetestStatus(enum.StrEnum):
    pending = "pending"
    negative = "negative"  # the flag lifted, confirmed by a worker
    positive = "positive"  # a confirmed case


class SamplingSite(Base):
    """A sampling site (采样点) with its opening hours and stations (采样台)."""

    __tablename__ = "sampling_site"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    opens: Mapped[str] = mapped_column(String(5), default="07:30")  # HH:MM, local time
    closes: Mapped[str] = mapped_column(String(5), default="13:30")
    stations: Mapped[int] = mapped_column(Integer, default=4)
    per_station_hour: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SamplingRound(Base):
    """A sampling round (一轮核酸): who is to be sampled, where, on which day, by when."""

    __tablename__ = "sampling_round"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sampling_site.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    scope: Mapped[RoundScope] = mapped_column(_enum(RoundScope), default=RoundScope.community)
    # Compound, building or person ids, by ``scope`` (empty for the whole community).
    scope_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    tube_capacity: Mapped[int] = mapped_column(Integer, default=10)
    household_tubes: Mapped[bool] = mapped_column(Boolean, default=False)
    turnout: Mapped[int] = mapped_column(Integer, default=90)  # percent expected to come
    # The saved slot plan (slots.Plan.as_json()), shown and exported for building leads.
    slot_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SamplingExemption(Base):
    """A person not expected at the site in a round, with the reason (免采)."""

    __tablename__ = "sampling_exemption"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("sampling_round.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    kind: Mapped[ExemptionKind] = mapped_column(_enum(ExemptionKind))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("round_id", "person_id"),)


class Tube(Base):
    """A sampling tube (采样管) of a round: 10 swabs pooled by default (10 合 1)."""

    __tablename__ = "sampling_tube"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("sampling_round.id"), index=True)
    barcode: Mapped[str] = mapped_column(String(32), index=True)
    capacity: Mapped[int] = mapped_column(Integer, default=10)
    swabs: Mapped[int] = mapped_column(Integer, default=0)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"))
    station: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[TubeStatus] = mapped_column(_enum(TubeStatus), default=TubeStatus.open)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[LabResult | None] = mapped_column(_enum(LabResult))
    result_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    lab_import_id: Mapped[int | None] = mapped_column(ForeignKey("sampling_lab_import.id"))

    __table_args__ = (UniqueConstraint("round_id", "barcode"),)


class Swab(Base):
    """One person swabbed into a tube (采样登记); ``key`` makes a retried registration
    count once."""

    __tablename__ = "sampling_swab"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("sampling_round.id"))
    tube_id: Mapped[int] = mapped_column(ForeignKey("sampling_tube.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    station: Mapped[str] = mapped_column(String(16), default="")
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    via: Mapped[str] = mapped_column(String(8), default="code")  # code, id, room
    retest_reason: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_sampling_swab_round_person", "round_id", "person_id"),
        Index("ix_sampling_swab_person_taken", "person_id", "taken_at"),
    )


class LabImport(Base):
    """One lab result file applied to a round (检测结果导入)."""

    __tablename__ = "sampling_lab_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("sampling_round.id"), index=True)
    filename: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    positives: Mapped[int] = mapped_column(Integer, default=0)
    user_id: Mapped[int | None] = mapped_column(Integer)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Retest(Base):
    """A person of a positive tube waiting for an individual test (单采复核)."""

    __tablename__ = "sampling_retest"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("sampling_round.id"), index=True)
    tube_id: Mapped[int] = mapped_column(ForeignKey("sampling_tube.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    status: Mapped[RetestStatus] = mapped_column(_enum(RetestStatus), default=RetestStatus.pending)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("tube_id", "person_id"),)
