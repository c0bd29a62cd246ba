"""The device API (设备接口): a gate's face terminal, plate camera or console tablet
authenticated by its key (no login, no cookie) sends passages and reads its gate's state.
The busiest request of the platform: a quick decision is answered before the middleware
stack (:class:`DeviceDecisions`) and decided in a group with every other one waiting
(:class:`DecisionGroups`, :func:`decide_group`)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fengchao.access import flows, schemas
from fengchao.access import service as access
from fengchao.access.flows import BadPassage, PassageRequest, Sender
from fengchao.access.models import Gate
from fengchao.auth.service import NotFound, Refusal
from fengchao.db import begin_write
from fengchao.web.deps import (
    DbSession,
    get_session,
    request_session,
    sessions_of,
)
from fengchao.web.i18n import _, current_language
from fengchao.web.security import security_headers

device_router = APIRouter(prefix="/api/access/device", tags=["access: devices"])


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


def passage_request(body: schemas.PassageIn, gate_id: int, key: str | None) -> PassageRequest:
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
# hash) are decided in groups by a few threads of their own, rather than one by one among
# the 40 of the server's pool: each thread takes every quick decision waiting (up to
# GROUP_MAX) and decides them in one write transaction, committed once before any of them
# is answered (group commit). A decision costs a few statements instead of ten (the gate,
# its alert level and the rules are read once a group; one BEGIN and one COMMIT a group),
# and on SQLite, whose one write lock each decision held from its start, the lock is taken
# once a group instead of handed between sixteen threads. One thread on SQLite; two on
# PostgreSQL, whose groups wait on the network and overlap.
GROUP_THREADS = {"sqlite": 1}
GROUP_THREADS_DEFAULT = 2
GROUP_MAX = 32
QUICK_METHODS = ("person", "code", "plate")


@dataclass
class _Pending:
    """A quick decision waiting for its group."""

    request: Request
    body: schemas.PassageIn
    raw: bytes
    key: str | None
    idempotency_key: str | None
    context: contextvars.Context
    answer: Future[bytes] = field(default_factory=Future)


class DecisionGroups:
    """The threads deciding quick decisions of one database in groups."""

    def __init__(self, threads: int) -> None:
        self._waiting: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        for n in range(threads):
            threading.Thread(target=self._serve, name=f"decide-{n}", daemon=True).start()

    def submit(self, pending: _Pending) -> Future[bytes]:
        self._waiting.put(pending)
        return pending.answer

    def _serve(self) -> None:
        while True:
            group = [self._waiting.get()]
            while len(group) < GROUP_MAX:
                try:
                    group.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                decide_group(group)
            except BaseException as exc:  # every waiting request is answered
                for pending in group:
                    if not pending.answer.done():
                        pending.answer.set_exception(exc)


# Refusals of one decision that leave the group's transaction as it was (raised before the
# decision wrote anything, by the flow's own checks, not by the database).
_OWN_REFUSALS = (Refusal, NotFound, RequestValidationError)


def decide_group(group: list[_Pending]) -> None:
    """Decide ``group`` in one unit of work and answer each decision once it is committed.
    A decision refused before it wrote is answered with its refusal and the group goes on;
    anything else (a database error, a refusal after a write, an idempotency key another
    process took meanwhile) rolls the group back, and its decisions are decided one by one
    as a lone request would be; but a failed commit is every decision's answer (it may
    have been stored)."""
    answers: list[flows.Decision | BaseException] = []
    committing = False
    try:
        with request_session(group[0].request) as session:
            session.info[flows.GROUP] = {}
            begin_write(session)
            _read_ahead(session, group)
            for pending in group:
                session.info.pop(flows.WRITING, None)
                try:
                    args = (pending.body, pending.raw, pending.key, pending.idempotency_key)
                    answers.append(pending.context.run(_decide, session, *args))
                except _OWN_REFUSALS as refusal:
                    if session.info.get(flows.WRITING):
                        raise
                    answers.append(_refused(session, pending, args, refusal))
            flows.write_group_events(session)
            session.info.pop(flows.GROUP)
            encoded = [
                a if isinstance(a, BaseException) else decision_out(a).model_dump_json().encode()
                for a in answers
            ]
            committing = True  # the with block's end commits
    except Exception as exc:
        if committing:
            # The commit may have happened: decided again, a decision without an
            # idempotency key could be written twice. Each device hears of the error and
            # retries with its key (answered from the record if it was stored).
            for pending in group:
                pending.answer.set_exception(exc)
            return
        # Decided again one by one, each answered as alone.
        for pending in group:
            try:
                alone = (pending.request, pending.body, pending.raw, pending.key,
                         pending.idempotency_key)  # fmt: skip
                pending.answer.set_result(pending.context.run(_device_decision, *alone))
            except BaseException as own:  # the request's own answer
                pending.answer.set_exception(own)
        return
    # Committed (the with block's end) before anyone is answered.
    for pending, answer in zip(group, encoded, strict=True):
        if isinstance(answer, BaseException):
            pending.answer.set_exception(answer)
        else:
            pending.answer.set_result(answer)


def _refused(
    session: Session,
    pending: _Pending,
    args: tuple[schemas.PassageIn, bytes, str | None, str | None],
    refusal: Exception,
) -> flows.Decision | Exception:
    """A refused decision's answer. Alone, a used idempotency key is answered before any
    refusal (its first answer, or 409 for another body); where the group did not look its
    keys up (PostgreSQL: they are checked by its INSERT, which a refusal never reaches), a
    refused decision with a key is decided again with its key looked up."""
    group: dict[tuple[object, ...], object] = session.info[flows.GROUP]
    if not group.get(flows.KEYS_AT_INSERT) or not (
        pending.idempotency_key or pending.body.idempotency_key
    ):
        return refusal
    del group[flows.KEYS_AT_INSERT]
    try:
        return pending.context.run(_decide, session, *args)
    except _OWN_REFUSALS as again:
        if session.info.get(flows.WRITING):
            raise
        return again
    finally:
        group[flows.KEYS_AT_INSERT] = True


def _read_ahead(session: Session, group: list[_Pending]) -> None:
    """The people, plates and idempotency keys the group names, read per community."""
    named: dict[int, tuple[list[str], list[str], list[tuple[str, str]]]] = {}
    for pending in group:
        device = access.known_device(session=session, key=pending.key or "")
        if device is None:
            continue
        people, plates, keys = named.setdefault(device.community_id, ([], [], []))
        body = pending.body
        if body.method == "person" and body.value:
            people.append(body.value)
        elif body.method == "plate" and body.value:
            plates.append(body.value)
        if key := pending.idempotency_key or body.idempotency_key:
            keys.append((Sender.device(device).scope, key))
    for community_id, (people, plates, keys) in named.items():
        flows.read_ahead(session, community_id, people=people, plates=plates, keys=keys)


# One set of threads per database (a group is one unit of work in one database; an app bound
# to another database, as in tests, has its own).
_groups: dict[str, DecisionGroups] = {}
_groups_lock = threading.Lock()


def _decision_groups(request: Request) -> DecisionGroups | None:
    if request.app.dependency_overrides.get(get_session) is not None:
        return None  # tests' shared session: the server's pool as any route
    bind = sessions_of(request).kw.get("bind")
    database = str(bind.url) if bind is not None else ""
    groups = _groups.get(database)
    if groups is None:
        with _groups_lock:
            groups = _groups.get(database)
            if groups is None:
                dialect = bind.dialect.name if bind is not None else "sqlite"
                groups = DecisionGroups(GROUP_THREADS.get(dialect, GROUP_THREADS_DEFAULT))
                _groups[database] = groups
    return groups


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
        answer = _decide(session, body, raw, key, idempotency_key)
    # Committed (the with block's end) before the answer is made: nothing is acknowledged
    # before it is stored.
    return decision_out(answer).model_dump_json().encode()


def _decide(
    session: Session,
    body: schemas.PassageIn | None,
    raw: bytes,
    key: str | None,
    idempotency_key: str | None,
) -> flows.Decision:
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
    return flows.decide(
        session=session, request=passage_request(body, gate_id, idempotency_key),
        sender=Sender.device(device),
    )  # fmt: skip


# Where DeviceDecisions leaves the exception a grouped decision raised, for the route.
DECIDED = "fengchao.device_decision_raised"


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

    Quick decisions are answered before this route, in groups (:class:`DeviceDecisions`);
    it decides the rest (frames, PINs, bodies without a Content-Length) alone, with one hop
    to a pool thread for the whole unit of work, and raises what a group refused."""
    if (decided := request.scope.get(DECIDED)) is not None:
        raise decided  # refused in DeviceDecisions' group
    raw = await request.body()
    data = await run_in_threadpool(
        _device_decision, request, _parsed(raw), raw, x_device_key, idempotency_key
    )
    return Response(data, media_type="application/json")


