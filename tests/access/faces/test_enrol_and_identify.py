"""Faces on file with the real face reader: enrolment and its refusals, consent and its
withdrawal (also while a search runs), moving out, retention, and the gate's face step."""

from __future__ import annotations

import io
import threading

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import faces
from fengchao.access.face_models import (
    ConsentMethod,
    FaceConsent,
    FaceGalleryChange,
    FaceTemplate,
    FaceThumbnail,
    TemplateKind,
)
from fengchao.auth.models import AuditEvent, Role, ScopeLevel
from fengchao.auth.service import Forbidden, GridScope, NotFound
from fengchao.db import flush_rows_at_commit
from fengchao.registry import edits
from fengchao.registry.models import Person, ResidenceStatus
from tests.access.faces.conftest import photo_bytes
from tests.conftest import Grid, Persona, make_persona

pytestmark = pytest.mark.vision

CONSENT = faces.ConsentGiven("林国平", ConsentMethod.signed_form)


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture
def clerk(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "物业前台", Role.property_staff, GridScope(ScopeLevel.community, grid.community.id)
    )


def enrolled(session: Session, clerk: Persona, person: Person, *files: str) -> faces.EnrolResult:
    return faces.enrol(
        session, clerk.actor, person.id, [photo_bytes("faces", f) for f in files], consent=CONSENT
    )


def refusal_code(session: Session, clerk: Persona, person: Person, data: bytes) -> str:
    with pytest.raises(faces.FaceRefused) as caught:
        faces.enrol(session, clerk.actor, person.id, [data], consent=CONSENT)
    assert caught.value.message and caught.value.status == 422
    return caught.value.code


# -- enrolment ---------------------------------------------------------------------------


def test_enrolment_keeps_descriptors_a_sealed_thumbnail_and_consent_never_the_upload(
    session: Session, grid: Grid, clerk: Persona
) -> None:
    upload = photo_bytes("faces", "angelina_jolie_01.jpg")
    result = faces.enrol(session, clerk.actor, grid.resident5.id, [upload], consent=CONSENT)
    assert result.templates == 4 and result.added == 4
    rows = session.scalars(
        select(FaceTemplate).where(FaceTemplate.person_id == grid.resident5.id)
    ).all()
    assert sorted(r.kind for r in rows) == sorted(
        [TemplateKind.photo] + [TemplateKind.synthetic_mask] * 3
    )
    assert {len(r.descriptor) for r in rows} == {512} and {r.model for r in rows} == {faces.MODEL}
    thumbnail = session.get(FaceThumbnail, grid.resident5.id)
    assert thumbnail is not None and b"\xff\xd8" not in thumbnail.sealed[:8]
    assert upload not in thumbnail.sealed
    clear = faces.thumbnail_bytes(
        session, community_id=grid.community.id, person_id=grid.resident5.id
    )
    assert clear is not None and clear.startswith(b"\xff\xd8")
    assert max(Image.open(io.BytesIO(clear)).size) <= faces.THUMBNAIL_SIDE
    # Bound to its row: copied to another person it does not open.
    with pytest.raises(Exception):  # noqa: B017 (InvalidTag)
        faces.get_cipher().decrypt_bytes(
            thumbnail.sealed, context=faces._thumbnail_context(grid.community.id, 999)
        )
    session.refresh(grid.resident5)
    assert grid.resident5.face_enrolled_at is not None
    consent = session.scalars(select(FaceConsent)).one()
    assert consent.consented_by == "林国平" and consent.recorded_by == "物业前台"
    assert consent.withdrawn_at is None and consent.method == ConsentMethod.signed_form
    flush_rows_at_commit(session)
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"face_enrol", "face_consent"} <= actions


def test_no_enrolment_without_consent(session: Session, grid: Grid, clerk: Persona) -> None:
    with pytest.raises(faces.FaceRefused) as caught:
        faces.enrol(
            session, clerk.actor, grid.resident5.id, [photo_bytes("faces", "angelina_jolie_01.jpg")]
        )
    assert caught.value.code == "no_consent"
    assert session.scalar(select(FaceTemplate.id)) is None


