"""Response models of the registry's JSON API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class BuildingRead(BaseModel):
    id: int
    compound: str
    name: str
    households: int
    people: int
    lead: str | None


class HouseholdBrief(BaseModel):
    id: int
    address: str
    compound: str
    people: int


class PersonBrief(BaseModel):
    id: int
    name: str
    household_id: int
    compound: str
    address: str
    phone: str | None
    id_number: str | None


class PersonRead(PersonBrief):
    """A person's record; ``id_number`` is masked for every role (reveal it with
    ``POST /api/registry/people/{id}/id-number``) and the birth date is given as a year."""

    gender: str | None
    birth_year: int | None
    age: int | None
    relation: str
    residence_status: str
    health_status: str
    care_tags: list[str]
    party_member: bool
    id_masked: bool


class RevealRequest(BaseModel):
    reason: str = Field(min_length=2, max_length=200, description="Why the whole number is needed.")


class RevealedIdNumber(BaseModel):
    id_number: str


class HouseholdRead(BaseModel):
    id: int
    address: str
    compound: str
    vacant: bool
    people: list[PersonBrief]
    vehicles: list[str]


class ImportErrorRead(BaseModel):
    row: int
    field: str
    message: str
    name: str = Field("", description="The person's name (a vehicle's plate) as the sheet has it.")


class ImportChangeRead(BaseModel):
    row: int
    name: str
    where: str
    fields: dict[str, list[Any]] = Field(
        description="{field: [registered value, value in the sheet]}; ID numbers masked."
    )


class ImportReportRead(BaseModel):
    rows: int
    valid: int
    errors: list[ImportErrorRead]
    created: int
    updated: int
    unchanged: int
    new_households: int
    written: bool
    new: int = Field(0, description="Valid rows naming nobody registered yet.")
    changed: int = Field(0, description="Valid rows that change a registered record.")
    problem_rows: int = Field(0, description="Rows with at least one problem.")
    skipped: int = Field(0, description="Rows with problems the import left out (written).")
    changes: list[ImportChangeRead] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class CoverageRead(BaseModel):
    building_id: int | None
    compound: str
    building: str
    households: int
    registered_households: int
    people: int
    household_coverage: float
    phone_coverage: float
    face_coverage: float
    id_coverage: float
    gaps: dict[str, int]
