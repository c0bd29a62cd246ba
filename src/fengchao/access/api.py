"""JSON routes of the access slice: the device API (authenticated by the device's key, no
login, no cookie), and for signed-in staff the console's decisions, gates and devices,
the alert level and the access record."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fengchao.access import flows, records, schemas
from fengchao.access import service as access
from fengchao.access.flows import BadPassage, PassageRequest, Sender
from fengchao.access.models import Gate
from fengchao.auth.service import NotFound
from fengchao.web.deps import (
    CurrentActor,
    DbSession,
    OptionalRowId,
    RowId,
    get_session,
    request_session,
    require_csrf,
    sessions_of,
)
from fengchao.web.i18n import _

device_router = APIRouter(prefix="/api/access/device", tags=["access: devices"])
router = APIRouter(prefix="/api/access", tags=["access"], dependencies=[Depends(require_csrf)])


DeviceKeyRefused = access.DeviceKeyRefused


def current_device(
    session: DbSession, x_device_key: Annotated[str | None, Header()] = None
) -> access.DeviceRef:
    """The device whose key the request carries; 401 for a missing, unknown or revoked key."""
    device = access.device_for_key(session=session, key=x_device_key or "")
    if device is None:
        raise DeviceKeyRefused(_("设备密钥无效或已吊销"), field="X-Device-Key")
    return device


CurrentDevice = Annotated[access.DeviceRef, Depends(current_device)]


def _request(body: schemas.PassageIn, gate_id: int, key: str | None) -> PassageRequest:
    frame = None
    if body.frame_b64:
        try:
            frame = base64.b64decode(body.frame_b64, validate=True)
        except (binascii.Error, ValueError):
            raise BadPassage(_("画面不是有效的 base64"), field="frame_b64") from None
    return PassageRequest(
        gate_id=gate_id,
        direction=body.direction,
        method=body.method,
        value=body.value,
        frame=frame,
        pin=body.pin,
        temperature=body.temperature,
        retest_temperature=body.retest_temperature,
        device_time=body.device_time,
        device_sent_at=body.device_sent_at,
        idempotency_key=key or body.idempotency_key,
        role=body.role,
    )


def decision_out(answer: flows.Decision) -> schemas.DecisionOut:
    return schemas.DecisionOut(
        decision=answer.decision,  # type: ignore[arg-type,unused-ignore]
        reasons=answer.reasons,
        message=answer.message,
        gate_id=answer.gate_id,
        direction=answer.direction,
        method=answer.method,
        person_id=answer.person_id,
        vehicle_id=answer.vehicle_id,
        person=schemas.PersonCardOut(**answer.person.__dict__) if answer.person else None,
        vehicle=schemas.VehicleCardOut(**answer.vehicle.__dict__) if answer.vehicle else None,
        masked=answer.masked,
        distance=answer.distance,
        plate_read=answer.plate_read,
        match_how=answer.match_how,
        alert_level=answer.alert_level,
        late=answer.late,
        clock_off=answer.clock_off,
        event_id=answer.event_id,
        replayed=answer.replayed,
        timings=answer.timings,
    )


def _passage_in(raw: bytes) -> schemas.PassageIn:
    try:
        return schemas.PassageIn.model_validate_json(raw)
    except ValidationError as exc:
        # As FastAPI reports a body it validated itself (the same 422 answer).
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None


# Quick decisions (a person picked, a code, a plate's text: no frame to read, no PIN to
# hash) run in a few threads of their own rather than among the 40 of the server's pool: on
# SQLite each holds the one write lock from its start, and sixteen threads taking turns at
# it spent more CPU handing it (and the GIL) over than deciding. One thread there; a few
# on PostgreSQL, whose decisions wait on the network and overlap.
QUICK_THREADS = {"sqlite": 1}
QUICK_THREADS_DEFAULT = 4
QUICK_METHODS = ("person", "code", "plate")
_quick_pools: dict[str, ThreadPoolExecutor] = {}
_quick_pools_lock = threading.Lock()


def _quick_pool(request: Request) -> ThreadPoolExecutor | None:
    if request.app.dependency_overrides.get(get_session) is not None:
        return None  # tests' shared session: the server's pool as any route
    bind = sessions_of(request).kw.get("bind")
    dialect = bind.dialect.name if bind is not None else "sqlite"
    pool = _quick_pools.get(dialect)
    if pool is None:
        with _quick_pools_lock:
            pool = _quick_pools.get(dialect)
            if pool is None:
                threads = QUICK_THREADS.get(dialect, QUICK_THREADS_DEFAULT)
                pool = ThreadPoolExecutor(threads, thread_name_prefix=f"decide-{dialect}")
                _quick_pools[dialect] = pool
    return pool


def _parsed(raw: bytes) -> schemas.PassageIn | None:
    """The body, or None when it is not valid (refused after the key is checked)."""
    try:
        return schemas.PassageIn.model_validate_json(raw)
    except ValidationError:
        return None


def _is_quick(body: schemas.PassageIn | None) -> bool:
    """A decision with nothing slow before its write."""
    return body is not None and body.frame_b64 is None and body.method in QUICK_METHODS


def _device_decision(
    request: Request,
    body: schemas.PassageIn | None,
    raw: bytes,
    key: str | None,
    idempotency_key: str | None,
) -> bytes:
    """The whole unit of work of a device's decision in one thread: the key (checked before
    the body, as a dependency was), the body, the decision, the commit, the answer."""
    with request_session(request) as session:
        # Remembered by this process; the decision confirms in its transaction that the
        # device is still active (a revoked key: 401 at its next decision).
        device = access.known_device(session=session, key=key or "")
        if device is None:
            raise DeviceKeyRefused(_("设备密钥无效或已吊销"), field="X-Device-Key")
        body = body or _passage_in(raw)
        gate_id = body.gate_id or device.gate_id
        if gate_id != device.gate_id:
            gate = session.get(Gate, gate_id)
            if gate is None or gate.community_id != device.community_id:
                raise NotFound(f"gate {gate_id}")
        answer = flows.decide(
            session=session, request=_request(body, gate_id, idempotency_key),
            sender=Sender.device(device),
        )  # fmt: skip
    # Committed (the with block's end) before the answer is made: nothing is acknowledged
    # before it is stored.
    return decision_out(answer).model_dump_json().encode()


@device_router.post(
    "/decisions",
    response_model=schemas.DecisionOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schemas.PassageIn.model_json_schema()}},
        }
    },
)
async def device_decision(
    request: Request,
    x_device_key: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """A passage at the device's gate (or another gate of its community). Retrying with the
    same ``Idempotency-Key`` returns the first answer; the same key with another body is
    refused (409).

    A lean route, as gates call it all day: one hop to a pool thread for the whole unit of
    work (a sync route with a session and a device dependency took four: the session's
    start and end, the key check and the route), and the answer encoded once rather than
    validated again against ``response_model``."""
    raw = await request.body()
    body = _parsed(raw)
    args = (request, body, raw, x_device_key, idempotency_key)
    pool = _quick_pool(request) if _is_quick(body) else None
    if pool is None:
        data = await run_in_threadpool(_device_decision, *args)
    else:
        context = contextvars.copy_context()  # the request's language, as anyio would
        data = await asyncio.get_running_loop().run_in_executor(
            pool, context.run, _device_decision, *args
        )
    return Response(data, media_type="application/json")


@device_router.get("/state")
def device_state(device: CurrentDevice, session: DbSession) -> dict[str, object]:
    """The device's gate and the alert level in force there (consoles show it)."""
    gate = session.get(Gate, device.gate_id)
    assert gate is not None
    level = access.level_at(
        session=session, community_id=gate.community_id, compound_id=gate.compound_id
    )
    return {"gate_id": gate.id, "gate": gate.name, "alert_level": level.value}


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
        session=session, request=_request(body, body.gate_id, idempotency_key),
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
