"""Tables of the grid (street → community → compound → building → unit → household → person)."""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fengchao.db import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    """Enums are stored as their value strings so rows stay readable in any database."""
    return Enum(
        cls,
        native_enum=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Gender(enum.StrEnum):
    male = "male"
    female = "female"


class Relation(enum.StrEnum):
    """Relation to the household (与户主关系)."""

    owner = "owner"
    tenant = "tenant"
    family = "family"
    other = "other"


class ResidenceStatus(enum.StrEnum):
    """Whether the person lives here now (居住状态)."""

    living = "living"
    away = "away"
    moved_out = "moved_out"


class HealthStatus(enum.StrEnum):
    """Health status (健康状态) as the community tracks it."""

    normal = "normal"
    home_isolation = "home_isolation"
    central_isolation = "central_isolation"
    positive = "positive"
    recovered = "recovered"


class CareTag(enum.StrEnum):
    """Needs that call for care (重点关爱)."""

    elderly_alone = "elderly_alone"
    disabled = "disabled"
    pregnant = "pregnant"
    chronic_illness = "chronic_illness"


class PartyOrgKind(enum.StrEnum):
    community_branch = "community_branch"  # 社区党总支
    compound_branch = "compound_branch"  # 小区党支部
    building_group = "building_group"  # 楼栋党小组


class Street(Base):
    """A street office (街道) that runs several communities."""

    __tablename__ = "street"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Community(Base):
    """A community (社区), the unit every row of the platform belongs to."""

    __tablename__ = "community"

    id: Mapped[int] = mapped_column(primary_key=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("street.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")

    street: Mapped[Street] = relationship()
    __table_args__ = (UniqueConstraint("street_id", "name"),)


class Compound(Base):
    """A residential compound (小区)."""

    __tablename__ = "compound"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))

    community: Mapped[Community] = relationship()
    __table_args__ = (UniqueConstraint("community_id", "name"),)


class Building(Base):
    """A building (楼栋), named as residents say it ("5" for 5号楼)."""

    __tablename__ = "building"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    sort_key: Mapped[int] = mapped_column(Integer, default=0)

    compound: Mapped[Compound] = relationship()
    __table_args__ = (UniqueConstraint("compound_id", "name"),)


class Unit(Base):
    """A stairwell unit (单元) of a building."""

    __tablename__ = "unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    sort_key: Mapped[int] = mapped_column(Integer, default=0)

    building: Mapped[Building] = relationship()
    __table_args__ = (UniqueConstraint("building_id", "name"),)


class Household(Base):
    """A household (户): one room of a unit, with the grid path kept on the row for scoping."""

    __tablename__ = "household"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    compound_id: Mapped[int] = mapped_column(ForeignKey("compound.id"), index=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    room: Mapped[str] = mapped_column(String(16))
    vacant: Mapped[bool] = mapped_column(Boolean, default=False)
    # Optimistic concurrency: an edit made from an older version is refused, not merged.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    unit: Mapped[Unit] = relationship()
    building: Mapped[Building] = relationship()
    compound: Mapped[Compound] = relationship()
    people: Mapped[list[Person]] = relationship(back_populates="household", order_by="Person.id")
    vehicles: Mapped[list[Vehicle]] = relationship(
        back_populates="household", order_by="Vehicle.id"
    )
    __table_args__ = (UniqueConstraint("unit_id", "room"),)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it)

    @property
    def address(self) -> str:
        """The short form residents use: building-unit-room, e.g. 5-2-1302."""
        return f"{self.building.name}-{self.unit.name}-{self.room}"


class Person(Base):
    """A person registered in a household (居民).

    The ID number is never stored in clear: ``id_number_enc`` holds it encrypted,
    ``id_number_hash`` a keyed hash for exact lookup, ``id_mask`` what a screen may show.
    """

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    gender: Mapped[Gender | None] = mapped_column(_enum(Gender))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    id_number_enc: Mapped[str | None] = mapped_column(String(128))
    id_number_hash: Mapped[str | None] = mapped_column(String(64))
    id_mask: Mapped[str | None] = mapped_column(String(24))
    id_last4: Mapped[str | None] = mapped_column(String(4), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    relation: Mapped[Relation] = mapped_column(_enum(Relation), default=Relation.family)
    residence_status: Mapped[ResidenceStatus] = mapped_column(
        _enum(ResidenceStatus), default=ResidenceStatus.living
    )
    health_status: Mapped[HealthStatus] = mapped_column(
        _enum(HealthStatus), default=HealthStatus.normal
    )
    care_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    party_member: Mapped[bool] = mapped_column(Boolean, default=False)
    party_org_id: Mapped[int | None] = mapped_column(ForeignKey("party_org.id"))
    face_enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    household: Mapped[Household] = relationship(back_populates="people")
    __table_args__ = (UniqueConstraint("community_id", "id_number_hash"),)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it)


