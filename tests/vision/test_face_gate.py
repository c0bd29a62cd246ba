"""Faces at the gate (#18): the calibrated operating point, masks enrolled for real, several
frames of one passage, and the 1:N search by codes giving the full scan's answers."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fengchao.cli import app
from fengchao.settings import VisionSettings
from fengchao.vision import gallery as gallery_module
from fengchao.vision.calibration import CalibrationRefused, LabelledFace, calibrate
from fengchao.vision.face_eval import Sample, gate_with_masked_enrolment
from fengchao.vision.face_pipeline import (
    SAME_PERSON,
    EnrolmentRefused,
    FacePipeline,
    QualityPolicy,
    Templates,
)
from fengchao.vision.gallery import MASKED_PHOTO, PHOTO, FaceGallery, MaskedRule
from fengchao.vision.images import decode_image
from fengchao.vision.passage import PassageFrame, fuse_painted, fuse_passage
from tests.conftest import shared_data


def labelled(samples: list[Sample]) -> list[LabelledFace]:
    return [LabelledFace(s.identity, s.masked, s.face.descriptor) for s in samples if s.face]


def desc(s: Sample) -> np.ndarray:
    assert s.face is not None
    return s.face.descriptor


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


# -- 1. the calibrated operating point ---------------------------------------------------


def test_calibration_picks_no_false_accept_and_more_residents_than_before(
    dev_faces: list[Sample],
) -> None:
    chosen = calibrate(labelled(dev_faces))
    # Replayed independently through the gallery: nobody taken for someone else.
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for s in dev_faces:
        if s.face is not None:
            by_person[s.identity].append(s)
    names = sorted(by_person)
    for left_out in names:
        gallery = FaceGallery(threshold=chosen.threshold, margin=chosen.margin, masked=None)
        for n, name in enumerate(names):
            if name != left_out:
                gallery.add(n, np.stack([s.face.descriptor for s in by_person[name] if s.face]))
        for s in by_person[left_out]:
            assert s.face is not None
            assert gallery.search(s.face.descriptor).person_id is None, f"{s.file} let in"
    old = calibrate_acceptance_at(dev_faces, 0.45, 0.04)
    assert chosen.acceptance > old + 0.1
    assert chosen.asked_again_per_100 == round(100 * (1 - chosen.acceptance))
    assert chosen.far_upper_95 == pytest.approx(3 / chosen.impostor_attempts, abs=1e-6)


def calibrate_acceptance_at(samples: list[Sample], threshold: float, margin: float) -> float:
    """Residents let in at a given point: one photo enrolled, another at the gate."""
    faces = [s for s in samples if s.face is not None and not s.masked]
    accepted = attempts = 0
    for probe in faces:
        for enrolled in faces:
            if enrolled is probe or enrolled.identity != probe.identity:
                continue
            gallery = FaceGallery(threshold=threshold, margin=margin, masked=None)
            gallery.add(0, desc(enrolled))
            others = [s for s in faces if s.identity != probe.identity]
            ids = {name: n + 1 for n, name in enumerate(sorted({s.identity for s in others}))}
            gallery.add_many((ids[s.identity], desc(s), None) for s in others)
            attempts += 1
            accepted += gallery.search(desc(probe)).person_id == 0
    return accepted / attempts


def test_shipped_defaults_are_what_calibration_chooses_on_the_dev_sets(
    dev_faces: list[Sample], dev_masked_faces: list[Sample]
) -> None:
    chosen = calibrate(labelled(dev_faces) + labelled(dev_masked_faces))
    defaults = VisionSettings()
    assert (defaults.face_threshold, defaults.face_margin) == (chosen.threshold, chosen.margin)


def test_calibration_with_one_photo_per_person_is_refused() -> None:
    faces = [LabelledFace(f"p{n}", False, unit(n)) for n in range(5)]
    with pytest.raises(CalibrationRefused) as caught:
        calibrate(faces)
    assert caught.value.code == "one_photo_per_person"
    assert "每人只有一张" in caught.value.message
    with pytest.raises(CalibrationRefused) as one:
        calibrate([LabelledFace("p", False, unit(1)), LabelledFace("p", False, unit(2))])
    assert one.value.code == "one_person"


def test_calibration_of_mislabelled_photos_finds_no_safe_point() -> None:
    # The same face under two names: taken for someone else at any threshold.
    faces = [LabelledFace(name, False, unit(1) + 0.001 * k) for k, name in enumerate("aabb")]
    with pytest.raises(CalibrationRefused) as caught:
        calibrate(faces)
    assert caught.value.code == "no_safe_point"


def test_calibrate_command_prints_the_point_and_refuses_one_photo_each(tmp_path: Path) -> None:
    source = shared_data("faces")
    rows = (source / "labels.csv").read_text().splitlines()
    # labels.csv may name images elsewhere: absolute paths, nothing copied.
    firsts: dict[str, str] = {}
    for line in rows[1:]:
        file, identity = line.split(",")[:2]
        firsts.setdefault(identity, f"{source / file},{identity}")
    singles = tmp_path / "singles"
    singles.mkdir()
    (singles / "labels.csv").write_text("file,identity\n" + "\n".join(list(firsts.values())[:6]))
    refused = CliRunner().invoke(app, ["eval", "faces", str(singles), "--calibrate", "--json"])
    assert refused.exit_code == 2
    answer = json.loads(refused.stdout.strip().splitlines()[-1])
    assert answer["refused"] == "one_photo_per_person" and "两张" in answer["message"]

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    chosen = [line for line in rows[1:] if line.split(",")[1] in sorted(firsts)[:4]]
    (pairs / "labels.csv").write_text(
        "file,identity\n"
        + "\n".join(f"{source / c.split(',')[0]},{c.split(',')[1]}" for c in chosen)
    )
    result = CliRunner().invoke(app, ["eval", "faces", str(pairs), "--calibrate", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.3 <= figures["threshold"] <= 0.8 and 0 <= figures["margin"] <= 0.15
    assert figures["people"] == 4 and figures["asked_again_per_100"] >= 0
    two = CliRunner().invoke(app, ["eval", "faces", str(pairs), str(singles), "--json"])
    assert two.exit_code == 2 and "--calibrate" in two.output


# -- 2. masks enrolled for real ----------------------------------------------------------


def masked_photo(name: str) -> np.ndarray:
    return decode_image(shared_data("faces_masked", name).read_bytes())


LENIENT = QualityPolicy(min_face_px=40, min_sharpness=0.0)  # 160-px crops of the dev set


def test_a_masked_enrolment_photo_is_its_own_kind(face_pipeline: FacePipeline) -> None:
    bare = [face_pipeline.enrol(masked_photo(f), LENIENT) for f in ("brian_kemp_01.jpg",)]
    existing = Templates(
        np.concatenate([e.templates.descriptors for e in bare]),
        np.concatenate([e.templates.kinds for e in bare]),
    )
    masked = face_pipeline.enrol(
        masked_photo("brian_kemp_02.jpg"), LENIENT, masked=True, existing=existing
    )
    assert masked.templates.kinds.tolist() == [MASKED_PHOTO]
    assert masked.masked_variants == 0
    gallery = FaceGallery()
    gallery.add(1, *existing)
    gallery.add(1, *masked.templates)
    assert gallery.has_real_masked_templates and len(gallery) == 5


def test_a_masked_enrolment_photo_of_someone_else_is_refused(face_pipeline: FacePipeline) -> None:
    enrolment = face_pipeline.enrol(masked_photo("bella_hadid_02.jpg"), LENIENT)
    with pytest.raises(EnrolmentRefused) as caught:
        face_pipeline.enrol(
            masked_photo("adrian_dunbar_01.jpg"),
            LENIENT,
            masked=True,
            existing=enrolment.templates,
        )
    assert caught.value.code == "not_same_person"
    assert "不像同一个人" in caught.value.message and f"{SAME_PERSON:.2f}" in caught.value.message
    # A bare-faced photo of someone else is caught the same way.
    with pytest.raises(EnrolmentRefused) as bare:
        face_pipeline.enrol(
            masked_photo("brian_kemp_01.jpg"), LENIENT, existing=enrolment.templates
        )
    assert bare.value.code == "not_same_person"


def test_masked_enrolled_gate_on_the_dev_set(
    dev_masked_faces: list[Sample], face_pipeline: FacePipeline
) -> None:
    section, detail = gate_with_masked_enrolment(dev_masked_faces, face_pipeline, 0.51, 0.11)
    assert set(section) == {"probes", "correct", "false_accepts", "stranger_accepts"}
    assert section["false_accepts"] == 0 and section["stranger_accepts"] == 0
    assert detail["strangers"] > 0 and detail["people_enrolled"] > 0
    # The same probes without the real masked templates (synthetic ones only): fewer in.
    without = [
        Sample(
            s.file,
            s.identity,
            s.masked and s.file not in firsts(dev_masked_faces),
            s.face,
            s.timings,
            s.error,
            s.painted,
        )
        for s in dev_masked_faces
        if not (s.masked and s.file in firsts(dev_masked_faces))
    ]
    assert section["correct"] > synthetic_only_correct(without, face_pipeline, section)


def firsts(samples: list[Sample]) -> set[str]:
    seen: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.masked:
            seen[s.identity].append(s)
    return {group[0].file for group in seen.values() if len(group) >= 2}


def synthetic_only_correct(
    samples: list[Sample], pipeline: FacePipeline, section: dict[str, int]
) -> int:
    """The masked probes of the masked-enrolled gate, against photos and synthetic masks."""
    ids = {name: n for n, name in enumerate(sorted({s.identity for s in samples}))}
    gallery = FaceGallery(threshold=0.51, margin=0.11)
    for s in samples:
        if not s.masked and s.face is not None:
            gallery.add(ids[s.identity], *pipeline.templates(s.face))
    masked_count: dict[str, int] = defaultdict(int)
    for s in samples:
        masked_count[s.identity] += s.masked
    correct = 0
    for s in samples:
        if s.masked and s.face is not None and masked_count[s.identity] >= 1:
            correct += gallery.search(s.face.descriptor, s.painted).person_id == ids[s.identity]
    return correct


def test_painting_only_when_needed_answers_as_painting_always_on_the_dev_set(
    dev_masked_faces: list[Sample], face_pipeline: FacePipeline
) -> None:
    """Half the people enrolled (photos, synthetic masks, their first masked photo), every
    photo a probe: the painted view computed on demand gives the same answer as the view
    given up front, and is skipped for some probes (strangers far from everyone)."""
    names = sorted({s.identity for s in dev_masked_faces})
    ids = {name: n for n, name in enumerate(names)}
    gallery = FaceGallery(threshold=0.51, margin=0.11)
    first_masked = firsts(dev_masked_faces)
    for s in dev_masked_faces:
        if s.face is None or ids[s.identity] % 2:
            continue
        if not s.masked:
            gallery.add(ids[s.identity], *face_pipeline.templates(s.face))
        elif s.file in first_masked:
            gallery.add(ids[s.identity], s.face.descriptor, [MASKED_PHOTO])
    asked = unplaced = 0
    for s in dev_masked_faces:
        if s.face is None or s.painted is None:
            continue
        view = s.painted

        def painted(view: np.ndarray = view) -> np.ndarray:
            nonlocal asked
            asked += 1
            return view

        eager = gallery.search(s.face.descriptor, view)
        assert gallery.search(s.face.descriptor, painted) == eager, s.file
        unplaced += gallery.search(s.face.descriptor).person_id is None
    assert 0 < asked < unplaced


def test_a_masked_probe_is_not_decided_by_the_photo_threshold() -> None:
    """Nearer a real masked template than any photo: the photos' threshold does not let it
    in, whatever the photo distance; the masked rule decides."""
    gallery = FaceGallery(threshold=0.9, margin=0.0, masked=MaskedRule())
    mask = unit(100)
    for person in (1, 2):
        worn = (0.6 * unit(person) + 0.8 * mask).astype(np.float32)
        gallery.add(person, np.stack([unit(person), worn]), [PHOTO, MASKED_PHOTO])
    probe = (0.62 * unit(1) + 0.78 * mask).astype(np.float32)
    match = gallery.search(probe)
    assert match.person_id is None and match.refusal == "masked"
    # A bare face of person 1 is still decided by the photos.
    assert gallery.search(unit(1) + 0.01).person_id == 1


def test_real_masked_template_first_then_synthetic() -> None:
    gallery = FaceGallery(threshold=0.45, margin=0.04, masked=MaskedRule())
    mask = unit(100)
    for person in (1, 2):
        painted = 0.85 * unit(person) + 0.53 * mask
        worn = 0.8 * unit(person) + 0.6 * unit(101)
        gallery.add(
            person,
            np.stack([unit(person), painted / np.linalg.norm(painted), worn]),
            [PHOTO, 2, MASKED_PHOTO],
        )
    worn_1 = 0.8 * unit(1) + 0.6 * unit(101) + 0.05 * unit(7)
    painted_1 = 0.85 * unit(1) + 0.53 * mask
    match = gallery.search(worn_1, painted=painted_1 / np.linalg.norm(painted_1))
    assert match.person_id == 1 and match.masked
    # The painted view names someone else: the views disagree, refused.
    painted_2 = 0.85 * unit(2) + 0.53 * mask
    refused = gallery.search(worn_1, painted=painted_2 / np.linalg.norm(painted_2))
    assert refused.person_id is None


# -- 3. several frames, one passage ----------------------------------------------------------


def test_frames_of_one_person_fuse_and_two_people_are_refused(dev_faces: list[Sample]) -> None:
    jolie = [s.face for s in dev_faces if s.identity == "angelina_jolie" and s.face][:4]
    sharon = [s.face for s in dev_faces if s.identity == "ariel_sharon" and s.face][:2]
    gallery = FaceGallery(threshold=0.51, margin=0.11, masked=None)
    gallery.add(1, jolie[0].descriptor)
    gallery.add(2, sharon[0].descriptor)
    frames = [PassageFrame.of(face) for face in jolie[1:]]
    passage = fuse_passage(frames)
    assert passage.refusal is None and passage.descriptor is not None
    assert len(passage.used) == 3 and passage.spread <= SAME_PERSON
    assert gallery.search(passage.descriptor).person_id == 1
    mixed = fuse_passage([*frames[:2], PassageFrame.of(sharon[1])])
    assert mixed.descriptor is None and mixed.refusal == "two_people"
    assert "两个不同的人" in mixed.message
    empty = fuse_passage([])
    assert empty.refusal == "no_frames" and empty.message


def test_fusion_keeps_the_best_frames_and_checks_its_input() -> None:
    frames = [
        PassageFrame(unit(1) + 0.01 * unit(k), quality) for k, quality in enumerate([5, 90, 40, 70])
    ]
    passage = fuse_passage(frames, keep=2)
    assert passage.used == (1, 3)
    assert passage.descriptor is not None
    expected = (frames[1].descriptor + frames[3].descriptor) / 2
    assert np.allclose(passage.descriptor, expected, atol=1e-6)
    painted = [unit(10 + k) for k in range(4)]
    fused = fuse_painted(passage, painted)
    assert fused is not None and np.allclose(fused, (painted[1] + painted[3]) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="one painted descriptor per frame"):
        fuse_painted(passage, painted[:2])
    with pytest.raises(ValueError, match="finite"):
        fuse_passage([PassageFrame(np.full(128, np.nan, dtype=np.float32), 1.0)])
    with pytest.raises(ValueError, match="keep"):
        fuse_passage(frames, keep=0)


# -- 5. search by codes: the full scan's answers ---------------------------------------------


def test_search_by_codes_gives_the_full_scans_top_match_on_the_dev_set(
    dev_faces: list[Sample], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery_module, "CODES_FROM", 0)  # codes at any size
    answered = count_answers_by_codes(monkeypatch)
    # One enrolment photo a person among 20,000 other residents drawn like dlib descriptors.
    rng = np.random.default_rng(5)
    found = [s for s in dev_faces if s.face is not None]
    real = np.stack([desc(s) for s in found])
    mean, spread = real.mean(axis=0), real.std(axis=0)
    others = (mean + spread * rng.normal(size=(20_000, 128))).astype(np.float32)
    ids = {name: n for n, name in enumerate(sorted({s.identity for s in found}))}
    coded, full = (FaceGallery(threshold=0.51, margin=0.11, coarse=c) for c in (True, False))
    firsts: set[str] = set()
    for s in found:
        if s.identity not in firsts:
            firsts.add(s.identity)
            for gallery in (coded, full):
                gallery.add(ids[s.identity], desc(s))
    for gallery in (coded, full):
        gallery.add_many((1000 + n, others[n], None) for n in range(len(others)))
    placed = 0
    for s in found:
        a = coded.search(desc(s))
        b = full.search(desc(s))
        assert (a.person_id, a.best_person_id, a.refusal) == (
            b.person_id,
            b.best_person_id,
            b.refusal,
        )
        assert a.distance == pytest.approx(b.distance, abs=1e-5)
        assert a.second_distance == pytest.approx(b.second_distance, abs=1e-5)
        placed += a.person_id == ids[s.identity]
    assert placed > len(ids)  # more than the enrolment photos themselves
    assert answered.count(True) > 0.9 * len(answered)  # the codes answered, not the fallback


def count_answers_by_codes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each search by codes could prove its answer (False: it fell back)."""
    answers: list[bool] = []
    original = gallery_module._Block._nearest_by_codes

    def spy(block: gallery_module._Block, probe: np.ndarray) -> object:
        found = original(block, probe)
        answers.append(found is not None)
        return found

    monkeypatch.setattr(gallery_module._Block, "_nearest_by_codes", spy)
    return answers


