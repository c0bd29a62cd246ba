"""Faces on file (人脸录入与识别): enrolment with consent, withdrawal, the community galleries
kept current in every server process, and the face step of a gate decision.

What is stored: the descriptors ``FacePipeline.enrol`` computes (the photo, its synthetic
masks, a photo taken with the resident's own mask), each with its kind and model, and a
small face thumbnail sealed with the data key and bound to its row. Never the upload.

Every server process keeps one in-memory :class:`FaceGallery` per community, built from
the database at first use. An enrolment or a deletion appends a row to the gallery change
log (``face_gallery_change``) in the same transaction; before a search a process reads the
rows it has not applied yet, at most once a second (at once after a change it made itself),
and reloads the people they name. A face enrolled through one worker is therefore known to
every other within a second of the commit. A match is checked against the database before
it is answered (one indexed read), so a withdrawal takes effect at once even in a process
that has not polled since.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from fengchao.access.face_models import (
    ConsentMethod,
    FaceConsent,
    FaceGalleryChange,
    FaceTemplate,
    FaceThumbnail,
    TemplateKind,
)
from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import SYSTEM_ACTOR, Actor, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.registry.models import Household, Person, ResidenceStatus
from fengchao.registry.scope import household_in_scope
from fengchao.settings import get_settings
from fengchao.vision.face_pipeline import (
    EnrolmentRefused,
    Face,
    FacePipeline,
    QualityPolicy,
    Templates,
    Timings,
    detect_coarse_first,
)
from fengchao.vision.faces import FaceBox
from fengchao.vision.gallery import MASKED_PHOTO, PHOTO, FaceGallery
from fengchao.vision.images import ImageError, RGBImage, decode_image
from fengchao.web.i18n import _

log = logging.getLogger("fengchao.access.faces")

# The encoder whose descriptors are stored; templates of another model are never searched
# (their distances mean nothing to this one). Both face encoders ("dlib", "onnx") run this
# network and give the same descriptors (within 1e-5), so they share the name.
MODEL = "dlib_resnet_v1"
# How often a process reads the change log before a search, at most.
POLL_SECONDS = 1.0
# The newest change rows read again on every poll (one index range): a transaction that
# took its id before another may commit after it, and must not be missed.
LOOKBACK_IDS = 500
# A gallery not polled for this long is rebuilt rather than caught up (the log keeps a day).
STALE_SECONDS = 12 * 3600.0
# Change log rows older than this are purged.
CHANGE_LOG_KEEP = dt.timedelta(days=1)
# Above this many people changed since the last poll, a large gallery is read again in full.
REBUILD_FROM = 50
# Galleries smaller than this many templates (rebuilt in a few milliseconds) take changes
# at once, before the search; larger ones in the background.
APPLY_INLINE_BELOW = 20_000
THUMBNAIL_SIDE = 112
# A face-recognition operator with this many people's faces must file with the regulator
# (网信办 备案); the admin page warns from WARN_FRACTION of it.
FILING_THRESHOLD = 100_000
WARN_FRACTION = 0.9
MAX_PHOTOS = 5


# --- what the gate sees -------------------------------------------------------------------


@dataclass(frozen=True)
class FaceOutcome:
    """The face step of a gate decision.

    ``reason``: None (recognised), ``bad_image`` (not a decodable image, truncated, huge),
    ``no_face``, ``unknown_face`` (no one on file is near enough, or it is too close to call).
    ``faces_in_frame``: how many faces were found; the largest centred one decides.
    ``timings``: milliseconds by step (decode, sync, detect, align, encode, search, check,
    total).
    """

    person_id: int | None
    distance: float | None
    masked: bool
    reason: str | None
    faces_in_frame: int
    timings: dict[str, float]


# --- refusals -----------------------------------------------------------------------------


class FaceRefused(Refusal):
    """An enrolment, consent or deletion refused; ``code`` is stable (the CLI prints it)."""

    status = 422

    def __init__(self, code: str, message: str, *, field: str | None = "photos") -> None:
        super().__init__(message, field=field)
        self.code = code


def refusal_message(code: str) -> str:
    """The clerk's message for a refusal code of ``FacePipeline.enrol`` or of image decoding,
    in the user's language."""
    messages = {
        "too_dark": _("照片太暗：请到光线充足的地方重拍"),
        "no_face": _("照片里没有找到人脸：请正对镜头，摘下口罩、帽子和墨镜"),
        "several_faces": _("照片里有不止一张人脸：每张照片只能有本人一人"),
        "too_small": _("人脸太小：请靠近一些，让脸占满画面的一半左右"),
        "blurry": _("照片模糊：请拿稳手机、对好焦后重拍"),
        "not_frontal": _("请正对镜头：头不要偏转或歪斜"),
        "not_same_person": _("这张照片与此人已录入的照片不像同一个人：请核对是否本人后重拍"),
        "empty": _("文件是空的"),
        "too_large": _("图片文件太大：请用手机正常拍照（不超过 15 MB）"),
        "not_an_image": _("不是图片文件（支持 JPEG、PNG、WebP）"),
        "unsupported_format": _("不支持这种图片格式，请用 JPEG、PNG 或 WebP"),
        "too_many_pixels": _("图片像素太多：请用手机正常拍照"),
        "truncated": _("图片文件不完整或已损坏：请重新拍照上传"),
        "bad_frame": _("画面格式不对"),
        "no_photo": _("请至少上传一张照片"),
        "too_many_photos": _("一次最多上传 {n} 张照片").format(n=MAX_PHOTOS),
        "no_consent": _("还没有此人同意录入人脸的记录：请先登记本人（或监护人）的同意"),
        "consent_missing_name": _("请填写同意人的姓名"),
        "moved_out": _("此人已迁出，不能录入人脸"),
        "nothing_on_file": _("此人没有录入人脸"),
        "no_active_consent": _("此人没有有效的同意记录"),
    }
    return messages.get(code, _("照片不能使用：请重拍"))


