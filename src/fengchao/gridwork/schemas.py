"""Requests and responses of grid work's JSON API (a building lead's phone app)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from fengchao.auth.models import ScopeLevel
from fengchao.gridwork.models import HelpCategory, HelpStatus, HelpUrgency, VisitOutcome

MAX_ID = 2**31 - 1


class HelpRequestRead(BaseModel):
    """A request as a lead's list shows it (no phone: that is on the request's page)."""

    id: int
    building_id: int
    household_id: int
    category: HelpCategory
    urgency: HelpUrgency
    status: HelpStatus
    level: ScopeLevel
    details: str
    contact_name: str
    deadline: dt.datetime
    created_at: dt.datetime
    accepted_by_name: str | None
    closing_note: str | None


class HelpClose(BaseModel):
    note: str = Field(min_length=1, max_length=300, description="What was done (办结说明).")
    cancel: bool = Field(False, description="Withdrawn or a duplicate, rather than done.")


class ProgressRead(BaseModel):
    label: str
    building_id: int | None
    total: int
    visited: int
    nobody_home: int
    refused: int
    needs: int


class SweepRead(BaseModel):
    id: int
    title: str
    deadline: dt.datetime
    closed: bool
    progress: ProgressRead


class Todo(BaseModel):
    """A lead's grid work: requests to accept or finish, sweeps to walk."""

    building_id: int | None = Field(description="The lead's building; None for wider scopes.")
    requests: list[HelpRequestRead]
    sweeps: list[SweepRead]


class ChecklistRowRead(BaseModel):
    target_id: int
    household_id: int
    address: str
    outcome: VisitOutcome
    visits: int
    people: int
    needs: bool


class Checklist(BaseModel):
    sweep_id: int
    building_id: int
    label: str
    rows: list[ChecklistRowRead]


class VisitCreate(BaseModel):
    """One knock at a door. ``key``: the app's id for this submission; a retry with the same
    key is recorded once."""

    outcome: VisitOutcome
    people_home: int | None = Field(None, ge=0, le=99)
    home: list[int] = Field(
        default_factory=list,
        max_length=50,
        description="Registered members seen at home (person ids).",
    )
    fever: bool = False
    elderly_alone: bool = False
    needs_medicine: bool = False
    needs_food: bool = False
    note: str = Field("", max_length=200)
    key: str | None = Field(None, min_length=8, max_length=64)


class VisitRecorded(BaseModel):
    visit_id: int
    target_id: int
    outcome: VisitOutcome
    requests: list[int] = Field(description="Help requests raised from the needs found.")
    duplicate: bool
