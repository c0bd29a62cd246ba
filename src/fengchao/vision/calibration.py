"""Choosing the face threshold and margin from labelled photos (人脸阈值标定).

A community can recalibrate on its own enrolment photos: ``fengchao eval faces DIR
--calibrate``. The gate searches 1:N, so the photos are replayed as the gate would see
them, not as pairs:

- *residents let in* (the acceptance): every ordered pair of bare-faced photos of one
  person, one enrolled and the other at the gate, searched against the enrolled one and
  every photo of everyone else; accepted when it is within the threshold and the next
  person is at least the margin further away;
- *residents taken for someone else*: every photo, masked ones too, with its person
  enrolled through their other bare-faced photos;
- *strangers let in*: every photo, masked ones too, with its person left out.

The operating point is the one with the highest acceptance and no false accept of
either kind, among the points whose neighbours one step looser (threshold one step up,
margin one step down) have none either: a point on the very edge of the first false
accept would be a constant fitted to these photos, not a rule. Ties go to the lower
threshold, then to the larger margin (safety at no cost on these photos).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from fengchao.vision.faces import Descriptor

STEP = 0.01
THRESHOLDS = np.round(np.arange(0.30, 0.80 + STEP / 2, STEP), 2)
MARGINS = np.round(np.arange(0.0, 0.15 + STEP / 2, STEP), 2)


class CalibrationRefused(ValueError):
    """Photos that cannot calibrate; ``code`` is stable, ``message`` says why and what to add."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class LabelledFace:
    """One photo's descriptor with its person and whether a mask is worn."""

    identity: str
    masked: bool
    descriptor: Descriptor


@dataclass(frozen=True)
class Calibration:
    """The chosen operating point and the figures behind it."""

    threshold: float
    margin: float
    acceptance: float
    people: int
    photos: int
    masked_photos: int
    people_with_two_photos: int
    genuine_attempts: int
    impostor_attempts: int
    first_false_accept_threshold: float | None
    far_upper_95: float
    acceptance_by_threshold: dict[str, float]

    @property
    def asked_again_per_100(self) -> int:
        """Out of 100 residents at the gate (one bare-faced look each), how many are not
        recognised and asked to look again."""
        return round(100 * (1 - self.acceptance))

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"asked_again_per_100": self.asked_again_per_100}


def calibrate(faces: Sequence[LabelledFace]) -> Calibration:
    """The operating point for these photos; raises :class:`CalibrationRefused` with code
    ``one_person``, ``one_photo_per_person`` or ``no_safe_point``."""
    identities = sorted({f.identity for f in faces})
    if len(identities) < 2:
        raise CalibrationRefused(
            "one_person",
            "只有一个人的照片：无法测出把别人认成此人的风险，至少需要两个人（最好几十人）",
        )
    bare = [f for f in faces if not f.masked]
    counts = {name: sum(f.identity == name for f in bare) for name in identities}
    with_two = sum(n >= 2 for n in counts.values())
    if with_two == 0:
        raise CalibrationRefused(
            "one_photo_per_person",
            "每人只有一张不戴口罩的照片：无法测出同一个人再来时被认出的比例。"
            "请为其中一些人各加一张不同时间拍的照片（每人两张以上）",
        )
    views = _Views(faces, bare, identities)
    accepted, resident_fa, stranger_fa = views.grid()
    safe = (resident_fa == 0) & (stranger_fa == 0)
    # One step looser must be safe too: threshold up (next row), margin down (previous column).
    looser_t = np.vstack([safe[1:], np.zeros_like(safe[:1])])
    looser_m = np.hstack([np.ones_like(safe[:, :1]), safe[:, :-1]])
    usable = safe & looser_t & looser_m
    if not usable.any():
        raise CalibrationRefused(
            "no_safe_point",
            f"阈值低到 {THRESHOLDS[0]:.2f} 仍有人被认错：请检查照片的姓名标注是否有误",
        )
    acceptance = np.where(usable, accepted, -1.0)
    best = acceptance.max()
    rows, cols = np.nonzero(acceptance == best)
    row = rows.min()
    col = cols[rows == row].max()
    unsafe_rows = np.flatnonzero(~safe[:, col])
    first_unsafe = unsafe_rows[unsafe_rows > row]
    return Calibration(
        threshold=float(THRESHOLDS[row]),
        margin=float(MARGINS[col]),
        acceptance=round(float(best), 4),
        people=len(identities),
        photos=len(faces),
        masked_photos=len(faces) - len(bare),
        people_with_two_photos=with_two,
        genuine_attempts=views.genuine_attempts,
        impostor_attempts=views.impostor_attempts,
        first_false_accept_threshold=(
            float(THRESHOLDS[first_unsafe[0]]) if first_unsafe.size else None
        ),
        # No false accept in n attempts: the rate is below 3/n with 95 % confidence.
        far_upper_95=round(3 / views.impostor_attempts, 6),
        acceptance_by_threshold={
            f"{t:.2f}": round(float(accepted[i, col]), 4)
            for i, t in enumerate(THRESHOLDS)
            if 0.40 <= t <= 0.60
        },
    )


class _Views:
    """Distances from every photo to every bare-faced photo, by person."""

    def __init__(
        self, faces: Sequence[LabelledFace], bare: Sequence[LabelledFace], identities: list[str]
    ) -> None:
        index = {name: n for n, name in enumerate(identities)}
        probes = np.stack([f.descriptor for f in faces]).astype(np.float64)
        gallery = np.stack([f.descriptor for f in bare]).astype(np.float64)
        distance = np.linalg.norm(probes[:, None, :] - gallery[None, :, :], axis=2)
        for i, face in enumerate(faces):  # a photo is never its own template
            for j, other in enumerate(bare):
                if other is face:
                    distance[i, j] = np.inf
        owner = np.array([index[f.identity] for f in bare])
        probe_owner = np.array([index[f.identity] for f in faces])
        # Nearest template of each person, for each probe.
        by_person = np.full((len(faces), len(identities)), np.inf)
        for person in range(len(identities)):
            columns = owner == person
            if columns.any():
                by_person[:, person] = distance[:, columns].min(axis=1)
        rows = np.arange(len(faces))
        self.own = by_person[rows, probe_owner]
        others = by_person.copy()
        others[rows, probe_owner] = np.inf
        others.sort(axis=1)
        self.first, self.second = others[:, 0], others[:, 1]
        # Genuine attempts: a bare-faced probe and one other photo of the same person.
        probe_rows, template_columns = np.nonzero(
            (probe_owner[:, None] == owner[None, :]) & np.isfinite(distance)
        )
        bare_probe = np.array([not f.masked for f in faces])
        keep = bare_probe[probe_rows]
        self.genuine: npt.NDArray[np.float64] = distance[probe_rows[keep], template_columns[keep]]
        self.genuine_first = self.first[probe_rows[keep]]
        self.genuine_attempts = int(keep.sum())
        self.impostor_attempts = 2 * len(faces)

    def grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Acceptance, residents taken for someone else, strangers let in: threshold × margin."""
        t = THRESHOLDS[:, None, None]
        m = MARGINS[None, :, None]
        genuine, first = self.genuine[None, None], self.genuine_first[None, None]
        accepted = ((genuine <= t) & (first - genuine >= m)).mean(axis=2)
        own, nearest, second = self.own[None, None], self.first[None, None], self.second[None, None]
        resident = (
            (nearest < own) & (nearest <= t) & (np.minimum(own, second) - nearest >= m)
        ).sum(axis=2)
        stranger = ((nearest <= t) & (second - nearest >= m)).sum(axis=2)
        return accepted, resident, stranger
