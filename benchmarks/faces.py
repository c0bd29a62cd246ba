"""Face pipeline per frame against dlib called directly, passages, 1:N search, two workers.

Frames: dev-set photos (../shared/data/faces) placed on a 640×480 canvas, or the
scikit-image astronaut when that folder is absent. `--quick` uses 15 frames, galleries up
to 100k and 4 s of throughput. Figures: our detect + align + encode p50/p95 and dlib's
same three calls on the same frames (the overhead ratio, goal ≤ 1.2); a passage of three
frames fused and searched once against one frame searched alone (ratio); search time and
memory per gallery size by codes (the shipped layout) and by a full float32 scan (the
baseline, same gallery, timed in turn on the same probes; goals ≤ 10 ms at 100k and
≤ 30 ms at 1M), also for 1M templates kept as enrolments with three masked variants
searched through the masked rule; frames per second with one and two workers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import emit, throughput

from fengchao.vision.face_dlib import HogDetector
from fengchao.vision.face_pipeline import FacePipeline
from fengchao.vision.faces import face_encoder_class
from fengchao.vision.gallery import BYTES_PER_TEMPLATE, FaceGallery
from fengchao.vision.images import RGBImage, decode_image
from fengchao.vision.passage import PassageFrame, fuse_passage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def frames(limit: int) -> list[RGBImage]:
    import cv2

    if DATA.is_dir():
        files = sorted(DATA.glob("*.jpg"))[:limit]
        photos = [decode_image(f.read_bytes()) for f in files]
    else:
        from skimage import data

        photos = [data.astronaut()] * limit
    canvas = []
    for p in photos:
        scale = 400 / max(p.shape[:2])
        small = cv2.resize(p, (round(p.shape[1] * scale), round(p.shape[0] * scale)))
        frame = np.full((480, 640, 3), 120, dtype=np.uint8)
        frame[40 : 40 + small.shape[0], 120 : 120 + small.shape[1]] = small
        canvas.append(frame)
    return canvas


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def pipeline_vs_dlib(images: list[RGBImage]) -> dict[str, float]:
    import dlib

    from fengchao.vision.face_dlib import CHIP_PADDING, CHIP_SIZE, _model

    pipeline = FacePipeline(HogDetector(), face_encoder_class("dlib")())
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(_model("shape_predictor_5_face_landmarks.dat"))
    resnet = dlib.face_recognition_model_v1(_model("dlib_face_recognition_resnet_model_v1.dat"))

    def direct(image: RGBImage) -> None:
        for rect in detector(image, 0):
            shape = predictor(image, rect)
            chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            resnet.compute_face_descriptor(chip)

    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(2):  # interleaved, so machine noise hits both alike
        for image in images:
            start = time.perf_counter()
            pipeline.faces(image)
            middle = time.perf_counter()
            direct(image)
            end = time.perf_counter()
            ours.append((middle - start) * 1000)
            theirs.append((end - middle) * 1000)
    o50, o95 = percentiles(ours)
    d50, d95 = percentiles(theirs)
    print(f"frame 640×480: ours p50 {o50:.1f} p95 {o95:.1f} ms;", end=" ")
    print(f"dlib direct p50 {d50:.1f} p95 {d95:.1f} ms")
    return {
        "frame_p50_ms": round(o50, 1),
        "frame_p95_ms": round(o95, 1),
        "dlib_direct_p50_ms": round(d50, 1),
        "dlib_direct_p95_ms": round(d95, 1),
        "overhead_ratio_p50": round(o50 / d50, 3),
    }


def unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    vectors = rng.normal(size=(rows, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def timed_searches(
    gallery: FaceGallery, probes: list[tuple[np.ndarray, np.ndarray | None]]
) -> dict[str, tuple[float, float]]:
    """p50/p95 ms by codes and by the full float32 scan, the two in turn on each probe."""
    gallery.search(*probes[0])
    times: dict[bool, list[float]] = {True: [], False: []}
    for n, (probe, painted) in enumerate(probes):
        for coarse in (True, False) if n % 2 else (False, True):
            gallery.coarse = coarse
            start = time.perf_counter()
            gallery.search(probe, painted)
            times[coarse].append((time.perf_counter() - start) * 1000)
    gallery.coarse = True
    return {"codes": percentiles(times[True]), "full": percentiles(times[False])}


def gallery_search(sizes: list[int]) -> dict[str, float]:
    """Photo galleries of each size, one template a person, then the largest again as
    enrolments with three masked templates each, searched through the masked rule.
    Probes: half a resident's template with noise, half strangers."""
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}

    def probes(vectors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        near = vectors[rng.integers(len(vectors), size=30)] + 0.02 * unit_rows(rng, 30)
        return [(p, p) for p in [*near, *unit_rows(rng, 30)]]

    def measure(
        label: str, gallery: FaceGallery, cases: list[tuple[np.ndarray, np.ndarray]], masked: bool
    ) -> None:
        timed = timed_searches(gallery, [(p, painted if masked else None) for p, painted in cases])
        (p50, p95), (f50, f95) = timed["codes"], timed["full"]
        mb = gallery.nbytes / 1048576
        print(
            f"gallery {label:>11}: search p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {mb:8.1f} MB"
            f"   full scan p50 {f50:7.2f} p95 {f95:7.2f} ms  (p95 ratio {p95 / f95:.2f})"
        )
        figures.update(
            {
                f"search_{label}_p50_ms": round(p50, 2),
                f"search_{label}_p95_ms": round(p95, 2),
                f"search_{label}_full_scan_p50_ms": round(f50, 2),
                f"search_{label}_full_scan_p95_ms": round(f95, 2),
                f"search_{label}_p95_ratio_to_full_scan": round(p95 / f95, 3),
                f"gallery_{label}_mb": round(mb, 1),
            }
        )

    def label(size: int) -> str:
        return f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"

    for size in sizes:
        vectors = unit_rows(rng, size)
        gallery = FaceGallery()
        gallery.add_many((n, vectors[n : n + 1], None) for n in range(size))
        measure(label(size), gallery, probes(vectors), masked=False)
        del gallery, vectors
    largest = sizes[-1]
    vectors = unit_rows(rng, largest)
    gallery = FaceGallery()
    gallery.add_many((n, vectors[4 * n : 4 * n + 4], np.arange(4)) for n in range(largest // 4))
    measure(f"{label(largest)}_masked", gallery, probes(vectors), masked=True)
    return figures


def passages(images: list[RGBImage]) -> dict[str, float]:
    """Deciding a passage of three frames (encode each, fuse, search once) against deciding
    one frame (encode, search), in a 10k gallery; and the fusion alone."""
    pipeline = FacePipeline(HogDetector(), face_encoder_class("dlib")())
    rng = np.random.default_rng(1)
    gallery = FaceGallery()
    gallery.add_many((n, row, None) for n, row in enumerate(unit_rows(rng, 10_000)))
    single: list[float] = []
    passage: list[float] = []
    fusing: list[float] = []
    for n in range(0, len(images) - 2):
        frames = images[n : n + 3]
        start = time.perf_counter()
        face = pipeline.largest_face(frames[0])
        if face is not None:
            gallery.search(face.descriptor)
        middle = time.perf_counter()
        found = [f for f in (pipeline.largest_face(frame) for frame in frames) if f]
        before_fuse = time.perf_counter()
        fused = fuse_passage([PassageFrame.of(f) for f in found])
        after_fuse = time.perf_counter()
        if fused.descriptor is not None:
            gallery.search(fused.descriptor)
        end = time.perf_counter()
        single.append((middle - start) * 1000)
        passage.append((end - middle) * 1000)
        fusing.append((after_fuse - before_fuse) * 1000)
    s50, s95 = percentiles(single)
    p50, p95 = percentiles(passage)
    f50, _ = percentiles(fusing)
    print(
        f"passage of 3 frames: p50 {p50:.1f} p95 {p95:.1f} ms (fusion {f50:.3f} ms); "
        f"one frame p50 {s50:.1f} p95 {s95:.1f} ms; ratio p50 {p50 / s50:.2f}"
    )
    return {
        "passage_3_frames_p50_ms": round(p50, 1),
        "passage_3_frames_p95_ms": round(p95, 1),
        "passage_fuse_p50_ms": round(f50, 3),
        "one_frame_decision_p50_ms": round(s50, 1),
        "one_frame_decision_p95_ms": round(s95, 1),
        "passage_ratio_to_one_frame_p50": round(p50 / s50, 2),
    }


_pipeline: FacePipeline | None = None


def _work(image: RGBImage) -> int:
    global _pipeline
    if _pipeline is None:
        _pipeline = FacePipeline(HogDetector(), face_encoder_class("dlib")())
    return len(_pipeline.faces(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    images = frames(15 if args.quick else 60)
    figures: dict[str, object] = {"frames": len(images)}
    figures |= pipeline_vs_dlib(images)
    figures |= passages(images)
    sizes = [1_000, 10_000, 100_000] + ([] if args.quick else [1_000_000])
    figures |= gallery_search(sizes)
    figures["bytes_per_template"] = BYTES_PER_TEMPLATE
    seconds = 4.0 if args.quick else 15.0
    one = throughput(_work, images, 1, seconds)
    two = throughput(_work, images, 2, seconds)
    print(f"frames/s: one worker {one:.1f}, two workers {two:.1f} ({two / one:.2f}×)")
    figures |= {
        "one_worker_per_s": round(one, 1),
        "two_workers_per_s": round(two, 1),
        "two_worker_speedup": round(two / one, 2),
    }
    emit(figures)


if __name__ == "__main__":
    main()
