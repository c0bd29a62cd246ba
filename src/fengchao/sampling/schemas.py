"""Request and response models of the sampling API."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class TubeScan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    barcode: str = Field(max_length=64)
    station: str = Field(default="", max_length=16)


class SwabCreate(BaseModel):
    """One registration: the tube, the person (a scanned or typed ``code`` — resident code
    or ID number — or a ``person_id`` picked by room) and the page's idempotency ``key``."""

    model_config = ConfigDict(extra="forbid")

    barcode: str = Field(max_length=64)
    key: str = Field(min_length=8, max_length=64)
    code: str | None = Field(default=None, max_length=128)
    person_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    station: str = Field(default="", max_length=16)
    retest_reason: str | None = Field(default=None, max_length=200)
    taken_at: dt.datetime | None = None


class TubeRead(BaseModel):
    id: int
    barcode: str
    swabs: int
    capacity: int
    closed: bool


class SwabRead(BaseModel):
    swab_id: int
    person_id: int
    name: str
    place: str
    tube: TubeRead
    repeated: bool
    retest: bool


class RoomPerson(BaseModel):
    person_id: int
    name: str
    sampled: bool
    compound: str
    place: str  # compound, then building-unit-room: "东苑 5-1-101"


class BuildingCoverageRead(BaseModel):
    building_id: int
    name: str
    expected: int
    sampled: int
    exempt: int
    households: int
    households_done: int


class CoverageRead(BaseModel):
    round_id: int
    expected: int
    sampled: int
    exempt: int
    percent: float
    buildings: list[BuildingCoverageRead]
