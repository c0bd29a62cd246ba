"""Face enrolment and recognition: the pipeline, its refusals, the gallery, the evaluation."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata
from typer.testing import CliRunner

from fengchao.cli import app
from fengchao.vision.face_pipeline import EnrolmentRefused, FacePipeline, QualityPolicy, pose
from fengchao.vision.faces import face_detector_class, face_encoder_class
from fengchao.vision.gallery import PHOTO, FaceGallery, MaskedRule
from fengchao.vision.images import decode_image
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def pipeline() -> Iterator[FacePipeline]:
    yield FacePipeline(face_detector_class("hog+mtcnn")(), face_encoder_class("dlib")())


def photo(*parts: str) -> np.ndarray:
    return decode_image(shared_data(*parts).read_bytes())


def refusal(pipeline: FacePipeline, image: np.ndarray) -> str:
    with pytest.raises(EnrolmentRefused) as caught:
        pipeline.enrol(image)
    assert caught.value.message
    return caught.value.code


# -- enrolment -------------------------------------------------------------------------


def test_enrolment_of_a_real_face_stores_it_and_masked_variants(pipeline: FacePipeline) -> None:
    enrolment = pipeline.enrol(skdata.astronaut())
    descriptors, kinds = enrolment.templates
    assert descriptors.shape == (4, 128) and descriptors.dtype == np.float32
    assert kinds.tolist() == [PHOTO, 1, 2, 3]
    assert enrolment.masked_variants == 3
    yaw, roll = pose(enrolment.face.landmarks)
    assert abs(yaw) < 0.2 and abs(roll) < 10
    # The masked variants are the same person, a little away from the bare face.
    spread = np.linalg.norm(descriptors[1:] - descriptors[0], axis=1)
    assert (spread > 0.05).all() and (spread < 0.6).all()


def test_no_face(pipeline: FacePipeline) -> None:
    rng = np.random.default_rng(3)
    wall = np.clip(rng.normal(150, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
    assert refusal(pipeline, wall) == "no_face"


def test_two_faces_unless_the_largest_is_asked_for(pipeline: FacePipeline) -> None:
    import cv2

    face = skdata.astronaut()[:300, 100:350]
    smaller = cv2.resize(face, (200, 240))
    both = np.full((320, 520, 3), 200, dtype=np.uint8)
    both[:300, :250] = face
    both[40:280, 300:500] = smaller
    assert refusal(pipeline, both) == "several_faces"
    enrolment = pipeline.enrol(both, QualityPolicy(largest_face=True))
    assert enrolment.face.box.left < 250


def test_tiny_face(pipeline: FacePipeline) -> None:
    tiny = np.ascontiguousarray(skdata.astronaut()[::4, ::4])  # face about 30 px wide
    frame = np.full((480, 640, 3), 180, dtype=np.uint8)
    frame[:128, :128] = tiny
    assert refusal(pipeline, frame) in {"too_small", "no_face"}


def test_very_dark_photo(pipeline: FacePipeline) -> None:
    dark = (skdata.astronaut().astype(np.float32) * 0.08).astype(np.uint8)
    assert refusal(pipeline, dark) == "too_dark"


def test_blurry_photo(pipeline: FacePipeline) -> None:
    import cv2

    blurred = cv2.GaussianBlur(skdata.astronaut(), (0, 0), 6)
    assert refusal(pipeline, blurred) in {"blurry", "no_face"}


def test_grayscale_photo_is_enrolled(pipeline: FacePipeline) -> None:
    gray = skdata.astronaut().mean(axis=2).astype(np.uint8)
    assert (
        pipeline.enrol(gray, QualityPolicy(largest_face=True)).templates.descriptors.shape[1] == 128
    )


# -- recognition on real photos ----------------------------------------------------------


def test_same_person_is_near_and_others_far(pipeline: FacePipeline) -> None:
    first = pipeline.largest_face(photo("faces", "angelina_jolie_01.jpg"))
    again = pipeline.largest_face(photo("faces", "angelina_jolie_02.jpg"))
    other = pipeline.largest_face(photo("faces", "ariel_sharon_01.jpg"))
    assert first and again and other
    assert np.linalg.norm(first.descriptor - again.descriptor) < 0.5
    assert np.linalg.norm(first.descriptor - other.descriptor) > 0.6


def test_group_photo_finds_every_face(pipeline: FacePipeline) -> None:
    image = photo("faces_group", "group_02.jpg")
    faces = pipeline.faces(image)
    assert len(faces) == 3
    areas = [f.box.area for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_masked_residents_recognised_and_masked_strangers_refused(
    pipeline: FacePipeline,
) -> None:
    folder = shared_data("faces_masked")
    rows = [line.split(",") for line in (folder / "labels.csv").read_text().splitlines()[1:]]
    people = sorted({r[1] for r in rows})[:10]
    enrolled, stranger = people[:-1], people[-1]
    plain = FaceGallery(threshold=0.45, margin=0.04)
    with_masks = FaceGallery(threshold=0.45, margin=0.04)
    for n, person in enumerate(enrolled):
        for file, who, masked in rows:
            if who == person and masked == "0":
                face = pipeline.largest_face(photo("faces_masked", file))
                if face:
                    plain.add(n, *pipeline.templates(face, masks=False))
                    with_masks.add(n, *pipeline.templates(face, masks=True))
    outcomes = {"plain": [0, 0], "masks": [0, 0]}
    for file, who, masked in rows:
        if who not in people or masked != "1":
            continue
        face = pipeline.largest_face(photo("faces_masked", file))
        if face is None:
            continue
        for name, gallery in (("plain", plain), ("masks", with_masks)):
            match = pipeline.identify(face, gallery)
            if who == stranger:
                assert match.person_id is None, f"{file}: a stranger let in as {match}"
            elif match.person_id is not None:
                outcomes[name][match.person_id == people.index(who)] += 1
                assert match.masked <= (name == "masks")  # only masked templates place a mask
    right_plain, right_masks = outcomes["plain"][1], outcomes["masks"][1]
    assert right_masks >= right_plain + 5
    assert outcomes["masks"][0] == 0, "a masked resident taken for someone else"


# -- gallery ---------------------------------------------------------------------------


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_search_on_an_empty_gallery() -> None:
    match = FaceGallery().search(unit(1))
    assert match.person_id is None and match.refusal == "empty"


def test_descriptor_of_the_wrong_length() -> None:
    gallery = FaceGallery()
    with pytest.raises(ValueError, match="128 values"):
        gallery.add(1, np.zeros(127, dtype=np.float32))
    with pytest.raises(ValueError, match="128 values"):
        gallery.search(np.zeros(129, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        gallery.add(1, np.full(128, np.nan, dtype=np.float32))
    assert len(gallery) == 0


def test_add_replace_remove_and_search() -> None:
    gallery = FaceGallery(threshold=0.5, margin=0.04)
    gallery.add(7, np.stack([unit(7), unit(70)]))
    gallery.add(8, unit(8))
    assert len(gallery) == 3 and gallery.people == 2
    match = gallery.search(unit(7) + 0.01)
    assert match.person_id == 7 and match.distance < 0.2 and match.second_distance is not None
    gallery.replace(7, unit(77))
    assert len(gallery) == 2
    assert gallery.search(unit(7)).person_id is None  # the old template is gone
    assert gallery.search(unit(77)).person_id == 7
    assert gallery.remove(7) == 1 and gallery.remove(7) == 0
    assert gallery.search(unit(77)).refusal == "too_far"


def test_two_people_too_close_to_call_are_refused() -> None:
    gallery = FaceGallery(threshold=0.6, margin=0.05)
    base = unit(1)
    gallery.add(1, base)
    gallery.add(2, base + 0.01)
    match = gallery.search(base + 0.005)
    assert match.person_id is None and match.refusal == "too_close_to_call"


def masked_gallery() -> FaceGallery:
    """Person 1 and 2, each a photo and a white-mask template (kind 2) near a shared face."""
    gallery = FaceGallery(threshold=0.45, margin=0.04, masked=MaskedRule())
    for person in (1, 2):
        photo_ = unit(person)
        mask = 0.85 * unit(person) + 0.53 * unit(100)  # the mask pulls both toward one face
        gallery.add(person, np.stack([photo_, mask / np.linalg.norm(mask)]), [PHOTO, 2])
    return gallery


def test_masked_rule_needs_both_views_to_agree() -> None:
    gallery = masked_gallery()
    assert len(gallery) == 4 and gallery.people == 2 and gallery.has_masked_templates
    mask_1 = 0.85 * unit(1) + 0.53 * unit(100)
    probe = mask_1 / np.linalg.norm(mask_1) + 0.02 * unit(5)
    # The photos alone do not place a masked face...
    photos_only = gallery.search(probe)
    assert photos_only.person_id is None and photos_only.refusal == "too_far"
    # ...the face painted like the templates, agreeing, does.
    match = gallery.search(probe, painted=probe)
    assert match.person_id == 1 and match.masked
    # Painted toward someone else: the views disagree, refused.
    mask_2 = 0.85 * unit(2) + 0.53 * unit(100)
    refused = gallery.search(probe, painted=mask_2 / np.linalg.norm(mask_2))
    assert refused.person_id is None and not refused.masked
    # Without a masked rule the gallery answers from the photos only.
    strict = FaceGallery(threshold=0.45, masked=None)
    strict.add_many([(1, np.stack([unit(1), probe]), [PHOTO, 2])])
    assert not strict.has_masked_templates
    assert strict.search(probe, painted=probe).refusal == "too_far"


def test_the_painted_view_is_computed_only_when_the_masked_rule_could_accept() -> None:
    gallery = masked_gallery()
    calls: list[int] = []

    def painted_like(vector: np.ndarray) -> Callable[[], np.ndarray]:
        def compute() -> np.ndarray:
            calls.append(1)
            return vector

        return compute

    # A stranger far from every template: refused without the painted view.
    stranger = gallery.search(unit(9), painted=painted_like(unit(9)))
    assert stranger.person_id is None and stranger.refusal == "too_far" and calls == []
    # A resident's bare face: the photos place it, no painted view either.
    assert gallery.search(unit(1) + 0.01, painted=painted_like(unit(1))).person_id == 1
    assert calls == []
    # A masked resident: the rule asks for the painted view once and places them, as the
    # same view given as an array does.
    mask_1 = 0.85 * unit(1) + 0.53 * unit(100)
    probe = mask_1 / np.linalg.norm(mask_1) + 0.02 * unit(5)
    lazy = gallery.search(probe, painted=painted_like(probe))
    assert lazy == gallery.search(probe, painted=probe)
    assert lazy.person_id == 1 and lazy.masked and calls == [1]


def test_replace_and_remove_take_masked_templates_too() -> None:
    gallery = masked_gallery()
    gallery.replace(1, unit(11))
    assert len(gallery) == 3 and gallery.people == 2
    assert gallery.remove(1) == 1 and gallery.remove(2) == 2
    assert len(gallery) == 0 and gallery.search(unit(2)).refusal == "empty"
    with pytest.raises(ValueError, match="kinds"):
        gallery.add(3, np.stack([unit(3), unit(4)]), [PHOTO])
    with pytest.raises(ValueError, match="kinds"):
        gallery.add(3, unit(3), [-1])


def test_searches_while_another_thread_enrols() -> None:
    gallery = FaceGallery(threshold=0.3)
    gallery.add(0, unit(0))
    errors: list[BaseException] = []

    def enrol() -> None:
        for n in range(1, 300):
            gallery.add(n, unit(n))
            gallery.remove(n - 1) if n % 3 == 0 else None

    def search() -> None:
        try:
            for _ in range(300):
                gallery.search(unit(299))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enrol), threading.Thread(target=search)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert gallery.search(unit(299)).person_id == 299


# -- evaluation --------------------------------------------------------------------------


def test_eval_faces_reports_the_figures(tmp_path: Path) -> None:
    source = shared_data("faces_masked")
    lines = (source / "labels.csv").read_text().splitlines()
    names = sorted({line.split(",")[1] for line in lines[1:]})[:2]
    chosen = [line for line in lines[1:] if line.split(",")[1] in names]
    for line in chosen:
        name = line.split(",")[0]
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "labels.csv").write_text("\n".join([lines[0], *chosen]) + "\n")
    result = CliRunner().invoke(app, ["eval", "faces", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["images"] == len(chosen) and figures["identities"] == 2
    for key in (
        "no_face",
        "threshold",
        "accuracy",
        "tar",
        "far",
        "rank1",
        "detect_ms_p50",
        "encode_ms_p50",
        "total_ms_p95",
    ):
        assert key in figures
    masked = figures["masked"]
    assert masked["probes"] == sum(1 for line in chosen if line.endswith(",1"))
    assert masked["detected"] <= masked["probes"]
    assert masked["correct"] + masked["false_accepts"] <= masked["detected"]
    assert masked["stranger_accepts"] <= masked["strangers"] <= figures["images"]
    assert masked["masked_strangers"] <= masked["detected"]
    assert figures["paint_ms_p50"] > 0
    # Residents enrolled with their mask on too (#18): exactly these four figures.
    enrolled = figures["masked_enrolled"]
    assert set(enrolled) == {"probes", "correct", "false_accepts", "stranger_accepts"}
    assert enrolled["correct"] + enrolled["false_accepts"] <= enrolled["probes"]
    assert "passage" in figures and "fuse_ms_p50" in figures["passage"]


def test_eval_faces_counts_the_faces_of_group_photos(tmp_path: Path) -> None:
    source = shared_data("faces_group")
    lines = (source / "labels.csv").read_text().splitlines()
    chosen = lines[1:3]
    for line in chosen:
        name = line.split(",")[0]
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "labels.csv").write_text("\n".join([lines[0], *chosen]) + "\n")
    result = CliRunner().invoke(
        app, ["eval", "faces", str(tmp_path), "--json", "--detector", "mtcnn"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    expected = sum(int(line.split(",")[1]) for line in chosen)
    assert figures["images"] == 2 and figures["faces"] == expected
    assert figures["found"] == expected and figures["extra"] == 0
