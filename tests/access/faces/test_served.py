"""The galleries of two server processes (uvicorn --workers 2, as production runs): a face
enrolled through one worker is recognised by the other within a second. Runs on the
database of the pass (PostgreSQL in the PostgreSQL pass)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.testing import served_app, throwaway_database
from tests.access.faces.conftest import photo_bytes
from tests.conftest import build_grid


@dataclass
class Desk:
    base: str
    cookies: dict[str, str]
    csrf: str
    person_id: int


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    photo_bytes("faces", "angelina_jolie_01.jpg")  # skips when the shared data is absent
    folder: Path = tmp_path_factory.mktemp("served-faces")
    target = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")
    with throwaway_database(target, folder) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            user = auth_service.create_user(
                session=session,
                username=f"desk-{uuid.uuid4().hex[:6]}",
                password="correct-horse-battery",
                role=Role.property_staff,
                scope=GridScope(ScopeLevel.community, grid.community.id),
                display_name="物业前台",
            )
            token, login = auth_service.start_session(session=session, user=user)
            session.commit()
            person_id = grid.resident5.id
        url = engine.url.render_as_string(hide_password=False)
        with served_app(url, folder, workers=2) as base:
            yield Desk(base, {"fc_session": token}, login.csrf_token, person_id)


def identify(desk: Desk, frame: bytes) -> dict[str, object]:
    # A new connection each time, so that either worker may take it.
    with httpx.Client(base_url=desk.base, cookies=desk.cookies, timeout=60) as client:
        response = client.post(
            "/api/faces/identify",
            content=frame,
            headers={
                "Content-Type": "image/jpeg",
                "X-CSRF-Token": desk.csrf,
                "Connection": "close",
            },
        )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_a_face_enrolled_through_one_worker_is_recognised_by_the_other_within_a_second(
    desk: Desk,
) -> None:
    probe = photo_bytes("faces", "angelina_jolie_02.jpg")
    # Both workers answer, with their galleries built (empty of this person) first.
    workers: set[object] = set()
    for _ in range(80):
        answer = identify(desk, probe)
        assert answer["person_id"] is None
        workers.add(answer["served_by"])
        if len(workers) == 2:
            break
    assert len(workers) == 2, "the two workers did not both answer"

    with httpx.Client(base_url=desk.base, cookies=desk.cookies, timeout=60) as client:
        enrolled = client.post(
            f"/api/faces/people/{desk.person_id}/enrol",
            files={"photos": ("a.jpg", photo_bytes("faces", "angelina_jolie_01.jpg"))},
            data={"consented_by": "林国平"},
            headers={"X-CSRF-Token": desk.csrf},
        )
    committed = time.monotonic()
    assert enrolled.status_code == 200, enrolled.text
    time.sleep(max(0.0, committed + 1.0 - time.monotonic()))

    recognised_by: set[object] = set()
    for _ in range(80):
        answer = identify(desk, probe)
        assert answer["person_id"] == desk.person_id, answer
        recognised_by.add(answer["served_by"])
        if recognised_by == workers:
            break
    assert recognised_by == workers

    # Withdrawal reaches both just as fast (and a match is confirmed on file anyway).
    with httpx.Client(base_url=desk.base, cookies=desk.cookies, timeout=60) as client:
        withdrawn = client.post(
            f"/faces/people/{desk.person_id}/withdraw", headers={"X-CSRF-Token": desk.csrf}
        )
    assert withdrawn.status_code == 303
    refused_by: set[object] = set()
    for _ in range(80):
        answer = identify(desk, probe)
        assert answer["person_id"] is None and answer["reason"] == "unknown_face"
        refused_by.add(answer["served_by"])
        if refused_by == workers:
            break
    assert refused_by == workers
