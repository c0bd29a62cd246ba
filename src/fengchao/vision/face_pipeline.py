"""The face pipeline: detect → align → encode, enrolment quality, and synthetic masks.

Enrolment (人脸录入) checks a photo the way a property clerk would want it checked and
says why a photo is refused. Because residents wear masks at the gate in an outbreak,
an enrolment also stores descriptors of the same aligned face with a mask drawn over
the lower half, so that a masked probe has a masked template to be near; and the desk
takes a second photo with the resident's usual mask on (``enrol(..., masked=True)``),
kept as a template of its own kind and checked against the resident's other templates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from fengchao.vision.face_dlib import CHIP_SIZE
from fengchao.vision.faces import AlignedFace, Descriptor, FaceBox, FaceDetector, FaceEncoder
from fengchao.vision.gallery import MASKED_PHOTO, FaceGallery, GalleryMatch, MaskedRule
from fengchao.vision.images import RGBImage, as_rgb

# Mask colours: light-blue surgical, white, black (RGB); mask k of a template's kind is
# MASK_COLOURS[k - 1].
MASK_COLOURS = ((150, 190, 220), (235, 235, 235), (40, 40, 45))
# The mask outline on dlib's 150×150 chip (padding 0.25), in chip fractions: from the
# cheeks under the eyes, over the nose bridge, to under the chin.
_MASK_OUTLINE = np.array(
    [
        (0.13, 0.50),
        (0.30, 0.45),
        (0.50, 0.42),
        (0.70, 0.45),
        (0.87, 0.50),
        (0.84, 0.76),
        (0.68, 0.92),
        (0.50, 0.97),
        (0.32, 0.92),
        (0.16, 0.76),
    ]
)


# Two descriptors of one person further apart than this are not taken for the same
# person: dlib's own bound for its descriptor (not tuned on our data). Enrolment
# refuses a new photo that far from every comparable template of the person.
SAME_PERSON = 0.6
# What the enrolment desk asks for after the bare-faced photo.
MASKED_ENROLMENT_PROMPT = "请再拍一张戴着平时所戴口罩的正面照（口罩盖住口鼻，摘下帽子和墨镜）"


@dataclass(frozen=True)
class Face:
    """A face found in a frame with its descriptor."""

    box: FaceBox
    landmarks: np.ndarray
    descriptor: Descriptor
    aligned: AlignedFace


@dataclass
class Timings:
    detect_ms: float = 0.0
    align_ms: float = 0.0
    encode_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.detect_ms + self.align_ms + self.encode_ms


@dataclass(frozen=True)
class QualityPolicy:
    """What an enrolment photo must be."""

    min_face_px: int = 80
    min_sharpness: float = 40.0
    min_brightness: float = 40.0
    max_yaw: float = 0.35
    max_roll_degrees: float = 25.0
    largest_face: bool = False


class EnrolmentRefused(ValueError):
    """An enrolment photo refused; ``code`` is stable, ``message`` tells the clerk what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Templates(NamedTuple):
    """Descriptors to store for one face, each with its gallery kind (photo or mask k)."""

    descriptors: np.ndarray
    kinds: np.ndarray


@dataclass(frozen=True)
class Enrolment:
    """What is kept of one enrolment photo: the face itself, then its masked variants."""

    face: Face
    templates: Templates
    sharpness: float
    masked_variants: int = field(default=0)


