"""A face handler for tests: answers the outcomes queued in ``OUTCOMES``, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class FakeOutcome:
    person_id: int | None
    distance: float | None = 0.35
    masked: bool = False
    reason: str | None = None
    faces_in_frame: int = 1
    timings: dict[str, float] = field(default_factory=lambda: {"detect_ms": 1.0})


OUTCOMES: list[object] = []


def identify(session: Session, *, community_id: int, frame: bytes) -> object:
    assert isinstance(frame, bytes)
    return OUTCOMES.pop(0)
