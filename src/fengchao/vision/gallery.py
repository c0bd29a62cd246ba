"""The face gallery of one community (人脸库): descriptors in memory, searched 1:N.

Each template is a descriptor with its person id and its *kind*: ``PHOTO`` for the
enrolment photo as taken, ``k`` in 1..9 for the same photo with synthetic mask ``k``
drawn on it (口罩模板), ``MASKED_PHOTO`` for a photo taken with the resident's own mask
on (戴口罩录入照). Each kind is a block of its own, so the everyday search reads only the
photos. A person may have several templates. Persistence belongs to the access slice:
the gallery is rebuilt from stored descriptors at start.

Layout: every block keeps its float32 descriptors (the exact values) and, beside them,
one byte per value (``SCALE`` steps around zero). A search scans the bytes for the
``CANDIDATES`` nearest templates, measures those exactly in float32, and proves from the
rounding error of each template that no other template could be nearer than the best
and the runner-up; when it cannot prove it, it scans the float32 values in full. The
answer is therefore always the one of a full float32 scan, for a quarter of the memory
read. Memory: 512 bytes of float32, 128 of codes, an 8-byte person id and two 4-byte
figures (squared norm, rounding error) per template, 656 bytes; an enrolment with three
synthetic masks keeps four templates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

BYTES_PER_TEMPLATE = 128 * 4 + 128 + 8 + 4 + 4
PHOTO = 0
# Kinds 1..9 are synthetic masks (face_pipeline.MASK_COLOURS); a real masked photo is 10,
# so that a new mask colour never takes the number of a kind already stored.
MASKED_PHOTO = 10
# One code step: dlib's values lie within ±0.55, so ±0.64 holds them; a value beyond is
# clipped, and its template's larger rounding error is kept, so results stay exact.
SCALE = 1 / 200
# Nearest templates by code measured exactly; enough that the proof almost never fails
# (random 128-d vectors, the hardest case: no fallback in 60 searches at 100k or 1M).
CANDIDATES = 64
# Below this many templates of a kind (16 MB of float32) a full scan is as fast as the
# codes plus the exact look at the candidates (measured: 20k 0.13 against 0.24 ms p50).
CODES_FROM = 32_768

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
Codes = npt.NDArray[np.uint8]


def quantize(vectors: Vectors) -> tuple[Codes, Vectors]:
    """Codes of float32 rows and each row's rounding error (Euclidean, in descriptor units)."""
    steps = np.clip(np.rint(vectors / SCALE), -128, 127)
    codes = (steps + 128).astype(np.uint8)
    errors = np.linalg.norm(vectors - steps.astype(np.float32) * SCALE, axis=1)
    return codes, errors.astype(np.float32)


@dataclass(frozen=True)
class MaskedRule:
    """When a probe that the photos alone do not place may still be accepted (戴口罩识别).

    dlib's descriptor of a masked face lies between the person's photo and the photos of
    look-alikes, so one distance is not enough: searched like photos, masked templates
    let 46 of 110 masked residents in on ``faces_masked`` but also 1 as someone else
    (threshold 0.45). A masked probe is accepted only when two views agree on the person.
    First, where the resident was enrolled with their own mask on (``MASKED_PHOTO``):

    - *real mask*: the probe against the real masked templates within
      ``real_threshold`` (dlib's own same-person bound), and
    - *both masked*: the probe with mask ``painted_kind`` painted over its own mask,
      against the synthetic templates of that kind, on the same person within
      ``painted_threshold`` and at least ``painted_margin`` nearer than the next person.

    Then, for everyone, the synthetic rule:

    - *as seen*: the probe against every template within ``seen_threshold``, and against
      that person's photos (or real masked photos) within ``photo_threshold``;
    - *both masked*, as above.

    A match by either says ``masked=True``, so the gate can treat it with more care.
    On ``faces_masked`` with the first masked photo of each person enrolled too
    (``eval faces``: ``masked_enrolled``): 37 of 80 masked probes placed, none as someone
    else, no stranger let in; photos and synthetic masks alone place 32 of the same probes.
    """

    seen_threshold: float = 0.5
    photo_threshold: float = 0.6
    painted_threshold: float = 0.42
    painted_margin: float = 0.06
    painted_kind: int = 2
    real_threshold: float = 0.6


@dataclass(frozen=True)
class GalleryMatch:
    """The outcome of a search.

    ``person_id`` is set only when the best person is within ``threshold`` and the next
    different person is at least ``margin`` further away, or when the masked rule places
    the probe (``masked`` is then true: the gate may want a guard to glance at the photo);
    ``refusal`` says why not: ``empty``, ``too_far``, ``too_close_to_call``, or ``masked``
    (the probe is nearer a real masked template than any photo, so the photo threshold
    does not decide it, and the masked rule did not place it or was not asked).
    Distances are Euclidean, from the probe to the photos (to any template when masked).
    """

    person_id: int | None
    distance: float
    best_person_id: int | None
    second_distance: float | None
    refusal: str | None
    masked: bool = False


