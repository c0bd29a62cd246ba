"""Vision tests use no database; they run once (in the SQLite pass), not per database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import shared_data

if TYPE_CHECKING:
    from fengchao.vision.face_eval import Sample
    from fengchao.vision.face_pipeline import FacePipeline


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/vision/" in item.nodeid:
            item.add_marker(pytest.mark.vision)


@pytest.fixture(scope="session")
def face_pipeline() -> Iterator[FacePipeline]:
    """The default pipeline (HOG, MTCNN when HOG finds none; dlib's encoder), made once."""
    from fengchao.vision.face_pipeline import FacePipeline
    from fengchao.vision.faces import face_detector_class, face_encoder_class

    yield FacePipeline(face_detector_class("hog+mtcnn")(), face_encoder_class("dlib")())


@pytest.fixture(scope="session")
def dev_faces(face_pipeline: FacePipeline) -> list[Sample]:
    """Every photo of the unmasked dev set with its face (about 15 s, once a session)."""
    from fengchao.vision.face_eval import embed_folder

    return embed_folder(shared_data("faces"), face_pipeline)[0]


@pytest.fixture(scope="session")
def dev_masked_faces(face_pipeline: FacePipeline) -> list[Sample]:
    """Every photo of the masked dev set, with the painted descriptor (about 25 s)."""
    from fengchao.vision.face_eval import embed_folder

    return embed_folder(shared_data("faces_masked"), face_pipeline)[0]