class DeviceDecisions:
    """A device's quick decision (the busiest request) answered before the middleware stack
    and the router, which cost a fifth of its CPU: the body read, the decision grouped, the
    answer sent with the security headers every answer carries. Anything else (no or a too
    large Content-Length, a body that is not a quick decision, a refusal) goes the usual
    way through the whole app, the body handed on as read; a refusal (or an error) is
    raised again by the route, so that it is answered as the app answers every error, and
    nothing is decided twice."""

    PATH = "/api/access/device/decisions"

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        language_of: Callable[[str | None], str],
        language_cookie: str,
        https: bool,
    ) -> None:
        self.app = app
        self.limit = limit
        self.language_of = language_of
        self.language_cookie = language_cookie
        headers = MutableHeaders()
        security_headers(headers, self.PATH, https=https)
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(reversed(scope["headers"]))  # a header sent twice: the first, as the app
        declared = headers.get(b"content-length", b"")
        idempotency_key = headers.get(b"idempotency-key")
        if (
            not declared.isdigit()
            or int(declared) > self.limit
            or (idempotency_key is not None and len(idempotency_key) > 128)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        raw = b"".join(chunks)
        request = Request(scope)
        body = _parsed(raw) if message["type"] == "http.request" else None
        groups = _decision_groups(request) if body is not None and _is_quick(body) else None
        if groups is not None:
            assert body is not None
            cookie = request.cookies.get(self.language_cookie) if b"cookie" in headers else None
            token = current_language.set(self.language_of(cookie))
            try:
                key = headers.get(b"x-device-key")
                pending = _Pending(
                    request, body, raw, key.decode("latin-1") if key is not None else None,
                    idempotency_key.decode("latin-1") if idempotency_key is not None else None,
                    contextvars.copy_context(),
                )  # fmt: skip
            finally:
                current_language.reset(token)
            try:
                data = await asyncio.wrap_future(groups.submit(pending))
            except Exception as exc:  # raised by the route, answered as the app answers it
                scope[DECIDED] = exc
            else:
                await send({
                    "type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode()), *self.headers],
                })  # fmt: skip
                await send({"type": "http.response.body", "body": data})
                return
        # The body as read; a client that left before its body was in is told to the app as
        # it left (the body so far, then its disconnect), not handed on as a whole body.
        handed: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]
        if message["type"] != "http.request":
            handed = [{"type": "http.request", "body": raw, "more_body": True}, message]

        async def replay() -> Message:
            if handed:
                return handed.pop(0)
            return await receive()

        await self.app(scope, replay, send)


@device_router.get("/state")
def device_state(device: CurrentDevice, session: DbSession) -> dict[str, object]:
    """The device's gate and the alert level in force there (consoles show it)."""
    gate = session.get(Gate, device.gate_id)
    assert gate is not None
    level = access.level_at(
        session=session, community_id=gate.community_id, compound_id=gate.compound_id
    )
    return {"gate_id": gate.id, "gate": gate.name, "alert_level": level.value}