def _refused(code: str, photo: int | None = None) -> FaceRefused:
    message = refusal_message(code)
    if photo is not None:
        message = _("第 {n} 张照片：").format(n=photo) + message
    return FaceRefused(code, message)


# --- pipelines ----------------------------------------------------------------------------

_PIPELINES: queue.SimpleQueue[FacePipeline] = queue.SimpleQueue()
# At most one pipeline at work per core in a process: more threads would only share the
# cores more slowly (and each pipeline keeps its models in memory, about 100 MB).
_AT_WORK = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def make_pipeline() -> FacePipeline:
    """The pipeline the settings name: detector and encoder (in worker processes when
    :func:`encoder_processes` says so)."""
    from fengchao.vision.faces import face_detector_class, face_encoder_class

    settings = get_settings()
    detector = face_detector_class(settings.vision.face_detector)()
    encoder = settings.vision.face_encoder
    processes = encoder_processes()
    if processes:
        from fengchao.vision.encoder_pool import PooledEncoder

        return FacePipeline(detector, PooledEncoder(processes, encoder))
    return FacePipeline(detector, face_encoder_class(encoder)())


def encoder_processes() -> int:
    """How many encoder worker processes this server uses (``vision.face_encoder_processes``;
    unset: none for the onnx encoder, whose onnxruntime lets go of Python's lock while it
    computes, so threads of the web process use both cores; for dlib's, which keeps the
    lock, one per core, at most 4, except under test)."""
    settings = get_settings()
    chosen = settings.vision.face_encoder_processes
    if chosen is not None:
        return chosen
    if settings.env == "test" or settings.vision.face_encoder != "dlib":
        return 0
    return min(4, os.cpu_count() or 1)


@contextmanager
def pipeline() -> Iterator[FacePipeline]:
    """A pipeline for this thread's use (they are not thread-safe): taken from the process's
    pool, made when none is free, given back afterwards."""
    with _AT_WORK:
        try:
            found = _PIPELINES.get_nowait()
        except queue.Empty:
            found = make_pipeline()
        try:
            yield found
        finally:
            _PIPELINES.put(found)


# --- the galleries ------------------------------------------------------------------------


@dataclass
class _GalleryState:
    gallery: FaceGallery
    last_id: int
    polled_at: float  # time.monotonic()
    applied: dict[int, float] = field(default_factory=dict)  # change id → monotonic time
    dirty: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_GALLERIES: dict[tuple[str, int], _GalleryState] = {}
_GALLERIES_GUARD = threading.Lock()


def _key(session: Session, community_id: int) -> tuple[str, int]:
    return (str(session.get_bind().engine.url), community_id)


def new_gallery() -> FaceGallery:
    vision = get_settings().vision
    return FaceGallery(threshold=vision.face_threshold, margin=vision.face_margin)


def reset_galleries() -> None:
    """Forget every gallery of this process (tests; a restore of the database)."""
    wait_for_galleries()
    with _GALLERIES_GUARD:
        _GALLERIES.clear()


