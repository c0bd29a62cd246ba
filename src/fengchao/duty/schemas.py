"""Requests and responses of duty's JSON API. Times of shifts are the community's local
time, ISO 8601 without a zone (as ``fengchao duty solve`` takes them); ``timezone`` names
the zone where a response carries it."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fengchao.duty.models import Identity, RepairStatus

MAX_ID = 2**31 - 1


class AssignmentRead(BaseModel):
    """One volunteer on one shift of the roster."""

    assignment_id: int
    shift_id: int
    post_id: int
    post: str
    shift: str = Field(description="The shift's name (值大夜, 白班…).")
    start: dt.datetime = Field(description="Local time.")
    end: dt.datetime = Field(description="Local time.")
    volunteer_id: int
    volunteer: str
    lead: bool = Field(description="The shift's lead.")
    checked_in: bool


class HoleRead(BaseModel):
    """A shift below its minimum, and why (in the reader's language)."""

    shift_id: int
    post_id: int
    post: str
    shift: str
    start: dt.datetime
    end: dt.datetime
    missing: int
    reason: str


class PostCoverageRead(BaseModel):
    post_id: int
    post: str
    placed: int = Field(description="People placed, at most each shift's minimum.")
    required: int = Field(description="The shifts' minimums added up.")


class RosterRead(BaseModel):
    """A community's week: every assignment, every hole, coverage per post and in all."""

    community_id: int
    week: dt.date = Field(description="The Monday the week starts on.")
    timezone: str
    assignments: list[AssignmentRead]
    holes: list[HoleRead]
    coverage: list[PostCoverageRead]
    placed: int
    required: int


class RosterCompute(BaseModel):
    """Compute (or recompute) a week's roster; shifts already started keep their people."""

    model_config = ConfigDict(extra="forbid")

    community: int | None = Field(
        None, ge=1, le=MAX_ID, description="By default the first community the caller manages."
    )
    week: dt.date | None = Field(
        None, description="Any day of the week; by default next week in the community's time."
    )
    time_limit: float = Field(10.0, gt=0, le=60, description="The solver's limit in seconds.")


class ComputedHole(BaseModel):
    shift_id: int
    missing: int
    reason: str


class RosterSummary(BaseModel):
    """What the solver did: the week's shifts and assignments, holes, optimality gap,
    fairness spreads and the seconds it took."""

    community_id: int
    week: dt.date
    shifts: int
    assignments: int
    holes: list[ComputedHole]
    gap: float
    seconds: float
    hours_spread: float
    nights_spread: int


class MyShiftRead(BaseModel):
    shift_id: int
    post_id: int
    post: str
    shift: str
    start: dt.datetime
    end: dt.datetime


class MyDutyRead(BaseModel):
    """The signed-in volunteer: availability, hours served and the shifts ahead."""

    volunteer_id: int
    name: str
    identity: Identity
    weekly: list[str] = Field(description='Standing availability: "<weekday 0–6>-<period>".')
    max_hours_week: int
    hours_served: float
    timezone: str
    shifts: list[MyShiftRead]


class AvailabilityUpdate(BaseModel):
    """The volunteer's weekly pattern (replaced whole), weekly hours and days away."""

    model_config = ConfigDict(extra="forbid")

    weekly: list[str] = Field(
        max_length=21,
        description='"<weekday 0–6>-<period>", periods night (0–8), day (8–16), evening (16–24).',
    )
    max_hours_week: int | None = Field(None, ge=0, le=84)
    away: list[dt.date] = Field(
        default_factory=list, max_length=62, description="Days away (added to those kept)."
    )


class CheckCode(BaseModel):
    """The volunteer's resident code, scanned or typed at the post."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=128)


class CheckInRead(BaseModel):
    """A check-in or check-out; a retry with the same ``Idempotency-Key`` gets the same
    answer with ``replayed`` true."""

    check_in_id: int
    action: Literal["in", "out"]
    at: dt.datetime = Field(description="Local time of this check-in or check-out.")
    volunteer_id: int
    volunteer: str
    post_id: int
    post: str
    shift_id: int
    shift: str
    start: dt.datetime
    end: dt.datetime
    replayed: bool


class RepairLineRead(BaseModel):
    """One change of the repair: a volunteer added to (or taken off) a shift."""

    added: bool
    shift_id: int
    post: str
    shift: str
    start: dt.datetime
    volunteer_id: int
    volunteer: str


class RepairRead(BaseModel):
    """The repair proposed after a cancellation (the diff), applied only on confirmation."""

    id: int
    status: RepairStatus
    assignment_id: int = Field(description="The cancelled assignment.")
    changes: list[RepairLineRead]
    holes: list[ComputedHole]
