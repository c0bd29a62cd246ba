"""A served demo community and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.registry.demo import build_demo
from fengchao.testing import served_app, throwaway_database

PASSWORD = "e2e-password-123"


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
    with throwaway_database("sqlite", folder) as engine:
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
        with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
            yield base