def _templates_by_person(
    session: Session, community_id: int, people: Sequence[int] | None = None
) -> dict[int, tuple[list[bytes], list[int]]]:
    query = select(
        FaceTemplate.person_id, FaceTemplate.descriptor, FaceTemplate.gallery_kind
    ).where(FaceTemplate.community_id == community_id, FaceTemplate.model == MODEL)
    if people is not None:
        query = query.where(FaceTemplate.person_id.in_(people))
    found: dict[int, tuple[list[bytes], list[int]]] = defaultdict(lambda: ([], []))
    for person_id, descriptor, kind in session.execute(query.order_by(FaceTemplate.id)):
        found[person_id][0].append(descriptor)
        found[person_id][1].append(kind)
    return found


def _vectors(blobs: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)


def _build(session: Session, community_id: int) -> _GalleryState:
    # The log position first: a change committed while the templates are read is applied
    # again at the next poll (reloading a person is idempotent).
    last_id = session.scalar(
        select(func.max(FaceGalleryChange.id)).where(FaceGalleryChange.community_id == community_id)
    )
    gallery = new_gallery()
    people = _templates_by_person(session, community_id)
    gallery.add_many(
        (person_id, _vectors(blobs), np.asarray(kinds))
        for person_id, (blobs, kinds) in people.items()
    )
    return _GalleryState(gallery, last_id or 0, time.monotonic())


def _poll(session: Session, community_id: int, state: _GalleryState) -> None:
    now = time.monotonic()
    rows = session.execute(
        select(FaceGalleryChange.id, FaceGalleryChange.person_id).where(
            FaceGalleryChange.community_id == community_id,
            FaceGalleryChange.id > state.last_id - LOOKBACK_IDS,
        )
    ).all()
    fresh = [
        (change_id, person_id) for change_id, person_id in rows if change_id not in state.applied
    ]
    state.polled_at = now
    state.dirty = False
    if not fresh:
        _forget_old(state, now)
        return
    people = sorted({person_id for _, person_id in fresh})
    if len(state.gallery) < APPLY_INLINE_BELOW:
        _apply(state, _templates_by_person(session, community_id, people), people)
    elif len(people) > REBUILD_FROM:
        engine = session.get_bind().engine
        _applier().submit(_rebuild_from, state, engine, community_id)
    else:
        # A large gallery takes a while to rebuild (about a second at 100,000 people): in
        # the background, while the searches go on in the gallery as it was (a match is
        # confirmed on file before it is answered, so a deletion is effective at once).
        stored = _templates_by_person(session, community_id, people)
        _applier().submit(_apply, state, stored, people)
    for change_id, _person in fresh:
        state.applied[change_id] = now
        state.last_id = max(state.last_id, change_id)
    _forget_old(state, now)


_APPLIER: list[ThreadPoolExecutor] = []


def _applier() -> ThreadPoolExecutor:
    """One thread per process applies changes to large galleries, in order."""
    with _GALLERIES_GUARD:
        if not _APPLIER:
            _APPLIER.append(ThreadPoolExecutor(1, thread_name_prefix="face-gallery"))
        return _APPLIER[0]


def _apply(
    state: _GalleryState, stored: dict[int, tuple[list[bytes], list[int]]], people: list[int]
) -> None:
    gallery = state.gallery
    for person_id in people:
        if person_id in stored:
            blobs, kinds = stored[person_id]
            gallery.replace(person_id, _vectors(blobs), np.asarray(kinds))
        else:
            gallery.remove(person_id)


def _rebuild_from(state: _GalleryState, engine: Engine, community_id: int) -> None:
    """Many people changed at once (a batch enrolment): the gallery read again in full."""
    with Session(engine) as session:
        state.gallery = _build(session, community_id).gallery


def wait_for_galleries() -> None:
    """Until the changes handed to the background thread are applied (tests, benchmarks)."""
    if _APPLIER:
        _APPLIER[0].submit(lambda: None).result()


def _forget_old(state: _GalleryState, now: float) -> None:
    floor = state.last_id - LOOKBACK_IDS
    for change_id in [c for c in state.applied if c <= floor]:
        del state.applied[change_id]


