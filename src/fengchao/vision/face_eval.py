"""Evaluation of the face pipeline on a labelled folder (``fengchao eval faces DIR``)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fengchao.vision.face_pipeline import SAME_PERSON, Face, FacePipeline, Templates, Timings
from fengchao.vision.faces import Descriptor, FaceDetector
from fengchao.vision.gallery import MASKED_PHOTO, FaceGallery, MaskedRule
from fengchao.vision.images import ImageError, as_rgb, decode_image
from fengchao.vision.labels import label_rows
from fengchao.vision.passage import KEEP_FRAMES, PassageFrame, fuse_passage


@dataclass
class Sample:
    file: str
    identity: str
    masked: bool
    face: Face | None
    timings: Timings
    error: str | None = None
    painted: Descriptor | None = None
    paint_ms: float = 0.0


def embed_folder(
    folder: Path, pipeline: FacePipeline, paint: bool = True
) -> tuple[list[Sample], bool]:
    """Every labelled photo's largest face; with ``paint``, masked sets also get the
    painted descriptor the masked rule needs."""
    rows = label_rows(folder, "file", "identity")
    has_masked = bool(rows) and "masked" in rows[0]
    samples = []
    for row in rows:
        timings = Timings()
        masked = has_masked and row["masked"].strip() in {"1", "true", "yes"}
        try:
            image = decode_image((folder / row["file"]).read_bytes())
        except (ImageError, OSError) as exc:
            samples.append(Sample(row["file"], row["identity"], masked, None, timings, str(exc)))
            continue
        face = pipeline.largest_face(image, timings)
        sample = Sample(row["file"], row["identity"], masked, face, timings)
        if paint and has_masked and face is not None:
            # The face with the masked rule's paint: what a masked probe costs at the gate
            # beyond the ordinary pass, timed apart from it.
            start = time.perf_counter()
            sample.painted = pipeline.painted(face, MaskedRule().painted_kind)
            sample.paint_ms = (time.perf_counter() - start) * 1000
        samples.append(sample)
    return samples, has_masked


def count_faces(folder: Path, detector: FaceDetector) -> dict[str, Any]:
    """Group photos (``labels.csv``: file,faces): how many of their faces are found.

    Without boxes in the labels a found face is counted up to the number expected;
    faces beyond it are ``extra`` (a false detection, or a face the label left out).
    """
    rows = label_rows(folder, "file", "faces")
    figures = dict.fromkeys(["images", "faces", "found", "extra", "exact_images", "unreadable"], 0)
    times: list[float] = []
    for row in rows:
        figures["images"] += 1
        if not row["faces"].strip().isdigit():
            raise ValueError(
                f"labels.csv, {row['file']}: faces must be a count, got {row['faces']!r}"
            )
        expected = int(row["faces"])
        figures["faces"] += expected
        try:
            image = as_rgb(decode_image((folder / row["file"]).read_bytes()))
        except (ImageError, OSError):
            figures["unreadable"] += 1
            continue
        start = time.perf_counter()
        found = len(detector.detect(image))
        times.append((time.perf_counter() - start) * 1000)
        figures["found"] += min(found, expected)
        figures["extra"] += max(0, found - expected)
        figures["exact_images"] += found == expected
    return figures | {
        "recall": round(figures["found"] / figures["faces"], 4) if figures["faces"] else 0.0,
        "detect_ms_p50": round(float(np.percentile(times, 50)), 1) if times else 0.0,
        "detect_ms_p95": round(float(np.percentile(times, 95)), 1) if times else 0.0,
    }


def verification(samples: list[Sample], threshold: float) -> dict[str, Any]:
    """Every pair of images with a face: same person or not, accepted at the threshold or not."""
    found = [s for s in samples if s.face is not None]
    if len(found) < 2:
        return {"pairs": 0}
    vectors = np.stack([s.face.descriptor for s in found if s.face is not None])
    names = np.array([s.identity for s in found])
    squared = (vectors**2).sum(1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * vectors @ vectors.T, 0))
    upper = np.triu_indices(len(found), k=1)
    d = distance[upper]
    same = (names[:, None] == names[None])[upper]

    def at(t: float) -> tuple[float, float, float]:
        accepted = d <= t
        tar = float(accepted[same].mean()) if same.any() else 0.0
        far = float(accepted[~same].mean()) if (~same).any() else 0.0
        return float((accepted == same).mean()), tar, far

    accuracy, tar, far = at(threshold)
    sweep = np.round(np.arange(0.30, 0.80, 0.01), 2)
    best = max(sweep, key=lambda t: at(float(t))[0])
    # The threshold a gate would choose: the most true accepts with no false accept.
    strict = [float(t) for t in sweep if at(float(t))[2] == 0.0]
    return {
        "pairs": int(d.size),
        "same_pairs": int(same.sum()),
        "accuracy": round(accuracy, 4),
        "tar": round(tar, 4),
        "far": round(far, 6),
        "best_threshold": float(best),
        "best_accuracy": round(at(float(best))[0], 4),
        "zero_far_threshold": max(strict) if strict else None,
    }


def rank1(samples: list[Sample], gallery_threshold: float) -> dict[str, Any]:
    """One enrolment photo per person (the first unmasked one), every other photo a probe."""
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.face is not None:
            by_person[s.identity].append(s)
    enrolled: dict[str, Sample] = {}
    for name, group in by_person.items():
        enrolled[name] = next((s for s in group if not s.masked), group[0])
    vectors = np.stack([s.face.descriptor for s in enrolled.values() if s.face is not None])
    names = list(enrolled)
    hits = probes = 0
    for s in samples:
        if s.face is None or enrolled.get(s.identity) is s or s.identity not in enrolled:
            continue
        probes += 1
        nearest = int(np.argmin(np.linalg.norm(vectors - s.face.descriptor, axis=1)))
        hits += names[nearest] == s.identity
    return {"rank1": round(hits / probes, 4) if probes else 0.0, "rank1_probes": probes}


def gate_with_masks(
    samples: list[Sample],
    pipeline: FacePipeline,
    threshold: float,
    margin: float,
    synthetic_masks: bool,
) -> dict[str, int]:
    """The gate in an outbreak, from the photos of people with and without masks.

    Residents: the unmasked photos of each person enrolled, every masked photo a probe
    (``correct``, ``false_accepts``). Strangers: each person in turn left out of the
    gallery, every photo of theirs a probe that should be refused (``stranger_accepts``).
    """
    ids = {name: n for n, name in enumerate(sorted({s.identity for s in samples}))}
    enrolled: list[tuple[str, Templates]] = [
        (s.identity, pipeline.templates(s.face, synthetic_masks))
        for s in samples
        if not s.masked and s.face is not None
    ]

    def gallery_without(left_out: str | None) -> FaceGallery:
        gallery = FaceGallery(pipeline.encoder.dimension, threshold, margin)
        gallery.add_many((ids[name], *t) for name, t in enrolled if name != left_out)
        return gallery

    def accepted(gallery: FaceGallery, s: Sample) -> int | None:
        assert s.face is not None
        return gallery.search(s.face.descriptor, s.painted).person_id

    everyone = gallery_without(None)
    probes = [s for s in samples if s.masked]
    found = [s for s in probes if s.face is not None]
    answers = [accepted(everyone, s) for s in found]
    strangers = dict.fromkeys(
        ["strangers", "stranger_accepts", "masked_strangers", "masked_stranger_accepts"], 0
    )
    for name in ids:
        gallery = gallery_without(name)
        for s in samples:
            if s.identity != name or s.face is None:
                continue
            wrongly = accepted(gallery, s) is not None
            strangers["strangers"] += 1
            strangers["stranger_accepts"] += wrongly
            if s.masked:
                strangers["masked_strangers"] += 1
                strangers["masked_stranger_accepts"] += wrongly
    return {
        "probes": len(probes),
        "detected": len(found),
        "correct": sum(a == ids[s.identity] for a, s in zip(answers, found, strict=True)),
        "false_accepts": sum(
            a is not None and a != ids[s.identity] for a, s in zip(answers, found, strict=True)
        ),
    } | strangers


def gate_with_masked_enrolment(
    samples: list[Sample], pipeline: FacePipeline, threshold: float, margin: float
) -> tuple[dict[str, int], dict[str, int]]:
    """The gate when residents were also enrolled with their usual mask on.

    Every person with two or more masked photos is enrolled: their unmasked photos (with
    the synthetic masks) and their first masked photo (as ``MASKED_PHOTO``); their
    other masked photos are probes (``probes``; ``correct``; ``false_accepts``, placed
    as someone else; a face not found is a probe not placed). The masked photos of
    people not enrolled (fewer than two masked photos) are ``stranger_accepts`` when
    let in. The detail adds the same gate with each enrolled person left out in turn
    (all their masked photos strangers) and how many first masked photos the
    enrolment check (``SAME_PERSON``) would have refused.
    """
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_person[s.identity].append(s)
    ids = {name: n for n, name in enumerate(sorted(by_person))}
    enrolled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    probes: list[Sample] = []
    flagged = 0
    for name, group in by_person.items():
        masked = [s for s in group if s.masked]
        if len(masked) < 2:
            continue
        photos = [pipeline.templates(s.face) for s in group if not s.masked and s.face]
        entries = [(t.descriptors, t.kinds) for t in photos]
        first = masked[0].face
        if first is not None:
            entries.append((first.descriptor[None, :], np.array([MASKED_PHOTO])))
            if photos:
                existing = Templates(
                    np.concatenate([t.descriptors for t in photos]),
                    np.concatenate([t.kinds for t in photos]),
                )
                distance = pipeline.disagreement(first, True, existing)
                flagged += distance is not None and distance > SAME_PERSON
        enrolled[name] = entries
        probes += masked[1:]

    def gallery_without(left_out: str | None) -> FaceGallery:
        gallery = FaceGallery(pipeline.encoder.dimension, threshold, margin)
        gallery.add_many(
            (ids[name], vectors, kinds)
            for name, entries in enrolled.items()
            if name != left_out
            for vectors, kinds in entries
        )
        return gallery

    def placed(gallery: FaceGallery, s: Sample) -> int | None:
        return gallery.search(s.face.descriptor, s.painted).person_id if s.face else None

    everyone = gallery_without(None) if enrolled else None
    answers = [placed(everyone, s) if everyone else None for s in probes]
    strangers = [s for s in samples if s.masked and s.identity not in enrolled]
    section = {
        "probes": len(probes),
        "correct": sum(a == ids[s.identity] for a, s in zip(answers, probes, strict=True)),
        "false_accepts": sum(
            a is not None and a != ids[s.identity] for a, s in zip(answers, probes, strict=True)
        ),
        "stranger_accepts": sum(
            everyone is not None and placed(everyone, s) is not None for s in strangers
        ),
    }
    left_out = left_out_accepts = 0
    for name in enrolled:
        gallery = gallery_without(name)
        for s in by_person[name]:
            if s.masked:
                left_out += 1
                left_out_accepts += placed(gallery, s) is not None
    detail = {
        "people_enrolled": len(enrolled),
        "detected": sum(s.face is not None for s in probes),
        "strangers": len(strangers),
        "left_out_strangers": left_out,
        "left_out_stranger_accepts": left_out_accepts,
        "enrolment_flagged": flagged,
    }
    return section, detail


def passages(samples: list[Sample], threshold: float, margin: float) -> dict[str, Any]:
    """Several frames, one passage, with consecutive photos standing in for frames.

    Each person with four or more bare-faced photos is enrolled with the first; every
    run of ``KEEP_FRAMES`` consecutive other photos is one passage, decided on each frame
    alone (``frame_acceptance``), frame by frame until one is placed
    (``passages_any_frame``), and fused (``passage_acceptance``). A passage whose
    last frame is swapped for a photo of the next person must be refused (``mixed_*``);
    a passage of a person left out of the gallery must be refused (``stranger_*``).
    Photos taken years apart differ far more than the frames of one second, so these
    figures are a floor for the gate.
    """
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.face is not None and not s.masked:
            by_person[s.identity].append(s)
    names = sorted(by_person)
    ids = {name: n for n, name in enumerate(names)}

    def frame(s: Sample) -> PassageFrame:
        assert s.face is not None
        return PassageFrame.of(s.face)

    def gallery_without(left_out: str | None) -> FaceGallery:
        gallery = FaceGallery(threshold=threshold, margin=margin, masked=None)
        gallery.add_many(
            (ids[name], group[0].face.descriptor, None)
            for name, group in by_person.items()
            if name != left_out and group[0].face is not None
        )
        return gallery

    everyone = gallery_without(None)
    figures = dict.fromkeys(
        [
            "passages",
            "frames",
            "frames_accepted",
            "passages_any_frame",
            "passages_accepted",
            "passage_false_accepts",
            "passage_two_people",
            "mixed_passages",
            "mixed_refused",
            "mixed_accepts",
            "stranger_passages",
            "stranger_passage_accepts",
            "stranger_any_frame_accepts",
        ],
        0,
    )
    fuse_ms: list[float] = []
    for n, name in enumerate(names):
        group = by_person[name]
        if len(group) < KEEP_FRAMES + 1:
            continue
        other = by_person[names[(n + 1) % len(names)]]
        without = gallery_without(name)
        for start in range(1, len(group) - KEEP_FRAMES + 1):
            window = [frame(s) for s in group[start : start + KEEP_FRAMES]]
            figures["passages"] += 1
            alone = [everyone.search(f.descriptor).person_id for f in window]
            figures["frames"] += len(window)
            figures["frames_accepted"] += alone.count(ids[name])
            # A gate deciding frame by frame opens on the first frame placed.
            first = next((a for a in alone if a is not None), None)
            figures["passages_any_frame"] += first == ids[name]
            figures["stranger_any_frame_accepts"] += any(
                without.search(f.descriptor).person_id is not None for f in window
            )
            begin = time.perf_counter()
            fused = fuse_passage(window)
            fuse_ms.append((time.perf_counter() - begin) * 1000)
            if fused.descriptor is None:
                figures["passage_two_people"] += 1
            else:
                placed = everyone.search(fused.descriptor).person_id
                figures["passages_accepted"] += placed == ids[name]
                figures["passage_false_accepts"] += placed not in (None, ids[name])
                figures["stranger_passages"] += 1
                figures["stranger_passage_accepts"] += (
                    without.search(fused.descriptor).person_id is not None
                )
            mixed = fuse_passage([*window[:-1], frame(other[-1])])
            figures["mixed_passages"] += 1
            if mixed.descriptor is None:
                figures["mixed_refused"] += 1
            else:
                figures["mixed_accepts"] += everyone.search(mixed.descriptor).person_id is not None
    frames, count = figures["frames"], figures["passages"]
    return figures | {
        "frame_acceptance": round(figures["frames_accepted"] / frames, 4) if frames else 0.0,
        "passage_acceptance": round(figures["passages_accepted"] / count, 4) if count else 0.0,
        "fuse_ms_p50": round(float(np.percentile(fuse_ms, 50)), 3) if fuse_ms else 0.0,
    }


def summarise(
    samples: list[Sample],
    has_masked: bool,
    pipeline: FacePipeline,
    threshold: float,
    margin: float,
    synthetic_masks: bool = True,
) -> dict[str, Any]:
    timed = [s.timings for s in samples if s.error is None]
    encoded = [t for t, s in zip(timed, samples, strict=False) if s.face is not None]

    def p(values: list[float], q: int) -> float:
        return round(float(np.percentile(values, q)), 1) if values else 0.0

    figures: dict[str, Any] = {
        "images": len(samples),
        "identities": len({s.identity for s in samples}),
        "no_face": sum(1 for s in samples if s.face is None and s.error is None),
        "unreadable_files": sum(1 for s in samples if s.error is not None),
        "threshold": threshold,
        "margin": margin,
    }
    figures |= verification(samples, threshold)
    figures |= rank1(samples, threshold)
    figures["passage"] = passages(samples, threshold, margin)
    figures |= {
        "detect_ms_p50": p([t.detect_ms for t in timed], 50),
        "detect_ms_p95": p([t.detect_ms for t in timed], 95),
        "align_ms_p50": p([t.align_ms for t in encoded], 50),
        "encode_ms_p50": p([t.encode_ms for t in encoded], 50),
        "encode_ms_p95": p([t.encode_ms for t in encoded], 95),
        "total_ms_p50": p([t.total_ms for t in timed], 50),
        "total_ms_p95": p([t.total_ms for t in timed], 95),
    }
    if has_masked:
        figures["paint_ms_p50"] = p([s.paint_ms for s in samples if s.painted is not None], 50)
        figures["synthetic_masks"] = synthetic_masks
        figures["masked"] = gate_with_masks(samples, pipeline, threshold, margin, synthetic_masks)
        section, detail = gate_with_masked_enrolment(samples, pipeline, threshold, margin)
        figures["masked_enrolled"] = section
        figures["masked_enrolled_detail"] = detail
    return figures
