"""JSON routes of the registry; the same scope and role checks as the pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile

from fengchao.registry import id_numbers, imports, schemas, search, service
from fengchao.registry.completeness import Figures
from fengchao.registry.models import Household, Person
from fengchao.registry.views import SearchWanted, pick_community
from fengchao.settings import get_settings
from fengchao.web.deps import (
    CurrentActor,
    DbSession,
    OptionalRowId,
    RowId,
    require_csrf,
)

router = APIRouter(prefix="/api/registry", tags=["registry"], dependencies=[Depends(require_csrf)])


def _brief(person: Person, id_number: str | None) -> schemas.PersonBrief:
    return schemas.PersonBrief(
        id=person.id,
        name=person.name,
        household_id=person.household_id,
        address=person.household.address,
        compound=person.household.compound.name,
        phone=person.phone,
        id_number=id_number,
    )


@router.get("/buildings", response_model=list[schemas.BuildingRead])
def list_buildings(
    session: DbSession, actor: CurrentActor, community: OptionalRowId = None
) -> list[schemas.BuildingRead]:
    chosen = pick_community(session, actor, community)
    return [
        schemas.BuildingRead(
            id=b.building.id,
            compound=node.compound.name,
            name=b.building.name,
            households=b.households,
            people=b.people,
            lead=b.lead_name,
        )
        for node in service.grid_tree(session=session, actor=actor, community_id=chosen.id)
        for b in node.buildings
    ]


@router.get("/buildings/{building_id}/households", response_model=list[schemas.HouseholdBrief])
def building_households(
    building_id: RowId, session: DbSession, actor: CurrentActor
) -> list[schemas.HouseholdBrief]:
    building = service.get_building(session=session, actor=actor, building_id=building_id)
    return [
        schemas.HouseholdBrief(
            id=h.id,
            address=f"{building.name}-{row.unit.name}-{h.room}",
            compound=building.compound.name,
            people=n,
        )
        for row in service.building_units(session=session, building=building)
        for h, n in row.households
    ]


@router.get("/households/{household_id}", response_model=schemas.HouseholdRead)
def read_household(
    household_id: RowId, session: DbSession, actor: CurrentActor
) -> schemas.HouseholdRead:
    household: Household = service.get_household(
        session=session, actor=actor, household_id=household_id
    )
    return schemas.HouseholdRead(
        id=household.id,
        address=household.address,
        compound=household.compound.name,
        vacant=household.vacant,
        people=[_brief(p, p.id_mask) for p in household.people],
        vehicles=[v.plate for v in household.vehicles],
    )


@router.get("/people/{person_id}", response_model=schemas.PersonRead)
def read_person(person_id: RowId, session: DbSession, actor: CurrentActor) -> schemas.PersonRead:
    view = service.get_person(session=session, actor=actor, person_id=person_id)
    p = view.person
    return schemas.PersonRead(
        **_brief(p, view.id_mask).model_dump(),
        gender=p.gender,
        birth_year=view.birth_year,
        age=view.age,
        relation=p.relation,
        residence_status=p.residence_status,
        health_status=p.health_status,
        care_tags=p.care_tags,
        party_member=p.party_member,
        id_masked=True,
    )


@router.post("/people/{person_id}/id-number", response_model=schemas.RevealedIdNumber)
def reveal_id_number(
    person_id: RowId, body: schemas.RevealRequest, session: DbSession, actor: CurrentActor
) -> schemas.RevealedIdNumber:
    """The whole ID number, for a stated reason (audited; limited per hour)."""
    number = id_numbers.reveal(
        session=session, actor=actor, person_id=person_id, reason=body.reason
    )
    return schemas.RevealedIdNumber(id_number=number)


@router.get("/search", response_model=list[schemas.PersonBrief])
def search_people(
    response: Response,
    session: DbSession,
    actor: CurrentActor,
    wanted: SearchWanted,
) -> list[schemas.PersonBrief]:
    """People matching ``q`` and the filters, one page; the true count is in the
    ``X-Total-Count`` header."""
    result = search.search(
        session=session, actor=actor, query=wanted.q, filters=wanted.filters, page=wanted.page
    )
    response.headers["X-Total-Count"] = str(result.total)
    return [_brief(p, p.id_mask) for p in result.people]


# A plain ``def`` route: parsing and the database work run in the thread pool, never in
# the event loop.
@router.post("/import/{kind}", response_model=schemas.ImportReportRead)
def import_sheet(
    kind: imports.ImportKind,
    session: DbSession,
    actor: CurrentActor,
    file: Annotated[UploadFile, File()],
    dry_run: Annotated[bool, Query()] = True,
    create_missing: Annotated[bool, Query()] = False,
    skip_invalid: Annotated[bool, Query()] = False,
    community: OptionalRowId = None,
) -> schemas.ImportReportRead:
    """Validate (``dry_run=true``, the default) or import a residents or vehicles sheet."""
    chosen = pick_community(session, actor, community)
    report = imports.import_sheet(
        kind,
        session=session,
        actor=actor,
        community_id=chosen.id,
        content=file.file.read(get_settings().imports.max_bytes + 1),
        filename=file.filename or "upload",
        dry_run=dry_run,
        create_missing=create_missing,
        skip_invalid=skip_invalid,
    )
    return schemas.ImportReportRead.model_validate(report.as_json())


@router.get("/completeness", response_model=list[schemas.CoverageRead])
def completeness(
    session: DbSession, actor: CurrentActor, community: OptionalRowId = None
) -> list[schemas.CoverageRead]:
    chosen = pick_community(session, actor, community)
    result = service.completeness_report(session=session, actor=actor, community_id=chosen.id)

    def row(building_id: int | None, compound: str, name: str, f: Figures) -> schemas.CoverageRead:
        return schemas.CoverageRead(
            building_id=building_id,
            compound=compound,
            building=name,
            households=f.households,
            registered_households=f.registered_households,
            people=f.people,
            household_coverage=f.household_coverage,
            phone_coverage=f.phone_coverage,
            face_coverage=f.face_coverage,
            id_coverage=f.id_coverage,
            gaps={g.value: n for g, n in f.gaps.items()},
        )

    rows = [
        row(b.id, b.compound.name, b.name, result.report.by_building.get(b.id, Figures()))
        for b in sorted(result.buildings.values(), key=lambda b: (b.compound_id, b.sort_key))
    ]
    rows.append(row(None, "", "", result.report.total))
    return rows
