"""The enrolment desk's camera (人脸录入台): the quality verdict of one live frame, the
enrolment of two or three captured frames that must really differ, and finding the person
by room or name.

The verdict is ``FacePipeline.enrol`` run on the frame against the person's templates on
file, without the synthetic masks (the desk asks several times a second; the masks are
computed once, at the enrolment) and without storing anything. The enrolment itself goes
through :func:`faces.enrol` like an uploaded photo: the same consent record, the same
refusals, the same audit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.access import faces
from fengchao.access.face_models import FaceTemplate
from fengchao.auth.service import Actor, Permission, require
from fengchao.registry import search
from fengchao.registry.models import ResidenceStatus
from fengchao.vision.face_pipeline import EnrolmentRefused, QualityPolicy
from fengchao.vision.images import ImageError, RGBImage, decode_image
from fengchao.web.i18n import _

# A captured frame whose 32×24 grey copy differs from another by less than this (mean
# grey level, of 255) is the same picture: a still photo held up to the camera, or a
# frozen camera, gives such frames. This refuses a frozen picture only; a photo moved by
# hand or a video on a phone moves, and telling those from a live face needs a liveness
# model this project does not have.
SAME_PICTURE = 0.6
MIN_FRAMES, MAX_FRAMES = 2, 3
MAX_FRAME_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    """What the desk shows under the live picture: ``code`` None when the frame is good."""

    code: str | None
    message: str


def verdict_message(code: str | None) -> str:
    """The words under the live picture (short: they change several times a second)."""
    if code is None:
        return _("可以拍摄：正脸清晰，光线合适")
    words = {
        "too_dark": _("太暗了：请开灯或换到亮一点的地方"),
        "no_face": _("没有看到人脸：请正对镜头，摘下口罩、帽子和墨镜"),
        "several_faces": _("画面里有两张以上的人脸：请只留本人在镜头前"),
        "too_small": _("脸太小：请靠近镜头一些"),
        "blurry": _("画面模糊：请别动，稍等对焦"),
        "not_frontal": _("脸偏了：请正对镜头，头不要转或歪"),
        "not_same_person": _("与此人已录入的人脸不像同一个人：请核对是否本人"),
    }
    return words.get(code) or faces.refusal_message(code)


def check_frame(session: Session, actor: Actor, person_id: int, frame: bytes) -> Verdict:
    """The quality verdict of one camera frame for this person; stores nothing."""
    require(actor, Permission.faces_manage)
    person = faces.person_in_scope(session, actor, person_id)
    existing = faces.templates_on_file(session, person.id)
    try:
        image = decode_image(frame)
    except ImageError as refused:
        return Verdict(refused.code, faces.refusal_message(refused.code))
    with faces.pipeline() as used:
        try:
            used.enrol(image, QualityPolicy(), masks=False, existing=existing)
        except EnrolmentRefused as refused:
            return Verdict(refused.code, verdict_message(refused.code))
    return Verdict(None, verdict_message(None))


def _small_grey(image: RGBImage) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def same_pictures(frames: Sequence[bytes]) -> bool:
    """Whether two of the frames are the same picture (see :data:`SAME_PICTURE`);
    frames that cannot be decoded are left to the enrolment to refuse."""
    smalls = []
    for data in frames:
        try:
            smalls.append(_small_grey(decode_image(data)))
        except ImageError:
            return False
    return any(
        float(np.abs(a - b).mean()) < SAME_PICTURE
        for i, a in enumerate(smalls)
        for b in smalls[i + 1 :]
    )


def enrol_frames(
    session: Session,
    actor: Actor,
    person_id: int,
    frames: Sequence[bytes],
    *,
    consent: faces.ConsentGiven | None,
) -> faces.EnrolResult:
    """Enrol the frames captured at the desk: two or three, no two of them the same picture
    (two frames of a still photo are not two frames of a live person)."""
    require(actor, Permission.faces_manage)
    if not MIN_FRAMES <= len(frames) <= MAX_FRAMES:
        raise faces.FaceRefused(
            "frame_count",
            _("请拍 {a} 到 {b} 帧合格的画面再录入").format(a=MIN_FRAMES, b=MAX_FRAMES),
            field="frames",
        )
    if any(len(data) > MAX_FRAME_BYTES for data in frames):
        raise faces.FaceRefused("too_large", faces.refusal_message("too_large"), field="frames")
    if same_pictures(frames):
        raise faces.FaceRefused(
            "same_picture",
            _("有两帧画面完全相同（可能是举着的照片）：请本人稍微动一下头再拍"),
            field="frames",
        )
    return faces.enrol(session, actor, person_id, list(frames), consent=consent)


@dataclass(frozen=True)
class DeskPerson:
    """A person as the desk lists them to pick."""

    id: int
    name: str
    place: str
    templates: int
    enrolled_at: dt.datetime | None = None


def find_people(session: Session, actor: Actor, query: str) -> list[DeskPerson]:
    """People to pick by room ("5-2-1302") or name, in the actor's scope (a lookup,
    audited by the registry's search), with how many templates each has on file."""
    require(actor, Permission.faces_manage)
    cards = search.room_check(session=session, actor=actor, query=query, limit=12)
    people = [
        (person, f"{c.household.building.name}-{c.household.unit.name}-{c.household.room}")
        for c in cards
        for person in c.people
        if person.residence_status != ResidenceStatus.moved_out
    ]
    ids = [person.id for person, _place in people]
    counts: dict[int, int] = dict(
        session.execute(
            select(FaceTemplate.person_id, func.count(FaceTemplate.id))
            .where(FaceTemplate.person_id.in_(ids))
            .group_by(FaceTemplate.person_id)
        ).all()
    )
    return [
        DeskPerson(p.id, p.name, place, int(counts.get(p.id, 0)), p.face_enrolled_at)
        for p, place in people
    ]
