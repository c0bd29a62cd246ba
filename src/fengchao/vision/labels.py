"""Labelled folders for evaluation: ``DIR/labels.csv`` beside the images it names."""

from __future__ import annotations

import csv
from pathlib import Path


def label_rows(folder: Path, *columns: str) -> list[dict[str, str]]:
    """The rows of ``folder/labels.csv``, which must have at least ``columns``."""
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found (expected columns: {','.join(columns)})")
    with labels.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not set(columns) <= set(rows[0]):
        raise ValueError(f"{labels} needs the columns {','.join(columns)}")
    return rows
