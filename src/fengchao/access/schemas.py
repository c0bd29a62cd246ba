"""Requests and answers of the access slice's JSON API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fengchao.access.records import EventRow


class PassageIn(BaseModel):
    """A passage sent by a device (its gate unless ``gate_id`` names another gate of the
    same community) or by the console. ``frame_b64``: a JPEG/PNG/WebP frame, base64."""

    model_config = ConfigDict(extra="forbid")

    gate_id: int | None = Field(None, ge=1, le=2**31 - 1)
    direction: Literal["in", "out"]
    method: Literal["face", "plate", "code", "person", "pin"]
    value: str | None = Field(None, max_length=200)
    frame_b64: str | None = Field(None, description="The frame, base64 (face or plate).")
    pin: str | None = Field(None, max_length=12)
    temperature: float | str | None = None
    retest_temperature: float | str | None = None
    device_time: dt.datetime | None = Field(None, description="When it happened, device clock.")
    device_sent_at: dt.datetime | None = Field(None, description="Device clock when sending.")
    idempotency_key: str | None = Field(None, max_length=128)
    role: (
        Literal[
            "owner",
            "tenant",
            "family",
            "property_staff",
            "community_worker",
            "courier",
            "contractor",
            "visitor",
        ]
        | None
    ) = Field(None, description="Method person, no value: an unregistered person's role.")


class PersonCardOut(BaseModel):
    id: int
    name: str
    household_id: int
    place: str
    relation: str
    health_status: str
    last_sampled: dt.date | None = None
    thumbnail_url: str | None = None


class VehicleCardOut(BaseModel):
    id: int
    plate: str
    household_id: int
    place: str


class DecisionOut(BaseModel):
    decision: Literal["allow", "deny", "pending"]
    reasons: list[str]
    message: str
    gate_id: int
    direction: str
    method: str
    person_id: int | None
    vehicle_id: int | None
    person: PersonCardOut | None
    vehicle: VehicleCardOut | None
    masked: bool
    distance: float | None
    plate_read: str | None
    match_how: str | None = Field(None, description="exact, local_province or tolerant")
    alert_level: str
    late: bool
    clock_off: bool
    event_id: int | None
    replayed: bool
    timings: dict[str, float]


class GateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compound_id: int = Field(ge=1, le=2**31 - 1)
    name: str = Field(max_length=64)
    kind: Literal["pedestrian", "vehicle", "both"]
    allows_in: bool = True
    allows_out: bool = True
    soft_temperature: bool = False


class GateRead(BaseModel):
    id: int
    community_id: int
    compound_id: int
    name: str
    kind: str
    allows_in: bool
    allows_out: bool
    soft_temperature: bool
    alert_level: str


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gate_id: int = Field(ge=1, le=2**31 - 1)
    name: str = Field(max_length=64)


class DeviceCreated(BaseModel):
    id: int
    gate_id: int
    name: str
    key: str = Field(description="Shown this once; only its hash is kept.")


class AlertLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    community_id: int = Field(ge=1, le=2**31 - 1)
    compound_id: int | None = Field(None, ge=1, le=2**31 - 1)
    level: Literal["normal", "heightened", "closed", "lockdown"]
    note: str = Field("", max_length=200)


class EventPage(BaseModel):
    events: list[EventRow]  # the record's own rows: one definition for page and API
    more: bool


class HourCount(BaseModel):
    hour: int
    allow: int
    deny: int
    pending: int
