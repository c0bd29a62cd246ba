"""Face pipeline per frame against dlib called directly, 1:N gallery search, two workers.

Frames: dev-set photos (../shared/data/faces) placed on a 640×480 canvas, or the
scikit-image astronaut when that folder is absent. `--quick` uses 15 frames, galleries up
to 100k and 4 s of throughput. Figures: our detect + align + encode p50/p95 and dlib's
same three calls on the same frames (the overhead ratio, goal ≤ 1.2), search time and
memory per gallery size (goal ≤ 30 ms at 1M) and for 1M templates kept as enrolments
with three masked variants searched through the masked rule, frames per second with one
and two workers.
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
from fengchao.vision.gallery import FaceGallery
from fengchao.vision.images import RGBImage, decode_image

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
) -> tuple[float, float]:
    gallery.search(*probes[0])
    times = []
    for probe, painted in probes:
        start = time.perf_counter()
        gallery.search(probe, painted)
        times.append((time.perf_counter() - start) * 1000)
    return percentiles(times)


def gallery_search(sizes: list[int]) -> dict[str, float]:
    """Photo galleries of each size, one template a person, then the largest again as
    enrolments with three masked templates each, searched through the masked rule.
    Probes: half a resident's template with noise, half strangers."""
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}

    def probes(vectors: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        near = vectors[rng.integers(len(vectors), size=20)] + 0.02 * unit_rows(rng, 20)
        return [(p, p) for p in [*near, *unit_rows(rng, 20)]]

    def measure(
        label: str, gallery: FaceGallery, cases: list[tuple[np.ndarray, np.ndarray]], masked: bool
    ) -> None:
        p50, p95 = timed_searches(
            gallery, [(p, painted if masked else None) for p, painted in cases]
        )
        mb = gallery.nbytes / 1048576
        print(f"gallery {label:>11}: search p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {mb:8.1f} MB")
        figures.update(
            {
                f"search_{label}_p50_ms": round(p50, 2),
                f"search_{label}_p95_ms": round(p95, 2),
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
    sizes = [1_000, 10_000, 100_000] + ([] if args.quick else [1_000_000])
    figures |= gallery_search(sizes)
    figures["bytes_per_template"] = 128 * 4 + 8 + 4
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
