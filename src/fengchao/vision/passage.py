"""Several frames, one passage (一次通行): the frames of one person at the gate, fused.

A person stays in view of a gate camera for about a second. Deciding on each frame
alone lets the worst frame (blur, a turned head) decide; averaging the descriptors of
the best frames moves the probe toward the person's own centre, so one passage is
decided once. Frames that cannot be one person (a second person walking in) are not
fused: the passage is refused, for the guard.

Pure: descriptors and quality figures in, a :class:`FusedPassage` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fengchao.vision.face_pipeline import SAME_PERSON, Face, laplacian_variance
from fengchao.vision.faces import Descriptor

# Frames averaged: the best three of a second's worth. More frames of the same second
# add little (they are nearly the same picture) and let blurrier ones in.
KEEP_FRAMES = 3
MESSAGES = {
    "no_frames": "没有拍到人脸：请正对镜头",
    "two_people": "画面里先后出现了两个不同的人：请一人一人通过，再看一次镜头",
}


@dataclass(frozen=True)
class PassageFrame:
    """One frame's face: its descriptor and how good the frame is (higher is better)."""

    descriptor: Descriptor
    quality: float

    @classmethod
    def of(cls, face: Face) -> PassageFrame:
        """The frame as the pipeline found it; quality is the sharpness of the aligned
        face, which is low for blur and for small faces scaled up alike."""
        return cls(face.descriptor, laplacian_variance(face.aligned.chip))


@dataclass(frozen=True)
class FusedPassage:
    """The outcome of fusing one passage.

    ``descriptor`` is the mean of the used frames (``used``: their indices in the input,
    best first), ``None`` when refused; ``refusal`` is ``no_frames`` or ``two_people``
    with ``message`` for the guard; ``spread`` is the largest distance between two of
    the frames given (0 for one frame).
    """

    descriptor: Descriptor | None
    frames: int
    used: tuple[int, ...]
    spread: float
    refusal: str | None = None

    @property
    def message(self) -> str:
        return MESSAGES[self.refusal] if self.refusal else ""


def fuse_passage(
    frames: Sequence[PassageFrame], keep: int = KEEP_FRAMES, same_person: float = SAME_PERSON
) -> FusedPassage:
    """Fuse the faces of one passage into one descriptor to search with.

    Contract: ``frames`` are the faces seen in one passage, in any order, all of one
    encoder (same dimension, finite values; a ``ValueError`` otherwise). When any two
    are further apart than ``same_person`` they are taken for two people and nothing is
    fused (``refusal="two_people"``); an empty passage is ``no_frames``. Otherwise the
    ``keep`` frames of highest quality are averaged (ties keep the input order). The
    result is searched like a single face (``FaceGallery.search``); to use the masked
    rule, fuse the painted descriptors of the same frames (``used``) the same way.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    if not frames:
        return FusedPassage(None, 0, (), 0.0, "no_frames")
    vectors = np.stack([np.asarray(f.descriptor, dtype=np.float32) for f in frames])
    if vectors.ndim != 2 or not np.isfinite(vectors).all():
        raise ValueError("frames must have descriptors of one length with finite values")
    gaps = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    spread = float(gaps.max())
    if spread > same_person:
        return FusedPassage(None, len(frames), (), spread, "two_people")
    order = sorted(range(len(frames)), key=lambda i: -frames[i].quality)[:keep]
    fused = vectors[order].mean(axis=0).astype(np.float32)
    return FusedPassage(fused, len(frames), tuple(order), spread)


def fuse_painted(passage: FusedPassage, painted: Sequence[Descriptor]) -> Descriptor | None:
    """The painted descriptors (one per input frame) of the frames the passage used,
    averaged alike: the masked rule's second view of the same passage."""
    if passage.descriptor is None:
        return None
    if len(painted) != passage.frames:
        raise ValueError(f"need one painted descriptor per frame ({passage.frames})")
    chosen = np.stack([np.asarray(painted[i], dtype=np.float32) for i in passage.used])
    fused: Descriptor = chosen.mean(axis=0).astype(np.float32)
    return fused