def community_gallery(session: Session, community_id: int) -> FaceGallery:
    """This process's gallery of the community, caught up with the change log (read at most
    once a second; at once after this process changed it)."""
    key = _key(session, community_id)
    state = _GALLERIES.get(key)
    now = time.monotonic()
    if state is None or now - state.polled_at > STALE_SECONDS:
        with _GALLERIES_GUARD:
            state = _GALLERIES.get(key)
            if state is None or now - state.polled_at > STALE_SECONDS:
                state = _build(session, community_id)
                _GALLERIES[key] = state
        return state.gallery
    due = state.dirty or now - state.polled_at >= POLL_SECONDS
    # One thread polls; the others search the gallery as it is (at most a second old).
    if due and state.lock.acquire(blocking=False):
        try:
            _poll(session, community_id, state)
        finally:
            state.lock.release()
    return state.gallery


def warm_galleries(sessions: sessionmaker[Session]) -> int:
    """Build the gallery of every community with faces on file now, so that the first gate
    frame after a start does not wait for it (seconds at 100,000 people). Returns how many."""
    with sessions() as session:
        communities = session.scalars(select(FaceTemplate.community_id).distinct()).all()
        for community_id in communities:
            community_gallery(session, community_id)
    if communities:
        with pipeline() as used:  # the models loaded, ready for the first frame
            warm = getattr(used.encoder, "warm", None)
            if warm is not None:
                warm()  # the encoder's worker processes started
    return len(communities)


def start_warming(sessions: sessionmaker[Session]) -> threading.Thread:
    """:func:`warm_galleries` in a background thread (the server answers meanwhile)."""

    def warm() -> None:
        try:
            warm_galleries(sessions)
        except Exception:  # a search builds the gallery itself if this did not
            log.exception("could not build the face galleries at start")

    thread = threading.Thread(target=warm, name="face-gallery-warm", daemon=True)
    thread.start()
    return thread


def _changed(session: Session, community_id: int, person_id: int) -> None:
    """Log a change of a person's templates (read by every process) and poll at once here."""
    session.add(FaceGalleryChange(community_id=community_id, person_id=person_id))
    state = _GALLERIES.get(_key(session, community_id))
    if state is not None:
        state.dirty = True


# --- enrolment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentGiven:
    """What the clerk records of a resident's consent."""

    consented_by: str
    method: ConsentMethod = ConsentMethod.signed_form


@dataclass(frozen=True)
class EnrolResult:
    person_id: int
    templates: int  # stored for the person now, all kinds
    added: int  # by this enrolment
    consent_id: int


def _person_in_scope(session: Session, actor: Actor, person_id: int) -> Person:
    query = select(Person).join(Household, Household.id == Person.household_id)
    if actor != SYSTEM_ACTOR:  # the command line without --as: the whole grid
        query = query.where(household_in_scope(actor.scope))
    person = session.scalar(query.where(Person.id == person_id))
    if person is None:
        raise NotFound(f"person {person_id}")
    return person


def person_in_scope(session: Session, actor: Actor, person_id: int) -> Person:
    """The person if the actor's scope holds them (``NotFound`` otherwise)."""
    return _person_in_scope(session, actor, person_id)


def templates_on_file(session: Session, person_id: int) -> Templates | None:
    """The person's stored descriptors of this model with their gallery kinds, or None."""
    return _existing(session, person_id)


def active_consent(session: Session, person_id: int) -> FaceConsent | None:
    return session.scalar(
        select(FaceConsent)
        .where(FaceConsent.person_id == person_id, FaceConsent.withdrawn_at.is_(None))
        .order_by(FaceConsent.id.desc())
        .limit(1)
    )


def record_consent(
    session: Session, actor: Actor, person_id: int, given: ConsentGiven
) -> FaceConsent:
    """Record a resident's consent (kept as its own record); the active one if there is."""
    require(actor, Permission.faces_manage)
    begin_write(session)
    person = _person_in_scope(session, actor, person_id)
    name = given.consented_by.strip()[:64]
    if not name:
        raise FaceRefused(
            "consent_missing_name", refusal_message("consent_missing_name"), field="consented_by"
        )
    current = active_consent(session, person.id)
    if current is not None:
        return current
    consent = FaceConsent(
        person_id=person.id,
        community_id=person.community_id,
        consented_by=name,
        method=given.method,
        recorded_by_id=actor.user_id or None,
        recorded_by=actor.display_name[:64],
        consented_at=utcnow(),
    )
    session.add(consent)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="face_consent",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
        method=given.method.value,
    )
    return consent


def _existing(session: Session, person_id: int) -> Templates | None:
    rows = session.execute(
        select(FaceTemplate.descriptor, FaceTemplate.gallery_kind).where(
            FaceTemplate.person_id == person_id, FaceTemplate.model == MODEL
        )
    ).all()
    if not rows:
        return None
    return Templates(_vectors([r[0] for r in rows]), np.array([r[1] for r in rows]))


