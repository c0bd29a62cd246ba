"""dlib's face ResNet read from its .dat file and run by onnxruntime: the same descriptors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from fengchao.vision.backends import package_file
from fengchao.vision.face_dlib import DlibAligner, DlibEncoder, HogDetector
from fengchao.vision.face_onnx import (
    DIMENSION,
    MODEL_FILE,
    DlibFormatError,
    OnnxEncoder,
    architecture,
    build_onnx,
    descriptors,
    face_session,
    parse_dat,
)
from fengchao.vision.images import decode_image
from tests.conftest import shared_data

if TYPE_CHECKING:
    import onnxruntime

# dlib's match threshold is 0.6; float rounding in another order of summation moves a
# descriptor by about 1e-6. Anything near 1e-3 means a layer is computed differently.
SAME = 1e-4
PHOTOS = [
    "angelina_jolie_01.jpg",
    "angelina_jolie_02.jpg",
    "alex_lacamoire_01.jpg",
    "alex_lacamoire_02.jpg",
]


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return package_file("face_recognition_models", "models", MODEL_FILE).read_bytes()


@pytest.fixture(scope="module")
def dlib_encoder() -> DlibEncoder:
    return DlibEncoder()


@pytest.fixture(scope="module")
def session() -> Iterator[onnxruntime.InferenceSession]:
    yield face_session(1)


def test_the_whole_file_is_read_as_the_network(dat_bytes: bytes) -> None:
    parsed = parse_dat(dat_bytes)
    assert parsed.input_size == 150
    # dlib's average colour of its training faces, subtracted by input_rgb_image_sized.
    assert np.allclose(parsed.average_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    layers = architecture()
    convs = [w for layer, w in zip(layers, parsed.layers, strict=True) if layer.kind == "con"]
    assert len(convs) == 1 + 2 * 14  # the stem, and two in each of the 14 residual blocks
    assert convs[0].weights is not None and convs[0].weights.shape == (32, 3, 7, 7)
    assert convs[0].pads == (0, 0)  # dlib pads stride-2 convolutions by nothing
    assert convs[1].pads == (1, 1)
    fc = parsed.layers[-1].weights
    assert fc is not None and fc.shape == (256, DIMENSION)
    model = build_onnx(parsed)
    assert [o.name for o in model.graph.output] == ["descriptor"]


def test_a_damaged_file_is_refused(dat_bytes: bytes) -> None:
    with pytest.raises(DlibFormatError):
        parse_dat(dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(DlibFormatError):
        parse_dat(dat_bytes + b"\x00")
    damaged = dat_bytes.replace(b"con_", b"cnn_", 1)
    with pytest.raises(DlibFormatError):
        parse_dat(damaged)


def test_same_descriptor_as_dlib_on_synthetic_chips(
    dlib_encoder: DlibEncoder, session: onnxruntime.InferenceSession
) -> None:
    """Without the shared photos: noise, a gradient and flat grey, one by one and batched."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 150, dtype=np.float32)
    chips = np.stack(
        [
            rng.integers(0, 256, (150, 150, 3), dtype=np.uint8),
            np.dstack(
                [
                    np.add.outer(ramp, ramp) / 2,
                    np.tile(ramp, (150, 1)),
                    255 - ramp[:, None] * np.ones(150),
                ]
            ).astype(np.uint8),
            np.full((150, 150, 3), 128, dtype=np.uint8),
        ]
    )
    batch = descriptors(session, chips)
    assert batch.shape == (3, DIMENSION) and batch.dtype == np.float32
    for chip, from_batch in zip(chips, batch, strict=True):
        expected = dlib_encoder.encode(chip)
        alone = descriptors(session, chip)
        assert np.linalg.norm(alone - expected) < SAME
        assert np.linalg.norm(from_batch - expected) < SAME


def test_same_descriptor_as_dlib_on_photos(
    dlib_encoder: DlibEncoder, session: onnxruntime.InferenceSession
) -> None:
    detector, aligner = HogDetector(), DlibAligner()
    found = {}
    for name in PHOTOS:
        image = decode_image(shared_data("faces", name).read_bytes())
        boxes = detector.detect(image)
        assert boxes, name
        chip = aligner.align(image, boxes[0]).chip
        expected = dlib_encoder.encode(chip)
        got = descriptors(session, chip)
        assert np.linalg.norm(got - expected) < SAME, name
        found[name] = got
    # And the descriptors still tell people apart (not a constant vector).
    same = np.linalg.norm(found[PHOTOS[0]] - found[PHOTOS[1]])
    other = np.linalg.norm(found[PHOTOS[0]] - found[PHOTOS[2]])
    assert same < 0.6 < other


def test_the_onnx_encoder_keeps_the_encoder_contract() -> None:
    image = decode_image(shared_data("faces", PHOTOS[0]).read_bytes())
    box = HogDetector().detect(image)[0]
    encoder = OnnxEncoder()
    aligned = encoder.align(image, box)
    descriptor = encoder.encode(aligned.chip)
    assert descriptor.shape == (encoder.dimension,) and descriptor.dtype == np.float32
    with pytest.raises(ValueError):
        encoder.encode(aligned.chip[:100])


def test_the_settings_name_the_encoder() -> None:
    from pydantic import ValidationError

    from fengchao.settings import VisionSettings
    from fengchao.vision.faces import face_encoder_class

    assert VisionSettings().face_encoder == "onnx"
    assert VisionSettings(face_encoder="dlib").face_encoder == "dlib"
    with pytest.raises(ValidationError, match="face_encoder"):
        VisionSettings(face_encoder="resnet")
    assert face_encoder_class("onnx") is OnnxEncoder


def test_a_pooled_onnx_encoder_gives_dlibs_descriptor(dlib_encoder: DlibEncoder) -> None:
    from fengchao.vision.encoder_pool import PooledEncoder, shutdown_pools

    chip = np.random.default_rng(3).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    pooled = PooledEncoder(1, "onnx")
    try:
        pooled.warm()
        assert np.linalg.norm(pooled.encode(chip) - dlib_encoder.encode(chip)) < SAME
    finally:
        shutdown_pools()
