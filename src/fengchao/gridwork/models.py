"""Tables of grid work: sweeps (扫楼清户) and their visits, help requests (求助) with their
history, residents' reports (居民监督), and the counters that slow down the public form."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, query_expression

from fengchao.auth.models import ScopeLevel
from fengchao.db import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    """Stored as value strings, readable in any database (as the registry does)."""
    return Enum(
        cls,
        native_enum=False,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class VisitOutcome(enum.StrEnum):
    """What came of a door knocked at during a sweep; ``pending``: not yet knocked."""

    pending = "pending"
    visited = "visited"
    nobody_home = "nobody_home"  # come back (需复访)
    refused = "refused"


class HelpCategory(enum.StrEnum):
    medicine = "medicine"  # 买药
    food = "food"  # 生活物资
    medical_visit = "medical_visit"  # 就医
    elderly_alone = "elderly_alone"  # 独居老人照看
    other = "other"


class HelpUrgency(enum.StrEnum):
    urgent = "urgent"
    normal = "normal"
    low = "low"


class HelpStatus(enum.StrEnum):
    open = "open"  # waiting to be accepted (the escalation clock runs)
    accepted = "accepted"  # someone took it on
    closed = "closed"  # done, with a closing note
    cancelled = "cancelled"  # withdrawn or a duplicate found by staff


class ReportCategory(enum.StrEnum):
    tailgating = "tailgating"  # 尾随进门
    unregistered_visitor = "unregistered_visitor"  # 未登记访客
    broken_gate = "broken_gate"  # 门禁损坏
    stairwell_fever = "stairwell_fever"  # 楼道里有人发热
    other = "other"


class ReportStatus(enum.StrEnum):
    new = "new"
    acknowledged = "acknowledged"
    resolved = "resolved"


class ReportRoute(enum.StrEnum):
    """Who a report is for: the building lead (people) or the property (gates, doors)."""

    building_lead = "building_lead"
    property = "property"


class Sweep(Base):
    """A sweep campaign (扫楼清户): every household of a grid node visited by a deadline."""

    __tablename__ = "gridwork_sweep"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    node_level: Mapped[ScopeLevel] = mapped_column(_enum(ScopeLevel))
    node_id: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(Integer)
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class SweepTarget(Base):
    """One household on a sweep's checklist, with the outcome of its latest visit."""

    __tablename__ = "gridwork_sweep_target"

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("gridwork_sweep.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"))
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    outcome: Mapped[VisitOutcome] = mapped_column(_enum(VisitOutcome), default=VisitOutcome.pending)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    last_visit_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    needs: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("sweep_id", "household_id"),
        Index("ix_gridwork_sweep_target_sweep_building", "sweep_id", "building_id"),
    )


class SweepVisit(Base):
    """One knock at a door during a sweep (入户走访记录), append-only; ``key`` makes a
    phone's retry of the same submission count once."""

    __tablename__ = "gridwork_sweep_visit"

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("gridwork_sweep.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(
        ForeignKey("gridwork_sweep_target.id", ondelete="CASCADE"), index=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    outcome: Mapped[VisitOutcome] = mapped_column(_enum(VisitOutcome))
    people_home: Mapped[int | None] = mapped_column(Integer)
    # Registered members seen at home (person ids): who is home, not only how many.
    home: Mapped[list[int]] = mapped_column(JSON, default=list)
    fever: Mapped[bool] = mapped_column(Boolean, default=False)
    elderly_alone: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_medicine: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_food: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(200))
    recorded_by: Mapped[int | None] = mapped_column(Integer)
    recorded_by_name: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key: Mapped[str | None] = mapped_column(String(64), unique=True)


