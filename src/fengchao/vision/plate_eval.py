"""Evaluation of a plate reader on a labelled folder (``fengchao eval plates DIR``)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fengchao.vision.images import ImageError, decode_image
from fengchao.vision.labels import label_rows
from fengchao.vision.plate_rules import normalise_plate
from fengchao.vision.plates import PlateReader


@dataclass(frozen=True)
class PlateOutcome:
    file: str
    folder: str
    expected: str
    read: str
    ms: float
    error: str | None = None


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def read_labels(folder: Path) -> list[tuple[str, str]]:
    return [(r["file"], normalise_plate(r["plate"])) for r in label_rows(folder, "file", "plate")]


def run_plates(folder: Path, reader: PlateReader) -> list[PlateOutcome]:
    outcomes = []
    for name, expected in read_labels(folder):
        sub = Path(name).parts[0] if len(Path(name).parts) > 1 else "."
        try:
            image = decode_image((folder / name).read_bytes())
        except (ImageError, OSError) as exc:
            outcomes.append(PlateOutcome(name, sub, expected, "", 0.0, str(exc)))
            continue
        start = time.perf_counter()
        reads = reader.read(image)
        ms = (time.perf_counter() - start) * 1000
        text = next((r.text for r in reads if r.text), "")
        outcomes.append(PlateOutcome(name, sub, expected, text, ms))
    return outcomes


def summarise(outcomes: list[PlateOutcome]) -> dict[str, Any]:
    """Exact match, character accuracy (1 − CER), province accuracy, misses and latency."""
    figures = _figures(outcomes)
    by_folder: dict[str, list[PlateOutcome]] = defaultdict(list)
    for outcome in outcomes:
        by_folder[outcome.folder].append(outcome)
    figures["by_folder"] = {name: _figures(group) for name, group in sorted(by_folder.items())}
    figures["misses"] = [
        {"file": o.file, "expected": o.expected, "read": o.read, "error": o.error}
        for o in outcomes
        if o.read != o.expected
    ]
    return figures


def _figures(outcomes: list[PlateOutcome]) -> dict[str, Any]:
    n = len(outcomes)
    chars = sum(len(o.expected) for o in outcomes)
    errors = sum(edit_distance(o.read, o.expected) for o in outcomes)
    times = [o.ms for o in outcomes if o.error is None]
    return {
        "images": n,
        "exact_match": round(sum(o.read == o.expected for o in outcomes) / n, 4) if n else 0.0,
        "char_accuracy": round(max(0.0, 1 - errors / chars), 4) if chars else 0.0,
        "province_accuracy": round(sum(o.read[:1] == o.expected[:1] for o in outcomes) / n, 4)
        if n
        else 0.0,
        "no_plate": sum(1 for o in outcomes if not o.read and o.error is None),
        "unreadable_files": sum(1 for o in outcomes if o.error is not None),
        "ms_p50": round(float(np.percentile(times, 50)), 1) if times else 0.0,
        "ms_p95": round(float(np.percentile(times, 95)), 1) if times else 0.0,
    }
