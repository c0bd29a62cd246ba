"""Tables of contact tracing: cases, their positive results and the decisions on contacts."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fengchao.db import Base, UTCDateTime, utcnow


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=24, validate_strings=True)


class CaseSource(enum.StrEnum):
    lab_import = "lab_import"
    manual = "manual"


class CaseStatus(enum.StrEnum):
    open = "open"
    closed = "closed"


class ContactStatus(enum.StrEnum):
    confirmed = "confirmed"
    dismissed = "dismissed"


class TracingCase(Base):
    """A confirmed case (病例) being traced: a resident (``person_id``) or a visitor (their
    pass, ``visitor_pass_id``: a visitor is no person of the registry), with the dates the
    lookback counts from. A person positive twice is one case with two results. The pass is
    not a foreign key: passes are purged after their retention, the case stays."""

    __tablename__ = "tracing_case"
    __table_args__ = (Index("ix_tracing_case_person", "community_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    visitor_pass_id: Mapped[int | None] = mapped_column(Integer)
    onset_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    sampled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    source: Mapped[CaseSource] = mapped_column(_enum(CaseSource))
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), default=CaseStatus.open)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseResult(Base):
    """One positive result of a case (阳性结果), from a lab import or entered by hand."""

    __tablename__ = "tracing_case_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("tracing_case.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    source: Mapped[CaseSource] = mapped_column(_enum(CaseSource))
    note: Mapped[str | None] = mapped_column(String(200))


class ContactDecision(Base):
    """A tracer's decision on one contact of one case (confirmed as 密接/次密接, or dismissed
    with a reason), and what was done for them."""

    __tablename__ = "tracing_contact"
    __table_args__ = (UniqueConstraint("case_id", "subject_kind", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("tracing_case.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    subject_kind: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[int] = mapped_column(Integer, index=True)
    tier: Mapped[str] = mapped_column(String(12))
    status: Mapped[ContactStatus] = mapped_column(_enum(ContactStatus))
    reason: Mapped[str | None] = mapped_column(String(200))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    isolated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    sampling_listed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
