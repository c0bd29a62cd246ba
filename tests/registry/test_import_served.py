"""The import path on the app as production runs it (a real uvicorn process): an upload
being parsed does not hold up other requests, and expired uploads are purged by the web
process's own schedule, with nobody uploading again."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openpyxl
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.registry.models import (
    Building,
    Community,
    Compound,
    Household,
    ImportUpload,
    Street,
    Unit,
)
from fengchao.testing import served_app, throwaway_database


def _target() -> str:
    return os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")


@dataclass
class Login:
    community_id: int
    cookies: dict[str, str]
    csrf: str


def _community_with_worker(engine: Engine) -> Login:
    with Session(engine) as session:
        street = Street(name=f"宏路街道-{uuid.uuid4().hex[:6]}")
        session.add(street)
        session.flush()
        community = Community(street_id=street.id, name="宏侨社区")
        session.add(community)
        session.flush()
        compound = Compound(community_id=community.id, name="华润中央公园")
        session.add(compound)
        session.flush()
        building = Building(community_id=community.id, compound_id=compound.id, name="5")
        session.add(building)
        session.flush()
        unit = Unit(community_id=community.id, building_id=building.id, name="1")
        session.add(unit)
        session.flush()
        session.add(
            Household(
                community_id=community.id,
                compound_id=compound.id,
                building_id=building.id,
                unit_id=unit.id,
                room="101",
            )
        )
        user = auth_service.create_user(
            session=session,
            username=f"worker-{uuid.uuid4().hex[:6]}",
            password="correct-horse-battery",
            role=Role.community_worker,
            scope=GridScope(ScopeLevel.community, community.id),
            display_name="社区干部",
        )
        token, login = auth_service.start_session(session=session, user=user)
        session.commit()
        return Login(community.id, {"fc_session": token}, login.csrf_token)


def _large_sheet(rows: int) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(["姓名", "身份证号", "手机", "小区", "楼栋", "单元", "房号"])
    for n in range(rows):
        # Rooms that do not exist: every row is checked against the grid and reported.
        sheet.append([f"居民{n}", "", "", "华润中央公园", "5", "1", str(1000 + n)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Login]]:
    folder = tmp_path_factory.mktemp("served-import")
    with throwaway_database(_target(), folder) as engine:
        login = _community_with_worker(engine)
        with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
            yield base, login


@pytest.mark.parametrize("route", ["/registry/import", "/api/registry/import/residents"])
def test_healthz_is_answered_while_a_large_upload_is_parsed(
    served: tuple[str, Login], route: str
) -> None:
    base, login = served
    body, content_type = _multipart("file", "居民.xlsx", _large_sheet(5000))
    sent, done = threading.Event(), threading.Event()
    outcome: dict[str, httpx.Response] = {}

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]
        sent.set()  # runs once the last chunk has been written to the socket

    def upload() -> None:
        with httpx.Client(base_url=base, cookies=login.cookies, timeout=120) as client:
            outcome["response"] = client.post(
                route,
                content=chunks(),
                headers={
                    "Content-Type": content_type,
                    "Content-Length": str(len(body)),
                    "X-CSRF-Token": login.csrf,
                },
            )
        done.set()

    thread = threading.Thread(target=upload)
    thread.start()
    assert sent.wait(60)
    answered_during_upload = 0
    with httpx.Client(base_url=base, timeout=120) as client:
        while not done.is_set():
            health = client.get("/healthz")
            assert health.status_code == 200
            if not done.is_set():
                answered_during_upload += 1
    thread.join()
    response = outcome["response"]
    assert response.status_code == 200, response.text[:500]
    assert "5000" in response.text  # the whole sheet was checked
    # Today the parse blocks the event loop: /healthz waits for the upload's response.
    assert answered_during_upload >= 3, answered_during_upload


def test_the_worker_purges_expired_uploads_on_its_own(tmp_path: Path) -> None:
    """No new upload needed: `fengchao worker` runs the purge as a scheduled job."""
    with throwaway_database(_target(), tmp_path) as engine:
        login = _community_with_worker(engine)
        now = dt.datetime.now(dt.UTC)
        with Session(engine) as session:
            for token, age in (("stale", dt.timedelta(minutes=61)), ("fresh", dt.timedelta())):
                session.add(
                    ImportUpload(
                        token=token,
                        community_id=login.community_id,
                        user_id=1,
                        kind="residents",
                        filename="a.xlsx",
                        content=b"sealed",
                        options={},
                        created_at=now - age,
                    )
                )
            session.commit()
        env = {
            **os.environ,
            "FENGCHAO_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "FENGCHAO_DATA_DIR": str(tmp_path),
        }
        worker = subprocess.run(
            [sys.executable, "-c", "from fengchao.cli import app; app()", "worker", "--once"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr
        with Session(engine) as session:
            assert set(session.scalars(select(ImportUpload.token))) == {"fresh"}