class FacePipeline:
    """Detector + encoder. Not thread-safe (dlib and onnxruntime objects): one per worker."""

    def __init__(self, detector: FaceDetector, encoder: FaceEncoder) -> None:
        self.detector = detector
        self.encoder = encoder

    def faces(self, image: RGBImage, timings: Timings | None = None) -> list[Face]:
        """Every face in the frame, largest first, each with its descriptor."""
        frame, boxes, timings = self._detect(image, timings)
        return [self._describe(frame, box, timings) for box in boxes]

    def largest_face(self, image: RGBImage, timings: Timings | None = None) -> Face | None:
        """The largest face only (the person at the gate), without encoding the others."""
        frame, boxes, timings = self._detect(image, timings)
        return self._describe(frame, boxes[0], timings) if boxes else None

    def _detect(
        self, image: RGBImage, timings: Timings | None
    ) -> tuple[RGBImage, list[FaceBox], Timings]:
        frame = as_rgb(image)
        timings = timings if timings is not None else Timings()
        start = time.perf_counter()
        boxes = self.detector.detect(frame)
        timings.detect_ms += (time.perf_counter() - start) * 1000
        return frame, boxes, timings

    def _describe(self, frame: RGBImage, box: FaceBox, timings: Timings) -> Face:
        start = time.perf_counter()
        aligned = self.encoder.align(frame, box)
        middle = time.perf_counter()
        descriptor = self.encoder.encode(aligned.chip)
        end = time.perf_counter()
        timings.align_ms += (middle - start) * 1000
        timings.encode_ms += (end - middle) * 1000
        return Face(box, aligned.landmarks, descriptor, aligned)

    def enrol(
        self,
        image: RGBImage,
        policy: QualityPolicy = QualityPolicy(),
        masks: bool = True,
        *,
        masked: bool = False,
        existing: Templates | None = None,
    ) -> Enrolment:
        """Check an enrolment photo and return the descriptors to store.

        ``masked``: the photo shows the resident with their usual mask on; it is kept as
        one ``MASKED_PHOTO`` template (no synthetic masks). ``existing``: the person's
        templates already stored; the new photo must agree with them (see
        :meth:`disagreement`), so that a photo of someone else is caught at the desk.

        Raises :class:`EnrolmentRefused` with code ``too_dark``, ``no_face``,
        ``several_faces``, ``too_small``, ``blurry``, ``not_frontal`` or
        ``not_same_person``.
        """
        frame = as_rgb(image)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if float(gray.mean()) < policy.min_brightness:
            raise EnrolmentRefused("too_dark", "照片太暗：请到光线充足的地方重拍")
        boxes = self.detector.detect(frame)
        if not boxes:
            if masked:
                raise EnrolmentRefused("no_face", "照片里没有找到人脸：请正对镜头，摘下帽子和墨镜")
            raise EnrolmentRefused("no_face", "照片里没有找到人脸：请正对镜头、摘下口罩和帽子")
        if len(boxes) > 1 and not policy.largest_face:
            raise EnrolmentRefused(
                "several_faces", f"照片里有 {len(boxes)} 张人脸：每张照片只能有本人一人"
            )
        box = boxes[0]
        size = min(box.width, box.height)
        if size < policy.min_face_px:
            raise EnrolmentRefused(
                "too_small", f"人脸太小（{size} 像素，至少 {policy.min_face_px}）：请靠近一些"
            )
        face = self._describe(frame, box, Timings())
        sharpness = laplacian_variance(face.aligned.chip)
        if sharpness < policy.min_sharpness:
            raise EnrolmentRefused("blurry", "照片模糊：请拿稳手机、对好焦后重拍")
        yaw, roll = pose(face.landmarks)
        if abs(yaw) > policy.max_yaw or abs(roll) > policy.max_roll_degrees:
            raise EnrolmentRefused("not_frontal", "请正对镜头：头不要偏转或歪斜")
        if existing is not None:
            distance = self.disagreement(face, masked, existing)
            if distance is not None and distance > SAME_PERSON:
                what = "这张戴口罩的照片" if masked else "这张照片"
                raise EnrolmentRefused(
                    "not_same_person",
                    f"{what}与此人已录入的照片不像同一个人（相差 {distance:.2f}，"
                    f"同一人一般不超过 {SAME_PERSON:.2f}）：请核对是否本人后重拍",
                )
        if masked:
            return Enrolment(
                face, Templates(face.descriptor[None, :], np.array([MASKED_PHOTO])), sharpness
            )
        templates = self.templates(face, masks)
        return Enrolment(face, templates, sharpness, masked_variants=len(templates.kinds) - 1)

    def disagreement(self, face: Face, masked: bool, existing: Templates) -> float | None:
        """How far a new enrolment photo is from the person's stored templates, compared
        alike: a bare face against the photos; a masked one, with the white mask painted
        over its own, against the photos painted the same way (dlib's raw descriptor of
        a masked face is far even from the right person). None when nothing compares."""
        descriptors, kinds = existing
        if masked:
            kind = MaskedRule().painted_kind
            probe = self.painted(face, kind)
        else:
            kind, probe = 0, face.descriptor
        alike = np.asarray(descriptors)[np.asarray(kinds) == kind]
        if alike.size == 0:
            return None
        return float(np.linalg.norm(alike - probe, axis=1).min())

    def templates(self, face: Face, masks: bool = True) -> Templates:
        """The templates to store for a face: itself, then with each synthetic mask."""
        descriptors = [face.descriptor]
        if masks:
            descriptors += [self.painted(face, kind) for kind in range(1, len(MASK_COLOURS) + 1)]
        # Kind 0 is the photo (gallery.PHOTO), kind k the photo with mask k.
        return Templates(np.stack(descriptors), np.arange(len(descriptors)))

    def painted(self, face: Face, kind: int) -> Descriptor:
        """The descriptor of the face with synthetic mask ``kind`` drawn over its lower half."""
        return self.encoder.encode(draw_mask(face.aligned.chip, MASK_COLOURS[kind - 1]))

    def identify(
        self, face: Face, gallery: FaceGallery, timings: Timings | None = None
    ) -> GalleryMatch:
        """Who this is: the photos first; when they do not place the face and the gallery
        keeps masked templates, the masked rule, which asks for one more encoding (of the
        painted face) only when it could still accept the face with it."""

        def painted() -> Descriptor:
            start = time.perf_counter()
            assert gallery.masked is not None
            descriptor = self.painted(face, gallery.masked.painted_kind)
            if timings is not None:
                timings.encode_ms += (time.perf_counter() - start) * 1000
            return descriptor

        return gallery.search(face.descriptor, painted)


