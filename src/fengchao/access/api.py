"""JSON routes of the access slice for signed-in staff: the console's decisions, gates and
devices, the alert level and the access record. The device API (by a device's key) is in
``device_api``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response

from fengchao.access import flows, records, schemas
from fengchao.access import service as access
from fengchao.access.device_api import decision_out, passage_request
from fengchao.access.flows import BadPassage, Sender
from fengchao.access.models import Gate
from fengchao.web.deps import (
    CurrentActor,
    DbSession,
    OptionalRowId,
    RowId,
    require_csrf,
)
from fengchao.web.i18n import _

router = APIRouter(prefix="/api/access", tags=["access"], dependencies=[Depends(require_csrf)])


@router.post("/decisions", response_model=schemas.DecisionOut)
def console_decision(
    body: schemas.PassageIn,
    actor: CurrentActor,
    session: DbSession,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> schemas.DecisionOut:
    """A passage decided at the console by the signed-in operator (``gate.operate``)."""
    if body.gate_id is None:
        raise BadPassage(_("请选择出入口"), field="gate_id")
    answer = flows.decide(
        session=session, request=passage_request(body, body.gate_id, idempotency_key),
        sender=Sender.console(actor),
    )  # fmt: skip
    return decision_out(answer)


def gate_read(session: DbSession, gate: Gate) -> schemas.GateRead:
    level = access.level_at(
        session=session, community_id=gate.community_id, compound_id=gate.compound_id
    )
    return schemas.GateRead(
        id=gate.id, community_id=gate.community_id, compound_id=gate.compound_id,
        name=gate.name, kind=str(gate.kind), allows_in=gate.allows_in,
        allows_out=gate.allows_out, soft_temperature=gate.soft_temperature,
        alert_level=level.value,
    )  # fmt: skip


@router.get("/gates", response_model=list[schemas.GateRead])
def gates(session: DbSession, actor: CurrentActor) -> list[schemas.GateRead]:
    return [gate_read(session, g) for g in access.list_gates(session=session, actor=actor)]


@router.post("/gates", response_model=schemas.GateRead, status_code=201)
def create_gate(
    body: schemas.GateCreate, session: DbSession, actor: CurrentActor
) -> schemas.GateRead:
    gate = access.create_gate(session=session, actor=actor, **body.model_dump())
    return gate_read(session, gate)


@router.post("/devices", response_model=schemas.DeviceCreated, status_code=201)
def create_device(
    body: schemas.DeviceCreate, session: DbSession, actor: CurrentActor
) -> schemas.DeviceCreated:
    device, key = access.create_device(
        session=session, actor=actor, gate_id=body.gate_id, name=body.name
    )
    return schemas.DeviceCreated(id=device.id, gate_id=device.gate_id, name=device.name, key=key)


@router.post("/devices/{device_id}/revoke", status_code=204)
def revoke_device(device_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    access.revoke_device(session=session, actor=actor, device_id=device_id)
    return Response(status_code=204)


@router.post("/alert-level")
def set_alert_level(
    body: schemas.AlertLevelIn, session: DbSession, actor: CurrentActor
) -> dict[str, object]:
    row = access.set_level(session=session, actor=actor, **body.model_dump())
    return {"community_id": row.community_id, "place": row.place, "level": row.level}


def event_filter(
    person_id: OptionalRowId = None,
    household_id: OptionalRowId = None,
    vehicle_id: OptionalRowId = None,
    plate: Annotated[str | None, Query(max_length=16)] = None,
    gate_id: OptionalRowId = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    method: Annotated[str | None, Query(pattern="^(face|plate|code|person|pin)$")] = None,
    decision: Annotated[str | None, Query(pattern="^(allow|deny|pending)$")] = None,
) -> records.EventFilter:
    """The record's search parameters; times in ISO 8601 (without an offset: local time)."""
    zone = records.local_zone()

    def aware(value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(dt.UTC)

    return records.EventFilter(
        person_id=person_id, household_id=household_id, vehicle_id=vehicle_id,
        plate=plate or None, gate_id=gate_id, start=aware(start), end=aware(end),
        method=method, decision=decision,
    )  # fmt: skip


Filters = Annotated[records.EventFilter, Depends(event_filter)]


@router.get("/events", response_model=schemas.EventPage)
def events(
    filters: Filters,
    session: DbSession,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=records.MAX_ROWS)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> schemas.EventPage:
    """The access record in the caller's scope, newest first."""
    found = records.search(
        session=session, actor=actor, filters=filters, limit=limit, offset=offset
    )
    return schemas.EventPage(events=found.rows, more=found.more)


@router.get("/people/{person_id}/timeline", response_model=schemas.EventPage)
def person_timeline(
    person_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> schemas.EventPage:
    found = records.timeline(session=session, actor=actor, person_id=person_id, days=days)
    return schemas.EventPage(events=found.rows, more=found.more)


@router.get("/counts", response_model=list[schemas.HourCount])
def counts(
    session: DbSession,
    actor: CurrentActor,
    day: dt.date | None = None,
    gate_id: OptionalRowId = None,
) -> list[schemas.HourCount]:
    """Passages per local hour of a day (today by default), for the dashboard."""
    day = day or dt.datetime.now(records.local_zone()).date()
    found = records.hourly_counts(session=session, actor=actor, day=day, gate_id=gate_id)
    return [schemas.HourCount(**c) for c in found]


@router.get("/events.xlsx")
def export(filters: Filters, session: DbSession, actor: CurrentActor) -> Response:
    data = records.export_xlsx(session=session, actor=actor, filters=filters)
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="access-events.xlsx"'},
    )


@router.put("/people/{person_id}/pin", status_code=204)
def set_pin(
    person_id: RowId, body: dict[str, str], session: DbSession, actor: CurrentActor
) -> Response:
    """Set a resident's console PIN (``{"pin": "6 digits"}``)."""
    access.set_pin(session=session, actor=actor, person_id=person_id, pin=body.get("pin", ""))
    return Response(status_code=204)
