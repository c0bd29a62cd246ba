"""A served demo community and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.db import make_engine
from fengchao.migrate import upgrade
from fengchao.registry.demo import build_demo

PASSWORD = "e2e-password-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is required for browser tests in CI")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo community on SQLite, served by a real uvicorn process."""
    from sqlalchemy.orm import Session

    folder = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{folder / 'e2e.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        summary = build_demo(session)
        auth_service.create_user(
            session=session,
            username="worker",
            password=PASSWORD,
            role=Role.community_worker,
            scope=GridScope(ScopeLevel.community, summary.community_id),
            display_name="社区干部",
        )
        session.commit()
    engine.dispose()
    port = _free_port()
    env = {**os.environ, "FENGCHAO_DATABASE_URL": url, "FENGCHAO_DATA_DIR": str(folder)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fengchao.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=Path(folder),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