def _kind_of(gallery_kind: int) -> TemplateKind:
    if gallery_kind == PHOTO:
        return TemplateKind.photo
    if gallery_kind == MASKED_PHOTO:
        return TemplateKind.masked_photo
    return TemplateKind.synthetic_mask


def _thumbnail_context(community_id: int, person_id: int) -> bytes:
    return f"face-thumbnail:{community_id}:{person_id}".encode()


def _thumbnail(image: RGBImage, box: FaceBox) -> bytes:
    """A small JPEG of the face with a little room around it."""
    height, width = image.shape[:2]
    pad = int(0.3 * max(box.width, box.height))
    crop = image[
        max(0, box.top - pad) : min(height, box.bottom + pad),
        max(0, box.left - pad) : min(width, box.right + pad),
    ]
    picture = Image.fromarray(np.ascontiguousarray(crop))
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return out.getvalue()


def enrol(
    session: Session,
    actor: Actor,
    person_id: int,
    photos: Sequence[bytes],
    *,
    consent: ConsentGiven | None = None,
    masked_photos: Sequence[bytes] = (),
    face_pipeline: FacePipeline | None = None,
) -> EnrolResult:
    """Enrol a person's face from one or more photos (and photos with their own mask on).

    Every photo is checked before anything is stored: one refused photo refuses the whole
    enrolment (:class:`FaceRefused`, its code the pipeline's or the image decoder's, the
    message naming the photo). Consent must be on record, or given here (``consent``).
    """
    require(actor, Permission.faces_manage)
    if not photos and not masked_photos:
        raise _refused("no_photo")
    if len(photos) + len(masked_photos) > MAX_PHOTOS:
        raise _refused("too_many_photos")
    begin_write(session)
    person = _person_in_scope(session, actor, person_id)
    if person.residence_status == ResidenceStatus.moved_out:
        raise FaceRefused("moved_out", refusal_message("moved_out"), field=None)
    # Nothing is written until every photo passed: a refusal leaves no row behind.
    found = active_consent(session, person.id)
    if found is None and consent is None:
        raise FaceRefused("no_consent", refusal_message("no_consent"), field="consented_by")
    if found is None and consent is not None and not consent.consented_by.strip():
        raise FaceRefused(
            "consent_missing_name", refusal_message("consent_missing_name"), field="consented_by"
        )
    existing = _existing(session, person.id)
    new_descriptors: list[np.ndarray] = []
    new_kinds: list[np.ndarray] = []
    thumbnail: bytes | None = None
    with _pipeline_for(face_pipeline) as used:
        checked = [(data, False) for data in photos] + [(data, True) for data in masked_photos]
        for number, (data, masked) in enumerate(checked, start=1):
            try:
                image = decode_image(data)
                enrolment = used.enrol(image, QualityPolicy(), masked=masked, existing=existing)
            except (ImageError, EnrolmentRefused) as refused:
                raise _refused(refused.code, number if len(checked) > 1 else None) from None
            descriptors, kinds = enrolment.templates
            new_descriptors.append(descriptors)
            new_kinds.append(kinds)
            existing = _merged(existing, enrolment.templates)
            if thumbnail is None and not masked:
                thumbnail = _thumbnail(image, enrolment.face.box)
    if found is None:
        assert consent is not None
        found = record_consent(session, actor, person.id, consent)
    given = found
    now = utcnow()
    descriptors = np.concatenate(new_descriptors).astype("<f4")
    kinds = np.concatenate(new_kinds)
    session.add_all(
        FaceTemplate(
            person_id=person.id,
            community_id=person.community_id,
            descriptor=descriptor.tobytes(),
            kind=_kind_of(int(kind)),
            gallery_kind=int(kind),
            model=MODEL,
            created_at=now,
        )
        for descriptor, kind in zip(descriptors, kinds, strict=True)
    )
    if thumbnail is not None:
        _store_thumbnail(session, person, thumbnail, now)
    _mark_enrolled(session, person.id, now)
    _changed(session, person.community_id, person.id)
    session.flush()
    total = (
        session.scalar(
            select(func.count(FaceTemplate.id)).where(FaceTemplate.person_id == person.id)
        )
        or 0
    )
    audit(
        session=session,
        actor=actor,
        action="face_enrol",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
        photos=len(photos),
        masked_photos=len(masked_photos),
        templates=len(kinds),
    )
    return EnrolResult(person.id, total, len(kinds), given.id)