def test_roles_and_scope(session: Session, grid: Grid, guard: Persona, lead5: Persona) -> None:
    upload = photo_bytes("faces", "angelina_jolie_01.jpg")
    with pytest.raises(Forbidden):
        faces.enrol(session, guard.actor, grid.resident5.id, [upload], consent=CONSENT)
    with pytest.raises(Forbidden):
        faces.enrol(session, lead5.actor, grid.resident5.id, [upload], consent=CONSENT)
    other = make_persona(
        session, "新村物业", Role.property_staff, GridScope(ScopeLevel.compound, grid.other.id)
    )
    with pytest.raises(NotFound):
        faces.enrol(session, other.actor, grid.resident5.id, [upload], consent=CONSENT)


def test_bad_photos_are_refused_in_words(session: Session, grid: Grid, clerk: Persona) -> None:
    person = grid.resident5
    assert refusal_code(session, clerk, person, photo_bytes("faces_group", "group_02.jpg")) == (
        "several_faces"
    )
    rng = np.random.default_rng(3)
    wall = np.clip(rng.normal(150, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
    assert refusal_code(session, clerk, person, jpeg(wall)) == "no_face"
    tiny = np.full((480, 640, 3), 180, dtype=np.uint8)
    tiny[:128, :128] = np.ascontiguousarray(skdata.astronaut()[::4, ::4])
    assert refusal_code(session, clerk, person, jpeg(tiny)) in {"too_small", "no_face"}
    blurred = cv2.GaussianBlur(skdata.astronaut(), (0, 0), 6)
    assert refusal_code(session, clerk, person, jpeg(blurred)) in {"blurry", "no_face"}
    assert refusal_code(session, clerk, person, b"GIF89a not really") == "not_an_image"
    assert refusal_code(session, clerk, person, b"\xff\xd8" + b"\0" * (16 * 1024 * 1024)) == (
        "too_large"
    )
    assert refusal_code(session, clerk, person, b"") == "empty"
    assert session.scalar(select(FaceTemplate.id)) is None
    assert session.get(FaceThumbnail, person.id) is None


def test_one_bad_photo_of_several_stores_nothing_and_names_it(
    session: Session, grid: Grid, clerk: Persona
) -> None:
    good = photo_bytes("faces", "angelina_jolie_01.jpg")
    with pytest.raises(faces.FaceRefused) as caught:
        faces.enrol(
            session, clerk.actor, grid.resident5.id, [good, b"not an image"], consent=CONSENT
        )
    assert caught.value.code == "not_an_image" and "2" in caught.value.message
    assert session.scalar(select(FaceTemplate.id)) is None


def test_a_photo_of_someone_else_is_caught_at_the_desk(
    session: Session, grid: Grid, clerk: Persona
) -> None:
    enrolled(session, clerk, grid.resident5, "angelina_jolie_01.jpg")
    with pytest.raises(faces.FaceRefused) as caught:
        enrolled(session, clerk, grid.resident5, "ariel_sharon_01.jpg")
    assert caught.value.code == "not_same_person"
    again = enrolled(session, clerk, grid.resident5, "angelina_jolie_02.jpg")
    assert again.templates == 8


def test_refusals_are_translated_by_code() -> None:
    from fengchao.web.i18n import current_language

    token = current_language.set("en")
    try:
        message = faces.refusal_message("blurry")
    finally:
        current_language.reset(token)
    assert message.isascii() and "blur" in message.lower()


# -- the gate ------------------------------------------------------------------------------


@pytest.fixture
def on_file(session: Session, grid: Grid, clerk: Persona) -> dict[str, int]:
    """Two residents enrolled: 林国平 as angelina_jolie, 陈美玲 as ariel_sharon."""
    enrolled(session, clerk, grid.resident5, "angelina_jolie_01.jpg")
    faces.enrol(
        session,
        clerk.actor,
        grid.resident6.id,
        [photo_bytes("faces", "ariel_sharon_01.jpg")],
        consent=faces.ConsentGiven("陈美玲"),
    )
    return {"angelina": grid.resident5.id, "ariel": grid.resident6.id}


def test_identify_for_gate_recognises_residents_and_refuses_strangers(
    session: Session, grid: Grid, on_file: dict[str, int]
) -> None:
    community = grid.community.id
    seen = faces.identify_for_gate(
        session, community_id=community, frame=photo_bytes("faces", "angelina_jolie_02.jpg")
    )
    assert seen.person_id == on_file["angelina"] and seen.reason is None
    assert seen.distance is not None and seen.distance < 0.51 and seen.faces_in_frame == 1
    assert {"decode_ms", "sync_ms", "detect_ms", "encode_ms", "search_ms", "total_ms"} <= set(
        seen.timings
    )
    other = faces.identify_for_gate(
        session, community_id=community, frame=photo_bytes("faces", "ariel_sharon_02.jpg")
    )
    assert other.person_id == on_file["ariel"]
    stranger = faces.identify_for_gate(
        session, community_id=community, frame=photo_bytes("faces", "arnold_schwarzenegger_01.jpg")
    )
    assert stranger.person_id is None and stranger.reason == "unknown_face"
    # Another community's gallery does not hold them.
    elsewhere = faces.identify_for_gate(
        session, community_id=community + 1000, frame=photo_bytes("faces", "angelina_jolie_02.jpg")
    )
    assert elsewhere.person_id is None and elsewhere.reason == "unknown_face"


def test_identify_for_gate_bad_frames(
    session: Session, grid: Grid, on_file: dict[str, int]
) -> None:
    community = grid.community.id
    for frame in (b"", b"not an image", photo_bytes("faces", "angelina_jolie_02.jpg")[:3000]):
        outcome = faces.identify_for_gate(session, community_id=community, frame=frame)
        assert outcome.reason == "bad_image" and outcome.person_id is None
    huge = faces.identify_for_gate(
        session, community_id=community, frame=b"\xff\xd8" + b"\0" * (16 * 1024 * 1024)
    )
    assert huge.reason == "bad_image"
    rng = np.random.default_rng(5)
    wall = np.clip(rng.normal(120, 15, (480, 640, 3)), 0, 255).astype(np.uint8)
    empty = faces.identify_for_gate(session, community_id=community, frame=jpeg(wall))
    assert empty.reason == "no_face" and empty.faces_in_frame == 0


def test_the_largest_centred_face_decides(
    session: Session, grid: Grid, on_file: dict[str, int]
) -> None:
    person = np.asarray(Image.open(io.BytesIO(photo_bytes("faces", "angelina_jolie_02.jpg"))))
    bystander = np.asarray(Image.open(io.BytesIO(photo_bytes("faces", "ariel_sharon_02.jpg"))))
    frame = np.full((720, 1280, 3), 200, dtype=np.uint8)
    big = cv2.resize(person, (person.shape[1] * 600 // person.shape[0], 600))
    small = cv2.resize(bystander, (bystander.shape[1] * 300 // bystander.shape[0], 300))
    left = (1280 - big.shape[1]) // 2
    frame[60 : 60 + big.shape[0], left : left + big.shape[1]] = big
    frame[400:700, 1280 - small.shape[1] - 10 : 1270] = small
    outcome = faces.identify_for_gate(session, community_id=grid.community.id, frame=jpeg(frame))
    assert outcome.faces_in_frame >= 2
    assert outcome.person_id == on_file["angelina"]


def test_a_masked_resident_is_placed_only_as_themselves(
    session: Session, grid: Grid, clerk: Persona
) -> None:
    faces.enrol(
        session,
        clerk.actor,
        grid.resident5.id,
        [photo_bytes("faces_masked", "adrian_dunbar_02.jpg")],
        consent=CONSENT,
    )
    for probe in ("adrian_dunbar_01.jpg", "adrian_dunbar_03.jpg"):
        outcome = faces.identify_for_gate(
            session, community_id=grid.community.id, frame=photo_bytes("faces_masked", probe)
        )
        assert outcome.person_id in {grid.resident5.id, None}
        if outcome.person_id is not None:
            assert outcome.masked


# -- consent withdrawn, moved out, retention -----------------------------------------------


def test_withdrawing_consent_deletes_the_face_at_once(
    session: Session, grid: Grid, clerk: Persona, on_file: dict[str, int]
) -> None:
    community = grid.community.id
    probe = photo_bytes("faces", "angelina_jolie_02.jpg")
    assert faces.identify_for_gate(session, community_id=community, frame=probe).person_id
    deleted = faces.withdraw_consent(session, clerk.actor, on_file["angelina"])
    assert deleted == 4
    assert (
        session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == on_file["angelina"]))
        is None
    )
    assert session.get(FaceThumbnail, on_file["angelina"]) is None
    session.refresh(grid.resident5)
    assert grid.resident5.face_enrolled_at is None
    consent = session.scalars(
        select(FaceConsent).where(FaceConsent.person_id == on_file["angelina"])
    ).one()
    assert consent.withdrawn_at is not None and consent.withdrawn_recorded_by == "物业前台"
    after = faces.identify_for_gate(session, community_id=community, frame=probe)
    assert after.person_id is None and after.reason == "unknown_face"
    # Without consent on record, no enrolment until consent is given again.
    with pytest.raises(faces.FaceRefused):
        faces.enrol(session, clerk.actor, on_file["angelina"], [probe])


def test_withdrawal_while_a_search_is_running(
    session: Session, grid: Grid, clerk: Persona, on_file: dict[str, int]
) -> None:
    """Searches keep running on a consistent gallery while the person is removed; the next
    search after the withdrawal no longer finds them."""
    community = grid.community.id
    gallery = faces.community_gallery(session, community)
    with faces.pipeline() as used:
        face = used.largest_face(
            np.asarray(Image.open(io.BytesIO(photo_bytes("faces", "angelina_jolie_02.jpg"))))
        )
    assert face is not None
    answers: list[int | None] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                answers.append(gallery.search(face.descriptor).person_id)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    try:
        faces.withdraw_consent(session, clerk.actor, on_file["angelina"])
        current = faces.community_gallery(session, community)
    finally:
        stop.set()
        thread.join(10)
    assert not errors and answers
    assert set(answers) <= {on_file["angelina"], None}
    assert current.search(face.descriptor).person_id is None


def test_moving_out_removes_the_face(
    session: Session, grid: Grid, worker: Persona, on_file: dict[str, int]
) -> None:
    edits.move_out(session=session, actor=worker.actor, person_id=on_file["angelina"], version=None)
    session.flush()
    assert (
        session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == on_file["angelina"]))
        is None
    )
    assert session.get(FaceThumbnail, on_file["angelina"]) is None
    consent = session.scalars(
        select(FaceConsent).where(FaceConsent.person_id == on_file["angelina"])
    ).one()
    assert consent.note == faces.MOVED_OUT_NOTE
    outcome = faces.identify_for_gate(
        session, community_id=grid.community.id, frame=photo_bytes("faces", "angelina_jolie_02.jpg")
    )
    assert outcome.person_id is None
    assert faces.compliance(session).moved_out_removed == 1


def test_purge_removes_faces_of_people_moved_out_by_other_paths(
    session: Session, grid: Grid, on_file: dict[str, int]
) -> None:
    import datetime as dt

    # An import marks them moved out without the edit path's hook.
    person = session.get(Person, on_file["ariel"])
    assert person is not None
    person.residence_status = ResidenceStatus.moved_out
    session.flush()
    now = dt.datetime.now(dt.UTC)
    planned = faces.purge_faces(session, now=now, dry_run=True)
    assert planned["face_people"] == 1 and planned["face_templates"] == 4
    assert planned["face_thumbnails"] == 1
    assert session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == person.id))
    done = faces.purge_faces(session, now=now + dt.timedelta(days=2), dry_run=False)
    assert done["face_templates"] == 4 and done["face_changes"] >= 1
    assert (
        session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == person.id)) is None
    )
    assert session.scalar(
        select(FaceTemplate.id).where(FaceTemplate.person_id == on_file["angelina"])
    )
    assert faces.purge_faces(session, now=now, dry_run=True)["face_people"] == 0