def test_search_by_codes_falls_back_when_it_cannot_prove_the_runner_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every candidate by code is person 1: the runner-up must come from the full scan.
    monkeypatch.setattr(gallery_module, "CANDIDATES", 8)
    monkeypatch.setattr(gallery_module, "CODES_FROM", 0)
    answered = count_answers_by_codes(monkeypatch)
    gallery = FaceGallery(threshold=0.5, margin=0.0)
    near = np.stack([unit(1) + 0.001 * unit(k) for k in range(20)])
    gallery.add(1, near)
    gallery.add(2, unit(2))
    match = gallery.search(unit(1))
    assert match.person_id == 1
    assert match.second_distance == pytest.approx(
        float(np.linalg.norm(unit(1) - unit(2))), abs=1e-5
    )
    assert answered == [False]  # the codes could not prove it: the full scan answered


def test_codes_of_values_beyond_their_range_keep_search_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gallery_module, "CODES_FROM", 0)
    # Values past ±0.64 are clipped in the codes; the stored error keeps the proof honest.
    big = np.stack([3 * unit(k) for k in range(200)])
    coded, full = FaceGallery(threshold=5.0), FaceGallery(threshold=5.0, coarse=False)
    for gallery in (coded, full):
        gallery.add_many((k, big[k], None) for k in range(200))
    for k in range(0, 200, 17):
        probe = big[k] + 0.05 * unit(1000 + k)
        a, b = coded.search(probe), full.search(probe)
        assert a.best_person_id == b.best_person_id == k
        assert a.second_distance == pytest.approx(b.second_distance, abs=1e-4)