@contextmanager
def _pipeline_for(given: FacePipeline | None) -> Iterator[FacePipeline]:
    if given is not None:
        yield given
        return
    with pipeline() as found:
        yield found


def _merged(existing: Templates | None, new: Templates) -> Templates:
    if existing is None:
        return new
    return Templates(
        np.concatenate([existing.descriptors, new.descriptors]),
        np.concatenate([existing.kinds, new.kinds]),
    )


def _store_thumbnail(session: Session, person: Person, jpeg: bytes, now: dt.datetime) -> None:
    sealed = get_cipher().encrypt_bytes(
        jpeg, context=_thumbnail_context(person.community_id, person.id)
    )
    row = session.get(FaceThumbnail, person.id)
    if row is None:
        session.add(
            FaceThumbnail(
                person_id=person.id, community_id=person.community_id, sealed=sealed, created_at=now
            )
        )
    else:
        row.sealed, row.created_at = sealed, now


def _mark_enrolled(session: Session, person_id: int, when: dt.datetime | None) -> None:
    # A Core update: the person's row version is not moved (an edit form open elsewhere
    # stays valid), its update time is, so the completeness figures see the change.
    session.execute(
        update(Person)
        .where(Person.id == person_id)
        .values(face_enrolled_at=when, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    found = session.identity_map.get(session.identity_key(Person, person_id))
    if isinstance(found, Person):
        session.expire(found, ["face_enrolled_at", "updated_at"])


# --- deletion -----------------------------------------------------------------------------


def _erase(session: Session, community_id: int, person_id: int) -> tuple[int, int]:
    """Delete a person's templates and thumbnail now; (templates, thumbnails) deleted."""
    templates = getattr(
        session.execute(delete(FaceTemplate).where(FaceTemplate.person_id == person_id)),
        "rowcount",
        0,
    )
    thumbnails = getattr(
        session.execute(delete(FaceThumbnail).where(FaceThumbnail.person_id == person_id)),
        "rowcount",
        0,
    )
    if templates or thumbnails:
        _mark_enrolled(session, person_id, None)
        _changed(session, community_id, person_id)
    return int(templates or 0), int(thumbnails or 0)


def delete_faces(session: Session, actor: Actor, person_id: int) -> int:
    """Delete a person's face on request (consent stays on record); templates deleted."""
    require(actor, Permission.faces_manage)
    begin_write(session)
    person = _person_in_scope(session, actor, person_id)
    templates, thumbnails = _erase(session, person.community_id, person.id)
    if not templates and not thumbnails:
        raise FaceRefused("nothing_on_file", refusal_message("nothing_on_file"), field=None)
    audit(
        session=session,
        actor=actor,
        action="face_delete",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
        templates=templates,
    )
    return templates


def withdraw_consent(session: Session, actor: Actor, person_id: int) -> int:
    """The resident withdraws consent: their templates and thumbnail are deleted at once, and
    the consent record keeps when and who recorded it. Returns the templates deleted."""
    require(actor, Permission.faces_manage)
    begin_write(session)
    person = _person_in_scope(session, actor, person_id)
    consent = active_consent(session, person.id)
    if consent is None:
        raise FaceRefused("no_active_consent", refusal_message("no_active_consent"), field=None)
    consent.withdrawn_at = utcnow()
    consent.withdrawn_recorded_by = actor.display_name[:64]
    templates, _thumbnails = _erase(session, person.community_id, person.id)
    audit(
        session=session,
        actor=actor,
        action="face_consent_withdraw",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
        templates=templates,
    )
    return templates


MOVED_OUT_NOTE = "moved_out"


def forget_person(session: Session, person_id: int, *, note: str = MOVED_OUT_NOTE) -> int:
    """A person who moved out loses their face on file at once: templates and thumbnail
    deleted, the active consent closed with ``note``. The registry's edit path calls it
    when a residence status becomes moved out; ``purge_faces`` catches other paths."""
    community_id = session.scalar(select(Person.community_id).where(Person.id == person_id))
    if community_id is None:
        return 0
    templates, _thumbnails = _erase(session, community_id, person_id)
    consent = active_consent(session, person_id)
    if consent is not None:
        consent.withdrawn_at = utcnow()
        consent.withdrawn_recorded_by = "system"
        consent.note = note
    return templates


def purge_faces(session: Session, *, now: dt.datetime, dry_run: bool) -> dict[str, int]:
    """Retention: the faces of people who moved out (however they came to), thumbnails left
    without templates, and change log rows older than a day. Counts of what is (or, with
    ``dry_run``, would be) deleted."""
    if not dry_run:
        begin_write(session)
    moved = select(Person.id).where(Person.residence_status == ResidenceStatus.moved_out)
    people = session.scalars(
        select(FaceTemplate.person_id).where(FaceTemplate.person_id.in_(moved)).distinct()
    ).all()
    people_thumbs = session.scalars(
        select(FaceThumbnail.person_id).where(FaceThumbnail.person_id.in_(moved))
    ).all()
    orphans = session.scalars(
        select(FaceThumbnail.person_id).where(
            FaceThumbnail.person_id.not_in(select(FaceTemplate.person_id).distinct()),
            FaceThumbnail.person_id.not_in(moved),
        )
    ).all()
    old_changes = (
        session.scalar(
            select(func.count(FaceGalleryChange.id)).where(
                FaceGalleryChange.created_at < now - CHANGE_LOG_KEEP
            )
        )
        or 0
    )
    templates = (
        session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.person_id.in_(moved)))
        or 0
    )
    counts = {
        "face_people": len(set(people) | set(people_thumbs)),
        "face_templates": int(templates),
        "face_thumbnails": len(people_thumbs) + len(orphans),
        "face_changes": int(old_changes),
    }
    if dry_run:
        return counts
    for person_id in sorted(set(people) | set(people_thumbs)):
        forget_person(session, person_id)
    if orphans:
        session.execute(delete(FaceThumbnail).where(FaceThumbnail.person_id.in_(orphans)))
    session.execute(
        delete(FaceGalleryChange).where(FaceGalleryChange.created_at < now - CHANGE_LOG_KEEP)
    )
    return counts


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FacesOnFile:
    """What the enrolment page shows of one person."""

    person: Person
    templates: dict[str, int]
    consent: FaceConsent | None
    consents: list[FaceConsent]
    has_thumbnail: bool