class HelpRequest(Base):
    """A resident's request for help (求助), routed down the grid: the building lead first,
    then the compound's branch, then the community, each time its deadline passes unaccepted.

    The contact phone is encrypted (``phone_enc``); the status link's token is kept as a
    keyed hash for lookup and sealed for a duplicate submission to get the same link.
    ``live_key`` is what makes a duplicate impossible in the database, not only unlikely."""

    __tablename__ = "gridwork_help_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"), index=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    category: Mapped[HelpCategory] = mapped_column(_enum(HelpCategory))
    urgency: Mapped[HelpUrgency] = mapped_column(_enum(HelpUrgency))
    details: Mapped[str] = mapped_column(String(500), default="")
    contact_name: Mapped[str] = mapped_column(String(64), default="")
    phone_enc: Mapped[str | None] = mapped_column(String(256))
    phone_mask: Mapped[str | None] = mapped_column(String(20))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))  # resident, staff, sweep
    status: Mapped[HelpStatus] = mapped_column(
        _enum(HelpStatus), default=HelpStatus.open, index=True
    )
    level: Mapped[ScopeLevel] = mapped_column(_enum(ScopeLevel), default=ScopeLevel.building)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(Integer)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    accepted_by: Mapped[int | None] = mapped_column(Integer)
    accepted_by_name: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_by_name: Mapped[str | None] = mapped_column(String(64))
    closing_note: Mapped[str | None] = mapped_column(String(300))
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_enc: Mapped[str] = mapped_column(String(256))
    dedupe_key: Mapped[str] = mapped_column(String(64), index=True)
    # The dedupe key while this request is the one a repeat within the window gets back;
    # unique, so two identical submissions at the same instant store one row (NULL after).
    live_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("gridwork_sweep_visit.id"))


class HelpEvent(Base):
    """One step in a request's life (created, accepted, escalated, closed, a note): the
    request's history, and what its status link shows (times and states, no names)."""

    __tablename__ = "gridwork_help_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("gridwork_help_request.id", ondelete="CASCADE"), index=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[ScopeLevel | None] = mapped_column(_enum(ScopeLevel))
    note: Mapped[str | None] = mapped_column(String(300))
    by_name: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ResidentReport(Base):
    """A problem a resident reports as a supervisor (居民监督): tailgating, an unregistered
    visitor, a broken gate, fever in the stairwell. An optional photo is kept re-encoded
    (no metadata), shrunk, and sealed with the data key."""

    __tablename__ = "gridwork_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"), index=True)
    category: Mapped[ReportCategory] = mapped_column(_enum(ReportCategory))
    route: Mapped[ReportRoute] = mapped_column(_enum(ReportRoute))
    place: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[str] = mapped_column(String(500), default="")
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Set by lists that leave the photo itself unloaded (``reports.open_reports``).
    has_photo: Mapped[bool | None] = query_expression()
    status: Mapped[ReportStatus] = mapped_column(
        _enum(ReportStatus), default=ReportStatus.new, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    handled_by_name: Mapped[str | None] = mapped_column(String(64))
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(300))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)


class SubmitCounter(Base):
    """Submissions of the public form per client address or phone in a fixed window
    (keyed hashes, not the address or number): the form is open without an account."""

    __tablename__ = "gridwork_submit_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("key", "window_start"),)


Index("ix_gridwork_help_open", HelpRequest.community_id, HelpRequest.status, HelpRequest.deadline)

# How each stored value reads on screen (Chinese message ids; English via the catalog).
LABELS: dict[str, str] = {
    VisitOutcome.pending: "未走访",
    VisitOutcome.visited: "已走访",
    VisitOutcome.nobody_home: "无人在家（需复访）",
    VisitOutcome.refused: "拒绝",
    HelpCategory.medicine: "买药",
    HelpCategory.food: "生活物资",
    HelpCategory.medical_visit: "就医",
    HelpCategory.elderly_alone: "独居老人",
    HelpCategory.other: "其他",
    HelpUrgency.urgent: "紧急",
    HelpUrgency.normal: "一般",
    HelpUrgency.low: "不急",
    HelpStatus.open: "待接单",
    HelpStatus.accepted: "处理中",
    HelpStatus.closed: "已办结",
    HelpStatus.cancelled: "已撤销",
    ReportCategory.tailgating: "尾随进门",
    ReportCategory.unregistered_visitor: "未登记访客",
    ReportCategory.broken_gate: "门禁损坏",
    ReportCategory.stairwell_fever: "楼道有人发热",
    ReportStatus.new: "新上报",
    ReportStatus.acknowledged: "已受理",
    ReportStatus.resolved: "已解决",
    ReportRoute.building_lead: "楼栋长",
    ReportRoute.property: "物业",
    ScopeLevel.building: "楼栋长",
    ScopeLevel.compound: "小区党支部",
    ScopeLevel.community: "社区",
}

# A request's steps as its history and its status link name them.
EVENT_LABELS: dict[str, str] = {
    "created": "提出求助",
    "accepted": "已接单",
    "escalated": "超时未接单，已上报",
    "closed": "已办结",
    "cancelled": "已撤销",
}