class _Block(NamedTuple):
    """The templates of one kind: exact values, their codes, and what the codes lose."""

    vectors: Vectors
    norms: Vectors
    ids: Ids
    codes: Codes
    errors: Vectors
    max_error: float

    @classmethod
    def of(cls, vectors: Vectors, ids: Ids) -> _Block:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        codes, errors = quantize(vectors)
        norms = np.einsum("ij,ij->i", vectors, vectors)
        return cls(vectors, norms, ids, codes, errors, float(errors.max(initial=0.0)))

    @property
    def nbytes(self) -> int:
        arrays = (self.vectors, self.norms, self.ids, self.codes, self.errors)
        return sum(a.nbytes for a in arrays)

    def squared(self, probe: Vectors) -> Vectors:
        distances = self.vectors @ probe
        distances *= -2.0
        distances += self.norms
        distances += float(probe @ probe)
        return distances

    def nearest(self, probe: Vectors, coarse: bool = True) -> _Nearest:
        """The best person and the runner-up; by the codes when that is provably exact."""
        if coarse and self.ids.size >= max(CODES_FROM, CANDIDATES + 1):
            found = self._nearest_by_codes(probe)
            if found is not None:
                return found
        return _Nearest.of(self.ids, self.squared(probe))

    def _nearest_by_codes(self, probe: Vectors) -> _Nearest | None:
        code, error = quantize(probe[None, :])
        coded, index = cv2.batchDistance(
            code, self.codes, cv2.CV_32S, normType=cv2.NORM_L2SQR, K=CANDIDATES
        )
        rows = index[0]
        exact = self.norms[rows] - 2.0 * (self.vectors[rows] @ probe) + float(probe @ probe)
        found = _Nearest.of(self.ids[rows], exact.astype(np.float32))
        if not np.isfinite(found.second_squared):
            return None
        # Any template left out is at least this far by its code, so at least this far
        # exactly, less both rounding errors (the triangle inequality).
        floor = float(np.sqrt(coded.max())) * SCALE - float(error[0]) - self.max_error
        return found if floor > _root(found.second_squared) else None

    def person_squared(self, probe: Vectors, person: int) -> float:
        """The squared distance from the probe to the nearest template of one person."""
        rows = np.flatnonzero(self.ids == person)
        if rows.size == 0:
            return float("inf")
        exact = self.norms[rows] - 2.0 * (self.vectors[rows] @ probe) + float(probe @ probe)
        return float(exact.min())


class _Nearest(NamedTuple):
    """The best person in a view, and the squared distance of the next different person."""

    person_id: int
    squared: float
    second_squared: float

    @classmethod
    def of(cls, ids: Ids, squared: Vectors) -> _Nearest:
        best = int(np.argmin(squared))
        person = int(ids[best])
        others = squared[ids != person]
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
        coarse: bool = True,
    ):
        self.dimension = dimension
        self.threshold = threshold
        self.margin = margin
        self.masked = masked
        # False: every search scans the float32 values in full (the baseline the
        # benchmark compares with; the answers are the same).
        self.coarse = coarse
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
        return sum(block.nbytes for block in self._blocks.values())

    @property
    def has_masked_templates(self) -> bool:
        """Whether the masked rule can run: it needs the synthetic templates it paints like."""
        return self.masked is not None and self.masked.painted_kind in self._blocks

    @property
    def has_real_masked_templates(self) -> bool:
        return MASKED_PHOTO in self._blocks

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
        self,
        descriptor: npt.ArrayLike,
        painted: npt.ArrayLike | Callable[[], npt.ArrayLike] | None = None,
    ) -> GalleryMatch:
        """The best person for a probe: its photos first, then the masked rule.

        A probe nearer a real masked template than any photo is taken for a masked face
        and never decided by the photo threshold (a masked stranger's nearest photo can
        be within it). ``painted`` is the probe's descriptor with mask
        ``masked.painted_kind`` drawn on it, or a function that computes it; without it
        (or without synthetic masked templates) the masked rule does not run. A function
        is called only when the rule could still accept the probe once it has the painted
        view (one more descriptor, the dearest step of a frame: a stranger far from every
        template is refused without it); the answer is the same either way.
        """
        probe = self._check(descriptor)[0]
        blocks = self._blocks
        photos = blocks.get(PHOTO)
        if photos is None:
            return GalleryMatch(None, float("inf"), None, None, "empty")
        nearest = photos.nearest(probe, self.coarse)
        real = blocks.get(MASKED_PHOTO)
        real_nearest = real.nearest(probe, self.coarse) if real is not None else None
        looks_masked = real_nearest is not None and real_nearest.squared < nearest.squared
        if looks_masked:
            refusal = "masked"
        elif nearest.distance > self.threshold:
            refusal = "too_far"
        elif nearest.margin < self.margin:
            refusal = "too_close_to_call"
        else:
            return nearest.match(nearest.person_id)
        refused = nearest.match(None, refusal)
        rule = self.masked
        synthetic = blocks.get(rule.painted_kind) if rule is not None else None
        if painted is None or rule is None or synthetic is None:
            return refused
        # Both ways in need the painted view to agree; each also has a condition on the
        # probe as seen, checked first so that the painted view is computed only when
        # one of them holds.
        by_real = real_nearest is not None and real_nearest.distance <= rule.real_threshold
        seen = nearest
        for kind, block in blocks.items():
            if kind == MASKED_PHOTO and real_nearest is not None:
                seen = seen.merge(real_nearest)
            elif kind != PHOTO:
                seen = seen.merge(block.nearest(probe, self.coarse))
        person = seen.person_id
        by_seen = False
        if seen.distance <= rule.seen_threshold:
            own = photos.person_squared(probe, person)
            if real is not None:
                own = min(own, real.person_squared(probe, person))
            by_seen = _root(own) <= rule.photo_threshold
        if not by_real and not by_seen:
            return refused
        view = painted() if callable(painted) else painted
        both_masked = synthetic.nearest(self._check(view)[0], self.coarse)
        painted_agrees = (
            both_masked.distance <= rule.painted_threshold
            and both_masked.margin >= rule.painted_margin
        )
        if not painted_agrees:
            return refused
        # The resident's own mask first: the real masked templates and the painted view
        # must name the same person.
        if by_real and real_nearest is not None and real_nearest.person_id == both_masked.person_id:
            return real_nearest.match(real_nearest.person_id, masked=True)
        if by_seen and both_masked.person_id == person:
            return seen.match(person, masked=True)
        return refused