class Vehicle(Base):
    """A registered vehicle (登记车辆), normalised plate text such as 闽A12345."""

    __tablename__ = "vehicle"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    plate: Mapped[str] = mapped_column(String(16))
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    note: Mapped[str | None] = mapped_column(String(200))

    household: Mapped[Household] = relationship(back_populates="vehicles")
    __table_args__ = (UniqueConstraint("community_id", "plate"),)


class PartyOrg(Base):
    """A party organisation on the grid: 社区党总支, 小区党支部 or 楼栋党小组."""

    __tablename__ = "party_org"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    kind: Mapped[PartyOrgKind] = mapped_column(_enum(PartyOrgKind))
    name: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("party_org.id"))
    compound_id: Mapped[int | None] = mapped_column(ForeignKey("compound.id"))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("building.id"))


class BuildingLead(Base):
    """The party member responsible for a building (一名党员一幢楼)."""

    __tablename__ = "building_lead"

    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    person: Mapped[Person] = relationship()


class ChangeVia(enum.StrEnum):
    """How a change reached the registry."""

    edit = "edit"  # a community worker's edit, applied at once
    proposal = "proposal"  # a building lead's proposal, confirmed by a worker
    import_ = "import"  # a spreadsheet import


class RecordChange(Base):
    """One change to a person or a household (变更记录): who changed what, when, old → new.
    Append-only; the person page shows it as the record's history."""

    __tablename__ = "record_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    # {field: [old, new]} with values as stored (enum values, ISO dates); ID numbers masked.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    via: Mapped[ChangeVia] = mapped_column(_enum(ChangeVia))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("change_proposal.id"))
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProposalState(enum.StrEnum):
    pending = "pending"
    applied = "applied"
    rejected = "rejected"
    withdrawn = "withdrawn"


class ChangeProposal(Base):
    """A building lead's proposed change (变更申请), applied only when a community worker
    confirms it. ``changes`` holds {field: [value when proposed, proposed value]}, so that a
    worker sees what changed meanwhile."""

    __tablename__ = "change_proposal"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[ProposalState] = mapped_column(
        _enum(ProposalState), default=ProposalState.pending, index=True
    )
    proposed_by: Mapped[int] = mapped_column(Integer)
    proposed_by_name: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(Integer)
    decided_by_name: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(String(200))


class ImportUpload(Base):
    """A spreadsheet waiting for the user to confirm its import (kept in the database so
    any web process can finish the wizard); once imported, the error file of the rows it
    skipped, for a while."""

    __tablename__ = "import_upload"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column()
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # After the import: the skipped rows as an error file to fix and upload again (sealed).
    error_file: Mapped[bytes | None] = mapped_column()


Index("ix_person_community_name", Person.community_id, Person.name)
Index("ix_record_change_person_at", RecordChange.person_id, RecordChange.at)

# How each stored value reads on screen (Chinese message ids; English via the catalog).
LABELS: dict[str, str] = {
    Gender.male: "男",
    Gender.female: "女",
    Relation.owner: "户主/业主",
    Relation.tenant: "租户",
    Relation.family: "家庭成员",
    Relation.other: "其他",
    ResidenceStatus.living: "在住",
    ResidenceStatus.away: "暂时外出",
    ResidenceStatus.moved_out: "已迁出",
    HealthStatus.normal: "正常",
    HealthStatus.home_isolation: "居家隔离",
    HealthStatus.central_isolation: "集中隔离",
    HealthStatus.positive: "阳性",
    HealthStatus.recovered: "已康复",
    CareTag.elderly_alone: "独居老人",
    CareTag.disabled: "残疾",
    CareTag.pregnant: "孕妇",
    CareTag.chronic_illness: "慢性病",
}
