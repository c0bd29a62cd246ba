"""Fixtures of the faces tests: real photos from ../shared/data, galleries forgotten between
tests (a rolled-back test may leave a process gallery that names rows no longer there)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fengchao.access import faces
from tests.conftest import shared_data


@pytest.fixture(autouse=True)
def fresh_galleries() -> Iterator[None]:
    faces.reset_galleries()
    yield
    faces.reset_galleries()


def photo_bytes(*parts: str) -> bytes:
    return shared_data(*parts).read_bytes()
