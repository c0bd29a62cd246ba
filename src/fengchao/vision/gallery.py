"""The face gallery of one community (人脸库): descriptors in memory, searched 1:N.

A float32 matrix with one row per template and the person id of each row; a person may
have several templates (an enrolment photo and its masked variants, later photos).
Search is one vectorised distance computation over the matrix. Persistence belongs to
the access slice: the gallery is rebuilt from stored descriptors at start.

Memory: 128 float32 values (512 bytes) plus an 8-byte person id and a 4-byte squared
norm per template, 524 bytes; the matrix grows by doubling, so up to twice that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

BYTES_PER_TEMPLATE = 128 * 4 + 8 + 4


@dataclass(frozen=True)
class GalleryMatch:
    """The outcome of a search.

    ``person_id`` is set only when the best person is within ``threshold`` and the next
    different person is at least ``margin`` further away; ``refusal`` says why not
    (``empty``, ``too_far`` or ``too_close_to_call``). Distances are Euclidean.
    """

    person_id: int | None
    distance: float
    best_person_id: int | None
    second_distance: float | None
    refusal: str | None


class _Snapshot(NamedTuple):
    vectors: npt.NDArray[np.float32]
    norms: npt.NDArray[np.float32]
    ids: npt.NDArray[np.int64]


class FaceGallery:
    """Thread-safe: writers take a lock; searches read a consistent snapshot."""

    def __init__(self, dimension: int = 128, threshold: float = 0.5, margin: float = 0.04):
        self.dimension = dimension
        self.threshold = threshold
        self.margin = margin
        self._lock = threading.Lock()
        self._state = _Snapshot(
            np.zeros((0, dimension), dtype=np.float32),
            np.zeros(0, dtype=np.float32),
            np.zeros(0, dtype=np.int64),
        )

    @property
    def _vectors(self) -> npt.NDArray[np.float32]:
        return self._state.vectors

    @property
    def _ids(self) -> npt.NDArray[np.int64]:
        return self._state.ids

    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def people(self) -> int:
        return int(np.unique(self._ids).size)

    @property
    def nbytes(self) -> int:
        state = self._state
        return int(state.vectors.nbytes + state.norms.nbytes + state.ids.nbytes)

    def _check(self, descriptors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        array = np.asarray(descriptors, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dimension:
            raise ValueError(
                f"descriptor must have {self.dimension} values, got shape {np.shape(descriptors)}"
            )
        if not np.isfinite(array).all():
            raise ValueError("descriptor contains NaN or infinity")
        return array

    def add(self, person_id: int, descriptors: npt.ArrayLike) -> None:
        """Add templates for a person (keeps the ones already there)."""
        self.add_many([(person_id, descriptors)])

    def add_many(self, entries: Iterable[tuple[int, npt.ArrayLike]]) -> None:
        """Add many people at once (rebuilding from the database)."""
        blocks = [(pid, self._check(d)) for pid, d in entries]
        if not blocks:
            return
        vectors = np.concatenate([b for _, b in blocks])
        ids = np.concatenate([np.full(len(b), pid, dtype=np.int64) for pid, b in blocks])
        with self._lock:
            self._swap(
                np.concatenate([self._vectors, vectors]),
                np.concatenate([self._ids, ids]),
            )

    def replace(self, person_id: int, descriptors: npt.ArrayLike) -> None:
        """A person's templates become exactly these (re-enrolment)."""
        new = self._check(descriptors)
        with self._lock:
            keep = self._ids != person_id
            self._swap(
                np.concatenate([self._vectors[keep], new]),
                np.concatenate([self._ids[keep], np.full(len(new), person_id, dtype=np.int64)]),
            )

    def remove(self, person_id: int) -> int:
        """Remove all of a person's templates; returns how many were removed."""
        with self._lock:
            keep = self._ids != person_id
            removed = int((~keep).sum())
            if removed:
                self._swap(self._vectors[keep], self._ids[keep])
            return removed

    def _swap(self, vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]) -> None:
        # One assignment replaces the whole snapshot: a search running meanwhile keeps
        # the old one, consistent.
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._state = _Snapshot(vectors, np.einsum("ij,ij->i", vectors, vectors), ids)

    def search(self, descriptor: npt.ArrayLike) -> GalleryMatch:
        """The best person for one probe descriptor, with the threshold and margin rules."""
        probe = self._check(descriptor)[0]
        vectors, norms, ids = self._state
        if ids.size == 0:
            return GalleryMatch(None, float("inf"), None, None, "empty")
        squared = norms - 2.0 * (vectors @ probe) + float(probe @ probe)
        best = int(np.argmin(squared))
        best_id = int(ids[best])
        distance = float(np.sqrt(max(squared[best], 0.0)))
        others = squared[ids != best_id]
        second = float(np.sqrt(max(float(others.min()), 0.0))) if others.size else None
        if distance > self.threshold:
            return GalleryMatch(None, distance, best_id, second, "too_far")
        if second is not None and second - distance < self.margin:
            return GalleryMatch(None, distance, best_id, second, "too_close_to_call")
        return GalleryMatch(best_id, distance, best_id, second, None)
