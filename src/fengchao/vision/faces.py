"""Faces: what detectors and encoders return, their contracts and their registries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fengchao.vision.backends import load_backend
from fengchao.vision.images import RGBImage

Descriptor = npt.NDArray[np.float32]
"""A face descriptor: float32 vector of the encoder's dimension (128 for dlib)."""


@dataclass(frozen=True)
class FaceBox:
    """A face found in a frame, in frame pixels (right and bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)


class FaceDetector(ABC):
    """Finds faces in a frame.

    ``detect`` takes an RGB frame and returns every face found, largest first; an empty
    list when there is none. It does not raise for a frame without faces. A detector is
    not shared between threads: give each worker its own.
    """

    @abstractmethod
    def detect(self, image: RGBImage) -> list[FaceBox]: ...


@dataclass(frozen=True)
class AlignedFace:
    """A face warped to the encoder's canonical pose, with its five landmarks in the frame."""

    chip: RGBImage
    landmarks: npt.NDArray[np.float32]


class FaceEncoder(ABC):
    """Turns a found face into a descriptor; distance between descriptors is Euclidean.

    ``align`` places the landmarks in the box and returns the aligned chip; ``encode``
    returns the descriptor of an aligned chip (a chip may be edited first, e.g. to draw a
    mask). Both raise ``ValueError`` for a box outside the frame. Not thread-safe.
    """

    dimension: int

    @abstractmethod
    def align(self, image: RGBImage, box: FaceBox) -> AlignedFace: ...

    @abstractmethod
    def encode(self, chip: RGBImage) -> Descriptor: ...


FACE_DETECTORS: dict[str, str] = {
    "hog": "fengchao.vision.face_dlib:HogDetector",
    "cnn": "fengchao.vision.face_dlib:CnnDetector",
    "mtcnn": "fengchao.vision.mtcnn:MtcnnDetector",
    "hog+mtcnn": "fengchao.vision.mtcnn:HogThenMtcnnDetector",
}
FACE_ENCODERS: dict[str, str] = {
    "dlib": "fengchao.vision.face_dlib:DlibEncoder",
    # The same network and descriptors, run by onnxruntime (about 14 times faster).
    "onnx": "fengchao.vision.face_onnx:OnnxEncoder",
}


def face_detector_class(name: str) -> type[FaceDetector]:
    cls: type[FaceDetector] = load_backend(FACE_DETECTORS, name, "face detector")
    return cls


def face_encoder_class(name: str) -> type[FaceEncoder]:
    cls: type[FaceEncoder] = load_backend(FACE_ENCODERS, name, "face encoder")
    return cls