def test_compliance_figures(
    session: Session, grid: Grid, clerk: Persona, on_file: dict[str, int]
) -> None:
    faces.withdraw_consent(session, clerk.actor, on_file["ariel"])
    figures = faces.compliance(session)
    assert figures.people_on_file == 1
    assert figures.consents_active == 1 and figures.consents_withdrawn == 1
    assert not figures.warning and figures.threshold == 100_000


# -- the galleries ---------------------------------------------------------------------------


def test_a_change_from_another_process_is_seen_after_the_poll_interval(
    session: Session,
    grid: Grid,
    clerk: Persona,
    on_file: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process's enrolment reaches this one through the change log only."""
    community = grid.community.id
    gallery = faces.community_gallery(session, community)
    people_before = gallery.people
    # What another process writes: templates and a change row (this process not told).
    rows = session.scalars(
        select(FaceTemplate).where(FaceTemplate.person_id == on_file["angelina"])
    ).all()
    stranger = session.get(Person, on_file["ariel"])
    assert stranger is not None
    newcomer = Person(community_id=community, household_id=grid.h5_101.id, name="新住户")
    session.add(newcomer)
    session.flush()
    for row in rows:
        session.add(
            FaceTemplate(
                person_id=newcomer.id,
                community_id=community,
                descriptor=bytes(row.descriptor),
                kind=row.kind,
                gallery_kind=row.gallery_kind,
                model=row.model,
            )
        )
    session.add(FaceGalleryChange(community_id=community, person_id=newcomer.id))
    session.flush()
    clock = [1000.0]
    monkeypatch.setattr(faces.time, "monotonic", lambda: clock[0])
    state = faces._GALLERIES[faces._key(session, community)]
    state.polled_at = clock[0]
    clock[0] += 0.5
    assert faces.community_gallery(session, community).people == people_before  # not yet
    clock[0] += 0.6
    assert faces.community_gallery(session, community).people == people_before + 1
    # Applied once: polling again changes nothing.
    clock[0] += 1.1
    assert faces.community_gallery(session, community).people == people_before + 1


def test_a_large_gallery_takes_changes_in_the_background(
    session: Session,
    grid: Grid,
    clerk: Persona,
    on_file: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild of a large gallery (about a second at 100,000 people) never holds up a
    search: it runs in the background, and a withdrawn face is refused meanwhile."""
    monkeypatch.setattr(faces, "APPLY_INLINE_BELOW", 0)
    community = grid.community.id
    assert faces.community_gallery(session, community).people == 2
    faces.withdraw_consent(session, clerk.actor, on_file["ariel"])
    outcome = faces.identify_for_gate(
        session, community_id=community, frame=photo_bytes("faces", "ariel_sharon_02.jpg")
    )
    assert outcome.person_id is None
    faces.wait_for_galleries()
    assert faces.community_gallery(session, community).people == 1


def test_an_import_that_moves_a_resident_out_removes_the_face(
    session: Session, grid: Grid, on_file: dict[str, int]
) -> None:
    from tests.registry.test_import import HEADER, run, xlsx

    row = ["林国平", "", "11010519491231002X", "", "华润中央公园", "5", "1", "101", "", "迁出"]
    report = run(session, grid, xlsx([row], header=[*HEADER, "居住状态"]), dry_run=False)
    assert report.written
    assert (
        session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == on_file["angelina"]))
        is None
    )
    assert session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == on_file["ariel"]))


def test_galleries_are_built_at_start(
    session: Session, grid: Grid, on_file: dict[str, int]
) -> None:
    from contextlib import nullcontext

    built = faces.warm_galleries(lambda: nullcontext(session))  # type: ignore[arg-type,return-value]
    assert built == 1
    state = faces._GALLERIES[faces._key(session, grid.community.id)]
    assert state.gallery.people == 2
