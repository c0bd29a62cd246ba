"""Where the milliseconds of one gate face frame go, stage by stage, in this process.

The frame takes the gate's own path without the database (``access.faces.identify_for_gate``
less the change-log poll and the check on file): ``decode_image`` → the gate's detection
(``detect_coarse_first`` with the detector of the settings: HOG, MTCNN when HOG finds
nothing) → the decisive face's landmarks and chip → its descriptor → the gallery search
(with the masked rule's painted descriptor when the photos do not place the face).

Each stage is timed by wrapping the call that does it, in wall-clock milliseconds and in
this thread's CPU milliseconds (``time.thread_time``: on a loaded machine the CPU time
moves much less than the wall clock; compare runs by it and by ratios). Frames: the
photos of ../shared/data/faces (all but each person's first, which is enrolled) and the
masked photos of ../shared/data/faces_masked, each on a 640×480 canvas as JPEG (as
``gate_face.py`` makes them); the gallery is filled to ``--gallery`` people with
synthetic descriptors (four templates each). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import canvas, emit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Stages:
    """Wall and CPU milliseconds per stage name, summed within a frame."""

    def __init__(self) -> None:
        self.frame: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        self.frames: list[dict[str, tuple[float, float, int]]] = []

    def wrap(self, owner: Any, attribute: str, stage: str) -> None:
        """Time every call of ``owner.attribute`` as ``stage`` (no-op when absent)."""
        found = getattr(owner, attribute, None)
        if found is None:
            return
        original: Callable[..., Any] = found

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                entry = self.frame[stage]
                entry[0] += (time.perf_counter() - wall) * 1000
                entry[1] += (time.thread_time() - cpu) * 1000
                entry[2] += 1

        setattr(owner, attribute, timed)

    def close_frame(self, total_wall: float, total_cpu: float) -> None:
        row = {k: (v[0], v[1], int(v[2])) for k, v in self.frame.items()}
        row["total"] = (total_wall, total_cpu, 1)
        self.frames.append(row)
        self.frame.clear()


def labelled(folder: Path) -> list[tuple[str, str, bool]]:
    import csv

    with (folder / "labels.csv").open(encoding="utf-8") as handle:
        return [
            (row["file"], row["identity"], row.get("masked", "0").strip() == "1")
            for row in csv.DictReader(handle)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="40 frames, one round")
    parser.add_argument("--gallery", type=int, default=100_000, help="people in the gallery")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    for folder in ("faces", "faces_masked"):
        if not (DATA / folder).is_dir():
            raise SystemExit(f"the face photos are not at {DATA / folder}")
    import dlib

    import fengchao.vision.face_pipeline as face_pipeline
    import fengchao.vision.images as images
    from fengchao.access.faces import decisive_face
    from fengchao.settings import get_settings
    from fengchao.vision import face_dlib
    from fengchao.vision.faces import face_detector_class, face_encoder_class
    from fengchao.vision.gallery import FaceGallery

    vision = get_settings().vision
    detector = face_detector_class(vision.face_detector)()
    encoder = face_encoder_class(vision.face_encoder)()
    pipeline = face_pipeline.FacePipeline(detector, encoder)
    gallery = FaceGallery(threshold=vision.face_threshold, margin=vision.face_margin)

    # Residents: each person's first unmasked photo of the bare set, enrolled as the desk does.
    people: dict[str, int] = {}
    probes: list[tuple[bytes, int | None, bool]] = []
    rows = labelled(DATA / "faces")
    seen: set[str] = set()
    for file, identity, _masked in rows:
        photo = images.decode_image((DATA / "faces" / file).read_bytes())
        if identity not in seen:
            seen.add(identity)
            try:
                enrolment = pipeline.enrol(photo, face_pipeline.QualityPolicy(largest_face=True))
            except face_pipeline.EnrolmentRefused:
                continue
            people[identity] = len(people) + 1
            gallery.add(people[identity], *enrolment.templates)
        else:
            probes.append((canvas(photo), people.get(identity), False))
    masked_probes = [
        (canvas(images.decode_image((DATA / "faces_masked" / file).read_bytes())), None, True)
        for file, _identity, masked in labelled(DATA / "faces_masked")
        if masked
    ]
    frames = probes + masked_probes
    if args.quick:
        frames = probes[::4][:28] + masked_probes[::6][:12]
    rng = np.random.default_rng(12)
    start_id = 10_000_000
    for first in range(0, max(0, args.gallery - len(people)), 5000):
        entries = []
        for person in range(first, min(args.gallery - len(people), first + 5000)):
            base = rng.normal(0, 0.085, 128).astype(np.float32)
            variants = base + rng.normal(0, 0.03, (4, 128)).astype(np.float32)
            entries.append((start_id + person, variants, np.arange(4)))
        gallery.add_many(entries)

    stages = Stages()
    # The calls that do each stage. decode_image is looked up through the module by the
    # gate, so it is wrapped there; the pieces of the detectors and the encoder on their
    # objects.
    stages.wrap(images, "decode_image", "decode")
    hog = getattr(detector, "_hog", detector if hasattr(detector, "_detector") else None)
    mtcnn = getattr(detector, "_mtcnn", None)
    if hog is not None:
        stages.wrap(hog, "detect", "detect_hog")
    if mtcnn is not None:
        stages.wrap(mtcnn, "detect", "detect_mtcnn")
    stages.wrap(encoder, "_landmarks", "align_landmarks")
    stages.wrap(face_dlib.dlib, "get_face_chip", "align_chip")
    resnet = encoder._resnet
    encoder._resnet = _Timed(resnet, stages)  # type: ignore[assignment]
    stages.wrap(pipeline, "painted", "masked_painted")
    stages.wrap(gallery, "search", "search")
    del dlib

    rounds = args.rounds or (1 if args.quick else 2)
    placed = wrong = 0
    for _ in range(rounds):
        for jpeg, who, _masked in frames:
            wall, cpu = time.perf_counter(), time.thread_time()
            image = images.decode_image(jpeg)
            boxes = face_pipeline.detect_coarse_first(detector, image)
            if boxes:
                box = boxes[decisive_face(boxes, image.shape[1], image.shape[0])]
                aligned = encoder.align(image, box)
                face = face_pipeline.Face(
                    box, aligned.landmarks, encoder.encode(aligned.chip), aligned
                )
                match = pipeline.identify(face, gallery)
                if match.person_id is not None:
                    placed += match.person_id == who
                    wrong += match.person_id != who
            stages.close_frame(
                (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000
            )

    names = [
        "decode",
        "detect_hog",
        "detect_mtcnn",
        "align_landmarks",
        "align_chip",
        "encode_resnet",
        "masked_painted",
        "search",
        "total",
    ]
    table: dict[str, dict[str, float]] = {}
    print(f"{len(frames)} frames × {rounds}, gallery {len(gallery):,} templates; load {_load()}")
    print(f"{'stage':<16}{'calls/frame':>12}{'wall p50':>10}{'wall mean':>11}{'cpu mean':>10}")
    count = len(stages.frames)
    for name in names:
        walls = [f[name][0] if name in f else 0.0 for f in stages.frames]
        cpus = [f[name][1] if name in f else 0.0 for f in stages.frames]
        calls = sum(f[name][2] for f in stages.frames if name in f) / count
        table[name] = {
            "calls_per_frame": round(calls, 2),
            "wall_p50_ms": round(float(np.percentile(walls, 50)), 2),
            "wall_p95_ms": round(float(np.percentile(walls, 95)), 2),
            "wall_mean_ms": round(float(np.mean(walls)), 2),
            "cpu_mean_ms": round(float(np.mean(cpus)), 2),
        }
        row = table[name]
        print(
            f"{name:<16}{calls:>12.2f}{row['wall_p50_ms']:>10.1f}{row['wall_mean_ms']:>11.1f}"
            f"{row['cpu_mean_ms']:>10.1f}"
        )
    total = table["total"]
    print(f"placed {placed}, wrong person {wrong}")
    emit(
        {
            "frames": count,
            "gallery_templates": len(gallery),
            "p50_ms": total["wall_p50_ms"],
            "p95_ms": total["wall_p95_ms"],
            "cpu_mean_ms": total["cpu_mean_ms"],
            "placed": placed,
            "wrong_person": wrong,
            "load_1min": os.getloadavg()[0],
            "stages": table,
        }
    )


class _Timed:
    """dlib's ResNet with ``compute_face_descriptor`` timed as ``encode_resnet``."""

    def __init__(self, resnet: Any, stages: Stages) -> None:
        self._resnet = resnet
        self._stages = stages

    def compute_face_descriptor(self, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._resnet.compute_face_descriptor(*args)
        finally:
            entry = self._stages.frame["encode_resnet"]
            entry[0] += (time.perf_counter() - wall) * 1000
            entry[1] += (time.thread_time() - cpu) * 1000
            entry[2] += 1


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