def faces_of(session: Session, actor: Actor, person_id: int) -> FacesOnFile:
    require(actor, Permission.faces_manage)
    person = _person_in_scope(session, actor, person_id)
    counts = dict(
        session.execute(
            select(FaceTemplate.kind, func.count(FaceTemplate.id))
            .where(FaceTemplate.person_id == person.id)
            .group_by(FaceTemplate.kind)
        ).all()
    )
    consents = list(
        session.scalars(
            select(FaceConsent).where(FaceConsent.person_id == person.id).order_by(FaceConsent.id)
        )
    )
    active = next((c for c in reversed(consents) if c.withdrawn_at is None), None)
    has_thumbnail = session.get(FaceThumbnail, person.id) is not None
    return FacesOnFile(
        person, {str(k): int(v) for k, v in counts.items()}, active, consents, has_thumbnail
    )


def thumbnail_bytes(session: Session, *, community_id: int, person_id: int) -> bytes | None:
    """The face thumbnail in clear (JPEG), for callers that have checked the reader's role
    and audit the view themselves (the gate console's person card)."""
    row = session.scalar(
        select(FaceThumbnail).where(
            FaceThumbnail.person_id == person_id, FaceThumbnail.community_id == community_id
        )
    )
    if row is None:
        return None
    return get_cipher().decrypt_bytes(
        row.sealed, context=_thumbnail_context(community_id, person_id)
    )


def view_thumbnail(session: Session, actor: Actor, person_id: int) -> bytes:
    """The thumbnail for a page, to roles that manage faces, within their scope; audited."""
    require(actor, Permission.faces_manage)
    person = _person_in_scope(session, actor, person_id)
    found = thumbnail_bytes(session, community_id=person.community_id, person_id=person.id)
    if found is None:
        raise NotFound(f"face thumbnail of person {person_id}")
    audit(
        session=session,
        actor=actor,
        action="face_thumbnail_view",
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
    )
    return found


@dataclass(frozen=True)
class Compliance:
    """The figures of faces on file across this server (合规统计)."""

    people_on_file: int
    consents_active: int
    consents_withdrawn: int
    moved_out_removed: int
    threshold: int
    warn_at: int

    @property
    def warning(self) -> bool:
        return self.people_on_file >= self.warn_at

    @property
    def over(self) -> bool:
        return self.people_on_file >= self.threshold


