"""Pages and API of faces on file: the enrolment desk for property staff (photos, consent,
refusals in words, deletion on request), the audited thumbnail, and the compliance figures
for administrators."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from fengchao.access import face_desk, faces
from fengchao.access.face_models import ConsentMethod, FaceTemplate
from fengchao.auth.service import Actor, Permission, Refusal, require
from fengchao.registry.models import Household, Person, ResidenceStatus
from fengchao.registry.scope import communities_in_scope, household_in_scope
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf
from fengchao.web.i18n import _

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)

# Tells the workers of one server apart in the identify API's answer (a random token, no
# process id): the cross-process test checks that both answered.
PROCESS_TOKEN = secrets.token_hex(4)
MAX_PHOTO_BYTES = 15 * 1024 * 1024


def method_labels() -> dict[str, str]:
    return {
        ConsentMethod.signed_form.value: _("书面签字"),
        ConsentMethod.in_person.value: _("当面口头同意"),
        ConsentMethod.guardian.value: _("监护人代为同意"),
        ConsentMethod.command_line.value: _("批量录入（附纸质同意书）"),
    }


def kind_labels() -> dict[str, str]:
    return {
        "photo": _("正面照"),
        "synthetic_mask": _("合成口罩"),
        "masked_photo": _("戴口罩照"),
    }


def _read(files: list[UploadFile] | None) -> list[bytes]:
    """The uploaded photos, in memory only for the enrolment (never written anywhere)."""
    read = []
    for upload in files or []:
        if not upload.filename and not upload.size:
            continue  # an empty file field
        upload.file.seek(0)
        read.append(upload.file.read(MAX_PHOTO_BYTES + 1))
    return read


def _people(session: DbSession, actor: Actor, text: str) -> list[face_desk.DeskPerson]:
    """Found by room ("5-2-1302") or name; without a query, the latest enrolled first."""
    if text.strip():
        return face_desk.find_people(session, actor, text)
    query = (
        select(Person, func.count(FaceTemplate.id))
        .join(Household, Household.id == Person.household_id)
        .outerjoin(FaceTemplate, FaceTemplate.person_id == Person.id)
        .where(
            household_in_scope(actor.scope), Person.residence_status != ResidenceStatus.moved_out
        )
        .group_by(Person.id)
        .order_by(Person.face_enrolled_at.desc().nulls_last(), Person.id)
        .limit(30)
    )
    return [
        face_desk.DeskPerson(person.id, person.name, "", int(count), person.face_enrolled_at)
        for person, count in session.execute(query).all()
    ]


@router.get("/faces", response_class=HTMLResponse)
def faces_home(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    q: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    require(actor, Permission.faces_manage)
    error = None
    try:
        people = _people(session, actor, q)
    except Refusal as refused:
        people, error = [], refused.message
    return render(
        request, "access/faces_home.html", {"people": people, "q": q, "error": error},
        status_code=422 if error else 200,
    )  # fmt: skip


def _person_page(
    request: Request,
    session: DbSession,
    actor: Actor,
    person_id: int,
    *,
    error: str | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    on_file = faces.faces_of(session, actor, person_id)
    return render(
        request,
        "access/faces_person.html",
        {
            "on_file": on_file,
            "person": on_file.person,
            "total": sum(on_file.templates.values()),
            "kind_labels": kind_labels(),
            "method_labels": method_labels(),
            "error": error,
            "done": done,
            "max_photos": faces.MAX_PHOTOS,
            "desk_frames": (face_desk.MIN_FRAMES, face_desk.MAX_FRAMES),
        },
        status_code=status_code,
    )


@router.get("/faces/people/{person_id}", response_class=HTMLResponse)
def person_faces(
    request: Request, session: DbSession, actor: CurrentActor, person_id: RowId
) -> Response:
    done = {
        "enrolled": _("已录入。"),
        "consent": _("已登记同意。"),
        "withdrawn": _("已撤回同意，人脸信息已删除。"),
        "deleted": _("人脸信息已删除。"),
    }.get(request.query_params.get("done", ""))
    return _person_page(request, session, actor, person_id, done=done)


@router.post("/faces/people/{person_id}/enrol", response_class=HTMLResponse)
def enrol_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    person_id: RowId,
    photos: Annotated[list[UploadFile] | None, File()] = None,
    masked_photos: Annotated[list[UploadFile] | None, File()] = None,
    consented_by: Annotated[str, Form(max_length=64)] = "",
    method: Annotated[ConsentMethod, Form()] = ConsentMethod.signed_form,
) -> Response:
    bare, masked = _read(photos), _read(masked_photos)
    consent = faces.ConsentGiven(consented_by, method) if consented_by.strip() else None
    try:
        faces.enrol(session, actor, person_id, bare, consent=consent, masked_photos=masked)
    except faces.FaceRefused as refused:
        return _person_page(
            request, session, actor, person_id, error=refused.message, status_code=422
        )
    return RedirectResponse(f"/faces/people/{person_id}?done=enrolled", status_code=303)


@router.post("/faces/people/{person_id}/consent", response_class=HTMLResponse)
def consent_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    person_id: RowId,
    consented_by: Annotated[str, Form(max_length=64)] = "",
    method: Annotated[ConsentMethod, Form()] = ConsentMethod.signed_form,
) -> Response:
    try:
        faces.record_consent(session, actor, person_id, faces.ConsentGiven(consented_by, method))
    except faces.FaceRefused as refused:
        return _person_page(
            request, session, actor, person_id, error=refused.message, status_code=422
        )
    return RedirectResponse(f"/faces/people/{person_id}?done=consent", status_code=303)


@router.post("/faces/people/{person_id}/withdraw", response_class=HTMLResponse)
def withdraw_page(
    request: Request, session: DbSession, actor: CurrentActor, person_id: RowId
) -> Response:
    try:
        faces.withdraw_consent(session, actor, person_id)
    except faces.FaceRefused as refused:
        return _person_page(
            request, session, actor, person_id, error=refused.message, status_code=422
        )
    return RedirectResponse(f"/faces/people/{person_id}?done=withdrawn", status_code=303)


@router.post("/faces/people/{person_id}/delete", response_class=HTMLResponse)
def delete_page(
    request: Request, session: DbSession, actor: CurrentActor, person_id: RowId
) -> Response:
    try:
        faces.delete_faces(session, actor, person_id)
    except faces.FaceRefused as refused:
        return _person_page(
            request, session, actor, person_id, error=refused.message, status_code=422
        )
    return RedirectResponse(f"/faces/people/{person_id}?done=deleted", status_code=303)


@router.get("/faces/people/{person_id}/thumbnail.jpg")
def thumbnail(session: DbSession, actor: CurrentActor, person_id: RowId) -> Response:
    jpeg = faces.view_thumbnail(session, actor, person_id)
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/faces/compliance", response_class=HTMLResponse)
def compliance_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    require(actor, Permission.audit_read)
    figures = faces.compliance(session)
    return render(request, "access/faces_compliance.html", {"figures": figures})


# --- API ----------------------------------------------------------------------------------


@router.post("/api/faces/people/{person_id}/enrol")
def enrol_api(
    session: DbSession,
    actor: CurrentActor,
    person_id: RowId,
    photos: Annotated[list[UploadFile] | None, File()] = None,
    masked_photos: Annotated[list[UploadFile] | None, File()] = None,
    consented_by: Annotated[str, Form(max_length=64)] = "",
    method: Annotated[ConsentMethod, Form()] = ConsentMethod.signed_form,
) -> Response:
    """Enrol from photos (multipart ``photos``, ``masked_photos``); consent given in the
    same request (``consented_by``, ``method``) or already on record. A refusal answers 422
    with ``error`` (the code) and ``message``."""
    bare, masked = _read(photos), _read(masked_photos)
    consent = faces.ConsentGiven(consented_by, method) if consented_by.strip() else None
    try:
        result = faces.enrol(session, actor, person_id, bare, consent=consent, masked_photos=masked)
    except faces.FaceRefused as refused:
        return JSONResponse(
            {"person_id": person_id, "error": refused.code, "message": refused.message},
            status_code=422,
        )
    return JSONResponse(
        {"person_id": result.person_id, "templates": result.templates, "added": result.added}
    )


@router.post("/api/faces/people/{person_id}/check")
def check_api(
    session: DbSession,
    actor: CurrentActor,
    person_id: RowId,
    frame: Annotated[UploadFile, File()],
) -> Response:
    """The enrolment desk's verdict on one camera frame (``frame``): ``ok``, ``code``
    (None, or a refusal code of ``FacePipeline.enrol``) and ``message`` in the user's
    language. Stores nothing."""
    data = frame.file.read(face_desk.MAX_FRAME_BYTES + 1)
    if len(data) > face_desk.MAX_FRAME_BYTES:
        raise faces.FaceRefused("too_large", faces.refusal_message("too_large"), field="frame")
    verdict = face_desk.check_frame(session, actor, person_id, data)
    return JSONResponse(
        {"ok": verdict.code is None, "code": verdict.code, "message": verdict.message}
    )


@router.post("/api/faces/people/{person_id}/capture")
def capture_api(
    session: DbSession,
    actor: CurrentActor,
    person_id: RowId,
    frames: Annotated[list[UploadFile], File()],
    consented_by: Annotated[str, Form(max_length=64)] = "",
    method: Annotated[ConsentMethod, Form()] = ConsentMethod.signed_form,
) -> Response:
    """Enrol the two or three frames captured at the desk (``frames``; no two the same
    picture), with consent given here or already on record. A refusal answers 422 with
    ``error`` and ``message``."""
    data = [upload.file.read(face_desk.MAX_FRAME_BYTES + 1) for upload in frames]
    consent = faces.ConsentGiven(consented_by, method) if consented_by.strip() else None
    try:
        result = face_desk.enrol_frames(session, actor, person_id, data, consent=consent)
    except faces.FaceRefused as refused:
        return JSONResponse(
            {"person_id": person_id, "error": refused.code, "message": refused.message},
            status_code=422,
        )
    return JSONResponse(
        {"person_id": result.person_id, "templates": result.templates, "added": result.added}
    )


def _community_for(session: DbSession, actor: Actor, wanted: int | None) -> int:
    if actor.community_id is not None:
        return actor.community_id
    allowed = {c.id for c in communities_in_scope(session=session, scope=actor.scope)}
    if wanted is None or wanted not in allowed:
        raise Refusal(_("请指定社区"), field="community_id")
    return wanted


@router.post("/api/faces/identify")
async def identify_api(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    community_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Who is in a photo (the raw image as the body): for the enrolment desk's "is this
    person already on file" and for checking a gallery; the gates decide through their own
    service. The community is the account's own (an account of a street names one)."""
    require(actor, Permission.faces_manage)
    community = await run_in_threadpool(_community_for, session, actor, community_id)
    frame = await request.body()
    # The pipeline takes a CPU core for a while: off the event loop.
    outcome = await run_in_threadpool(
        faces.identify_for_gate, session, community_id=community, frame=frame
    )
    return JSONResponse({**asdict(outcome), "served_by": PROCESS_TOKEN})
