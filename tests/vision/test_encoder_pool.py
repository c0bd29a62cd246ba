"""Descriptors computed in a worker process (dlib holds Python's lock while it computes
one) are the ones the web process would have computed, and the gate's detector finds the
same face on its shrunk copy of the frame."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fengchao.vision.face_pipeline import FacePipeline, detect_coarse_first
from tests.conftest import shared_data


def _frame(name: str) -> np.ndarray:
    """The photo on a grey 480×360 frame, as the console sends it."""
    image = Image.open(shared_data("faces", name)).convert("RGB")
    image.thumbnail((480, 360))
    frame = Image.new("RGB", (480, 360), (90, 90, 90))
    frame.paste(image, ((480 - image.width) // 2, (360 - image.height) // 2))
    return np.asarray(frame)


def test_a_pooled_encoder_gives_the_same_descriptor(face_pipeline: FacePipeline) -> None:
    from fengchao.vision.encoder_pool import PooledEncoder, shutdown_pools

    frame = _frame("angelina_jolie_01.jpg")
    face = face_pipeline.largest_face(frame)
    assert face is not None
    pooled = PooledEncoder(1)
    try:
        pooled.warm()
        chip = pooled.align(frame, face.box).chip
        assert np.allclose(pooled.encode(chip), face_pipeline.encoder.encode(chip), atol=1e-5)
    finally:
        shutdown_pools()


def test_the_gate_detects_on_a_shrunk_copy_first(face_pipeline: FacePipeline) -> None:
    frame = _frame("angelina_jolie_03.jpg")
    full = face_pipeline.detector.detect(frame)
    coarse = detect_coarse_first(face_pipeline.detector, frame)
    assert len(full) == len(coarse) == 1
    # The same face, its box within a fifth of its size (HOG steps by 8 px of the copy),
    # and the descriptors close.
    sides = ("left", "top", "right", "bottom")
    assert max(abs(getattr(full[0], s) - getattr(coarse[0], s)) for s in sides) < full[0].width / 5
    aligned = face_pipeline.encoder.align(frame, coarse[0])
    distance = np.linalg.norm(
        face_pipeline.encoder.encode(aligned.chip)
        - face_pipeline.encoder.encode(face_pipeline.encoder.align(frame, full[0]).chip)
    )
    assert distance < 0.1, distance
    blank = np.full((360, 480, 3), 90, np.uint8)
    assert detect_coarse_first(face_pipeline.detector, blank) == []
