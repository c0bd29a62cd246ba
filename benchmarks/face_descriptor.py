"""The face descriptor alone: dlib's ResNet (``dlib-bin``) against the same network run
by onnxruntime (``vision/face_onnx.py``), on the same chips, interleaved, in one run.

Chips: the largest face of every photo of ../shared/data/faces (HOG, MTCNN when HOG finds
none; dlib's 5-point alignment, 150×150, padding 0.25), made before any timing. Then, for
each round and each chip, the three encoders in a rotating order: dlib, onnxruntime with
one intra-op thread, with two. Wall-clock milliseconds per descriptor (median and mean)
and the process's CPU milliseconds (all threads). Distances: the Euclidean distance
between dlib's descriptor and each ONNX descriptor of the same chip (dlib's match
threshold is 0.6). The last line is one JSON object: ``dlib_ms``, ``onnx_ms`` (one thread),
``onnx2_ms``, ``ratio`` (dlib_ms / onnx_ms), ``ratio2``, ``max_distance``,
``mean_distance`` and the counts.

    .venv/bin/python benchmarks/face_descriptor.py [--rounds 2] [--limit 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import emit

from fengchao.vision.face_dlib import DlibAligner, DlibEncoder
from fengchao.vision.face_onnx import descriptors, face_session
from fengchao.vision.faces import face_detector_class
from fengchao.vision.images import decode_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def chips(folder: Path, limit: int) -> tuple[list[np.ndarray], int]:
    """The aligned chip of each photo's largest face, and how many photos were read."""
    detector = face_detector_class("hog+mtcnn")()
    aligner = DlibAligner()
    photos = sorted(folder.glob("*.jpg"))
    if limit:
        photos = photos[:limit]
    found = []
    for photo in photos:
        image = decode_image(photo.read_bytes())
        boxes = detector.detect(image)
        if boxes:
            found.append(aligner.align(image, boxes[0]).chip)
    return found, len(photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DATA / "faces")
    parser.add_argument("--rounds", type=int, default=2, help="Passes over the chips.")
    parser.add_argument("--limit", type=int, default=0, help="At most this many photos.")
    args = parser.parse_args()

    faces, photos = chips(args.folder, args.limit)
    if not faces:
        raise SystemExit(f"no faces found under {args.folder}")
    dlib_encoder = DlibEncoder()
    sessions = {1: face_session(1), 2: face_session(2)}
    encoders: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "dlib": dlib_encoder.encode,
        "onnx": lambda chip: descriptors(sessions[1], chip),
        "onnx2": lambda chip: descriptors(sessions[2], chip),
    }
    for encode in encoders.values():  # first runs allocate; not timed
        encode(faces[0])

    wall: dict[str, list[float]] = {name: [] for name in encoders}
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    distances: dict[str, list[float]] = {"onnx": [], "onnx2": []}
    names = list(encoders)
    turn = 0
    for round_index in range(args.rounds):
        for chip in faces:
            order = names[turn % 3 :] + names[: turn % 3]
            turn += 1
            vectors = {}
            for name in order:
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                vectors[name] = encoders[name](chip)
                wall[name].append((time.perf_counter() - start_wall) * 1000)
                cpu[name].append((time.process_time() - start_cpu) * 1000)
            if round_index == 0:
                for name in distances:
                    distances[name].append(float(np.linalg.norm(vectors[name] - vectors["dlib"])))

    print(f"{len(faces)} chips from {photos} photos, {args.rounds} rounds, interleaved")
    print(f"{'encoder':<8} {'median ms':>10} {'mean ms':>9} {'cpu ms':>8} {'max dist':>10}")
    for name in names:
        far = f"{max(distances[name]):.2e}" if name in distances else "-"
        print(
            f"{name:<8} {statistics.median(wall[name]):>10.2f} {statistics.fmean(wall[name]):>9.2f}"
            f" {statistics.fmean(cpu[name]):>8.2f} {far:>10}"
        )
    dlib_ms = statistics.median(wall["dlib"])
    onnx_ms = statistics.median(wall["onnx"])
    onnx2_ms = statistics.median(wall["onnx2"])
    emit(
        {
            "dlib_ms": round(dlib_ms, 2),
            "onnx_ms": round(onnx_ms, 2),
            "onnx2_ms": round(onnx2_ms, 2),
            "ratio": round(dlib_ms / onnx_ms, 2),
            "ratio2": round(dlib_ms / onnx2_ms, 2),
            "dlib_cpu_ms": round(statistics.fmean(cpu["dlib"]), 2),
            "onnx_cpu_ms": round(statistics.fmean(cpu["onnx"]), 2),
            "onnx2_cpu_ms": round(statistics.fmean(cpu["onnx2"]), 2),
            "max_distance": max(distances["onnx"]),
            "mean_distance": statistics.fmean(distances["onnx"]),
            "max_distance_2_threads": max(distances["onnx2"]),
            "chips": len(faces),
            "photos": photos,
            "rounds": args.rounds,
        }
    )


if __name__ == "__main__":
    main()