# The width of the shrunk copy a gate frame is searched first (see detect_coarse_first).
COARSE_WIDTH = 320


def detect_coarse_first(
    detector: FaceDetector, image: RGBImage, width: int = COARSE_WIDTH
) -> list[FaceBox]:
    """The faces of a frame, looked for first on a copy shrunk to ``width`` pixels (HOG's
    time grows with the area: a 480 px frame costs about twice its 320 px copy), the boxes
    scaled back to the frame; the full frame is searched only when the copy shows no face
    (a face too small for the copy: HOG needs about 80 px). Frames of 400 to 640 px (the
    console sends 480) only: a face under ~120 px beside a larger one may go uncounted.
    Alignment and the descriptor are then computed on the full frame, so the descriptor is
    the same."""
    height, full = image.shape[:2]
    scale = width / full
    if scale >= 0.8 or scale < 0.5:
        # Little to gain; or a large frame (an upload, a device), where a stronger shrink
        # would lose the smaller faces behind the decisive one.
        return detector.detect(image)
    size = (width, max(1, round(height * scale)))
    copy: RGBImage = np.asarray(
        cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    found = detector.detect(copy)
    if not found:
        return detector.detect(image)
    return [
        FaceBox(
            max(0, round(b.left / scale)),
            max(0, round(b.top / scale)),
            min(full, round(b.right / scale)),
            min(height, round(b.bottom / scale)),
            b.score,
        )
        for b in found
    ]


def laplacian_variance(chip: RGBImage) -> float:
    """Sharpness of an aligned face: variance of the Laplacian of its grey levels."""
    gray = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """Yaw (nose offset from the eyes' midpoint, in eye distances) and roll in degrees.

    dlib's five points: two corners of one eye, two of the other, the base of the nose.
    """
    eye_a = landmarks[0:2].mean(axis=0)
    eye_b = landmarks[2:4].mean(axis=0)
    nose = landmarks[4]
    left, right = (eye_a, eye_b) if eye_a[0] < eye_b[0] else (eye_b, eye_a)
    distance = float(np.linalg.norm(right - left)) or 1.0
    middle = (left + right) / 2
    across = (right - left) / distance
    yaw = float(np.dot(nose - middle, across)) / distance
    roll = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
    return yaw, roll


def draw_mask(chip: RGBImage, colour: tuple[int, int, int]) -> RGBImage:
    """The aligned chip with a face mask drawn over nose, mouth and chin."""
    masked = chip.copy()
    outline = np.round(_MASK_OUTLINE * CHIP_SIZE).astype(np.int32)
    cv2.fillPoly(masked, [outline], colour, lineType=cv2.LINE_AA)
    # A fold line, so the mask is not a flat patch the network has never seen.
    shade = tuple(max(0, c - 35) for c in colour)
    y = int(0.74 * CHIP_SIZE)
    cv2.line(masked, (int(0.2 * CHIP_SIZE), y), (int(0.8 * CHIP_SIZE), y), shade, 2, cv2.LINE_AA)
    return masked
