"""The face gallery of one community (人脸库): descriptors in memory, searched 1:N.

Each template is a descriptor with its person id and its *kind*: ``PHOTO`` for the
enrolment photo as taken, ``k ≥ 1`` for the same photo with synthetic mask ``k`` drawn
on it (口罩模板). Each kind is a float32 matrix of its own, so the everyday search reads
only the photos. A person may have several templates. Persistence belongs to the access
slice: the gallery is rebuilt from stored descriptors at start.

Memory: 128 float32 values (512 bytes) plus an 8-byte person id and a 4-byte squared
norm per template, 524 bytes; an enrolment with three masks keeps four templates.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

BYTES_PER_TEMPLATE = 128 * 4 + 8 + 4
PHOTO = 0

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MaskedRule:
    """When a probe that the photos alone do not place may still be accepted (戴口罩识别).

    dlib's descriptor of a masked face lies between the person's photo and the photos of
    look-alikes, so one distance is not enough: searched like photos, masked templates
    let 46 of 110 masked residents in on ``faces_masked`` but also 1 as someone else
    (threshold 0.45). A masked probe is accepted only when two views agree on the person:

    - *as seen*: the probe against every template, photos and masked ones, within
      ``seen_threshold``, and against that person's photos within ``photo_threshold``;
    - *both masked*: the probe with mask ``painted_kind`` painted over its own mask,
      against the templates of that kind, within ``painted_threshold`` and at least
      ``painted_margin`` nearer than the next person — the upper faces compared alike.

    Measured with these values (``fengchao eval faces``): 43 of 110 masked residents
    in, none as someone else; of 110 masked photos of people not enrolled, 2 let in as
    a look-alike — which is why a masked match says so.
    """

    seen_threshold: float = 0.5
    photo_threshold: float = 0.6
    painted_threshold: float = 0.42
    painted_margin: float = 0.06
    painted_kind: int = 2


@dataclass(frozen=True)
class GalleryMatch:
    """The outcome of a search.

    ``person_id`` is set only when the best person is within ``threshold`` and the next
    different person is at least ``margin`` further away, or when the masked rule places
    the probe (``masked`` is then true: the gate may want a guard to glance at the photo);
    ``refusal`` says why not (``empty``, ``too_far`` or ``too_close_to_call``).
    Distances are Euclidean, from the probe to the photos (to any template when masked).
    """

    person_id: int | None
    distance: float
    best_person_id: int | None
    second_distance: float | None
    refusal: str | None
    masked: bool = False


class _Block(NamedTuple):
    """The templates of one kind."""

    vectors: Vectors
    norms: Vectors
    ids: Ids

    @classmethod
    def of(cls, vectors: Vectors, ids: Ids) -> _Block:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return cls(vectors, np.einsum("ij,ij->i", vectors, vectors), ids)

    def squared(self, probe: Vectors) -> Vectors:
        distances = self.vectors @ probe
        distances *= -2.0
        distances += self.norms
        distances += float(probe @ probe)
        return distances


class _Nearest(NamedTuple):
    """The best person in a view, and the squared distance of the next different person."""

    person_id: int
    squared: float
    second_squared: float

    @classmethod
    def of(cls, block: _Block, squared: Vectors) -> _Nearest:
        best = int(np.argmin(squared))
        person = int(block.ids[best])
        others = squared[block.ids != person]
        return cls(person, float(squared[best]), float(others.min()) if others.size else np.inf)

    @property
    def distance(self) -> float:
        return _root(self.squared)

    @property
    def margin(self) -> float:
        return _root(self.second_squared) - self.distance

    def match(
        self, accepted: int | None, refusal: str | None = None, masked: bool = False
    ) -> GalleryMatch:
        second = _root(self.second_squared) if np.isfinite(self.second_squared) else None
        return GalleryMatch(accepted, self.distance, self.person_id, second, refusal, masked)

    def merge(self, other: _Nearest) -> _Nearest:
        """The nearest over two sets of templates."""
        first, second = (self, other) if self.squared <= other.squared else (other, self)
        runner_up = second.squared if second.person_id != first.person_id else np.inf
        return _Nearest(
            first.person_id,
            first.squared,
            min(first.second_squared, runner_up, second.second_squared),
        )


def _root(squared: float) -> float:
    return float(np.sqrt(max(squared, 0.0)))


class FaceGallery:
    """Thread-safe: writers take a lock; searches read a consistent snapshot."""

    def __init__(
        self,
        dimension: int = 128,
        threshold: float = 0.5,
        margin: float = 0.04,
        masked: MaskedRule | None = MaskedRule(),
    ):
        self.dimension = dimension
        self.threshold = threshold
        self.margin = margin
        self.masked = masked
        self._lock = threading.Lock()
        self._blocks: Mapping[int, _Block] = {}

    def __len__(self) -> int:
        return sum(block.ids.size for block in self._blocks.values())

    @property
    def people(self) -> int:
        blocks = list(self._blocks.values())
        return int(np.unique(np.concatenate([b.ids for b in blocks])).size) if blocks else 0

    @property
    def nbytes(self) -> int:
        return sum(b.vectors.nbytes + b.norms.nbytes + b.ids.nbytes for b in self._blocks.values())

    @property
    def has_masked_templates(self) -> bool:
        return self.masked is not None and self.masked.painted_kind in self._blocks

    def _check(self, descriptors: npt.ArrayLike) -> Vectors:
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

    def _kinds(self, kinds: npt.ArrayLike | None, count: int) -> Ids:
        if kinds is None:
            return np.full(count, PHOTO, dtype=np.int64)
        array = np.asarray(kinds, dtype=np.int64).reshape(-1)
        if array.size != count or (array < 0).any():
            raise ValueError(f"kinds must be {count} values ≥ 0, got {np.asarray(kinds)!r}")
        return array

    def add(
        self, person_id: int, descriptors: npt.ArrayLike, kinds: npt.ArrayLike | None = None
    ) -> None:
        """Add templates for a person (keeps the ones already there); all photos by default."""
        self.add_many([(person_id, descriptors, kinds)])

    def add_many(self, entries: Iterable[tuple[int, npt.ArrayLike, npt.ArrayLike | None]]) -> None:
        """Add many people at once (rebuilding from the database): (person, descriptors, kinds)."""
        rows = self._rows(entries)
        if rows[1].size:
            with self._lock:
                self._rebuild(rows)

    def replace(
        self, person_id: int, descriptors: npt.ArrayLike, kinds: npt.ArrayLike | None = None
    ) -> None:
        """A person's templates become exactly these (re-enrolment)."""
        rows = self._rows([(person_id, descriptors, kinds)])
        with self._lock:
            self._rebuild(rows, drop=person_id)

    def remove(self, person_id: int) -> int:
        """Remove all of a person's templates; returns how many were removed."""
        with self._lock:
            before = len(self)
            self._rebuild(self._rows([]), drop=person_id)
            return before - len(self)

    def _rows(
        self, entries: Iterable[tuple[int, npt.ArrayLike, npt.ArrayLike | None]]
    ) -> tuple[Vectors, Ids, Ids]:
        checked = []
        for person_id, descriptors, kinds in entries:
            vectors = self._check(descriptors)
            checked.append((person_id, vectors, self._kinds(kinds, len(vectors))))
        if not checked:
            return (
                np.zeros((0, self.dimension), np.float32),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
        return (
            np.concatenate([v for _, v, _ in checked]),
            np.concatenate([np.full(len(v), pid, dtype=np.int64) for pid, v, _ in checked]),
            np.concatenate([k for _, _, k in checked]),
        )

    def _rebuild(self, rows: tuple[Vectors, Ids, Ids], drop: int | None = None) -> None:
        """Every block with ``drop``'s templates left out and ``rows`` added."""
        vectors, ids, kinds = rows
        blocks: dict[int, _Block] = {}
        for kind in sorted(set(self._blocks) | set(np.unique(kinds).tolist())):
            old = self._blocks.get(kind)
            old_vectors, old_ids = (old.vectors, old.ids) if old else (vectors[:0], ids[:0])
            if drop is not None:
                kept = old_ids != drop
                old_vectors, old_ids = old_vectors[kept], old_ids[kept]
            new = kinds == kind
            block_ids = np.concatenate([old_ids, ids[new]])
            if block_ids.size:
                blocks[kind] = _Block.of(np.concatenate([old_vectors, vectors[new]]), block_ids)
        # One assignment replaces every block at once: a search running meanwhile keeps
        # the old mapping, consistent.
        self._blocks = blocks

    def search(
        self, descriptor: npt.ArrayLike, painted: npt.ArrayLike | None = None
    ) -> GalleryMatch:
        """The best person for a probe: its photos first, then the masked rule.

        ``painted`` is the probe's descriptor with mask ``masked.painted_kind`` drawn on
        it; without it (or without masked templates) only the photos are searched.
        """
        probe = self._check(descriptor)[0]
        blocks = self._blocks
        photos = blocks.get(PHOTO)
        if photos is None:
            return GalleryMatch(None, float("inf"), None, None, "empty")
        photo_squared = photos.squared(probe)
        nearest = _Nearest.of(photos, photo_squared)
        if nearest.distance <= self.threshold and nearest.margin >= self.margin:
            return nearest.match(nearest.person_id)
        refused = nearest.match(
            None, "too_far" if nearest.distance > self.threshold else "too_close_to_call"
        )
        rule = self.masked
        if painted is None or rule is None or rule.painted_kind not in blocks:
            return refused
        painted_probe = self._check(painted)[0]
        seen = nearest
        for kind, block in blocks.items():
            if kind != PHOTO:
                seen = seen.merge(_Nearest.of(block, block.squared(probe)))
        masked_block = blocks[rule.painted_kind]
        both_masked = _Nearest.of(masked_block, masked_block.squared(painted_probe))
        person = seen.person_id
        photo_distance = _root(float(photo_squared[photos.ids == person].min(initial=np.inf)))
        if (
            both_masked.person_id == person
            and seen.distance <= rule.seen_threshold
            and photo_distance <= rule.photo_threshold
            and both_masked.distance <= rule.painted_threshold
            and both_masked.margin >= rule.painted_margin
        ):
            return seen.match(person, masked=True)
        return refused