def compliance(session: Session) -> Compliance:
    on_file = session.scalar(select(func.count(func.distinct(FaceTemplate.person_id)))) or 0
    active = (
        session.scalar(select(func.count(FaceConsent.id)).where(FaceConsent.withdrawn_at.is_(None)))
        or 0
    )
    withdrawn = (
        session.scalar(
            select(func.count(FaceConsent.id)).where(
                FaceConsent.withdrawn_at.is_not(None), FaceConsent.note.is_(None)
            )
        )
        or 0
    )
    moved = (
        session.scalar(select(func.count(FaceConsent.id)).where(FaceConsent.note == MOVED_OUT_NOTE))
        or 0
    )
    return Compliance(
        int(on_file),
        int(active),
        int(withdrawn),
        int(moved),
        FILING_THRESHOLD,
        int(FILING_THRESHOLD * WARN_FRACTION),
    )


# --- the gate -----------------------------------------------------------------------------


def decisive_face(boxes: Sequence[FaceBox], width: int, height: int) -> int:
    """Which of several faces decides: the largest, discounted by its distance from the
    frame's centre (the person at the gate stands in front of the camera; someone in the
    queue behind is smaller, someone passing by is at the edge)."""
    best, best_score = 0, -1.0
    diagonal = float(np.hypot(width, height)) / 2 or 1.0
    for index, box in enumerate(boxes):
        cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        off = float(np.hypot(cx - width / 2, cy - height / 2)) / diagonal
        score = box.area * (1.0 - 0.5 * min(off, 1.0))
        if score > best_score:
            best, best_score = index, score
    return best


def identify_for_gate(session: Session, *, community_id: int, frame: bytes) -> FaceOutcome:
    """Who is in a gate frame: decoded safely, the largest centred face searched in the
    community's gallery (caught up with the change log first), the match confirmed on
    file. Never raises for a bad frame: the reason says what it was.

    Only reads: call it before ``db.begin_write`` — the pipeline takes 100-300 ms of CPU,
    and on SQLite the write lock would be held (every other gate waiting) meanwhile."""
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round((now - since) * 1000, 3)
        return now

    try:
        image = decode_image(frame)
    except ImageError:
        lap("decode_ms", start)
        timings["total_ms"] = timings["decode_ms"]
        return FaceOutcome(None, None, False, "bad_image", 0, timings)
    mark = lap("decode_ms", start)
    gallery = community_gallery(session, community_id)
    mark = lap("sync_ms", mark)
    with pipeline() as used:
        steps = Timings()
        detect_start = time.perf_counter()
        boxes = detect_coarse_first(used.detector, image)
        steps.detect_ms = (time.perf_counter() - detect_start) * 1000
        face: Face | None = None
        if boxes:
            box = boxes[decisive_face(boxes, image.shape[1], image.shape[0])]
            face = _describe(used, image, box, steps)
        mark = time.perf_counter()
        match = used.identify(face, gallery, steps) if face is not None else None
        search_end = time.perf_counter()
    timings.update(
        detect_ms=round(steps.detect_ms, 3),
        align_ms=round(steps.align_ms, 3),
        encode_ms=round(steps.encode_ms, 3),
    )
    timings["search_ms"] = round((search_end - mark) * 1000, 3)
    if match is None:
        timings["total_ms"] = round((time.perf_counter() - start) * 1000, 3)
        return FaceOutcome(None, None, False, "no_face", len(boxes), timings)
    distance = float(match.distance) if np.isfinite(match.distance) else None
    person_id = match.person_id
    check_start = time.perf_counter()
    if person_id is not None:
        # Withdrawn or moved out since this process last polled: not recognised.
        still = session.scalar(
            select(FaceTemplate.id)
            .where(FaceTemplate.person_id == person_id, FaceTemplate.community_id == community_id)
            .limit(1)
        )
        if still is None:
            person_id = None
    lap("check_ms", check_start)
    timings["total_ms"] = round((time.perf_counter() - start) * 1000, 3)
    if person_id is None:
        return FaceOutcome(None, distance, False, "unknown_face", len(boxes), timings)
    return FaceOutcome(person_id, distance, bool(match.masked), None, len(boxes), timings)


def _describe(used: FacePipeline, image: RGBImage, box: FaceBox, steps: Timings) -> Face:
    start = time.perf_counter()
    aligned = used.encoder.align(image, box)
    middle = time.perf_counter()
    descriptor = used.encoder.encode(aligned.chip)
    steps.align_ms += (middle - start) * 1000
    steps.encode_ms += (time.perf_counter() - middle) * 1000
    return Face(box, aligned.landmarks, descriptor, aligned)
