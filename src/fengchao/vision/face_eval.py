"""Evaluation of the face pipeline on a labelled folder (``fengchao eval faces DIR``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fengchao.vision.face_pipeline import Face, FacePipeline, Timings
from fengchao.vision.gallery import FaceGallery
from fengchao.vision.images import ImageError, decode_image
from fengchao.vision.plate_eval import label_rows


@dataclass
class Sample:
    file: str
    identity: str
    masked: bool
    face: Face | None
    timings: Timings
    error: str | None = None


def embed_folder(folder: Path, pipeline: FacePipeline) -> tuple[list[Sample], bool]:
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
        samples.append(Sample(row["file"], row["identity"], masked, face, timings))
    return samples, has_masked


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
    """Unmasked photos of each person enrolled; every masked photo a probe at the gate."""
    gallery = FaceGallery(pipeline.encoder.dimension, threshold, margin)
    ids = {name: n for n, name in enumerate(sorted({s.identity for s in samples}))}
    for s in samples:
        if not s.masked and s.face is not None:
            gallery.add(ids[s.identity], pipeline.templates(s.face, synthetic_masks))
    probes = [s for s in samples if s.masked]
    correct = wrong = 0
    for s in probes:
        if s.face is None:
            continue
        match = gallery.search(s.face.descriptor)
        if match.person_id is not None:
            correct += match.person_id == ids[s.identity]
            wrong += match.person_id != ids[s.identity]
    return {
        "probes": len(probes),
        "detected": sum(1 for s in probes if s.face is not None),
        "correct": correct,
        "false_accepts": wrong,
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
        figures["synthetic_masks"] = synthetic_masks
        figures["masked"] = gate_with_masks(samples, pipeline, threshold, margin, synthetic_masks)
    return figures
