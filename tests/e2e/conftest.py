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
    """The demo community on SQLite, served by a real uvicorn process, with the accounts
    of the demo: worker, lead5 (华润中央公园 5号楼), guard and admin."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from fengchao.registry.models import Building, Community, Compound

    folder = tmp_path_factory.mktemp("e2e")
    with throwaway_database("sqlite", folder) as engine:
        with Session(engine) as session:
            summary = build_demo(session)
            community = session.get(Community, summary.community_id)
            assert community is not None
            building5 = session.scalar(
                select(Building.id)
                .join(Compound, Compound.id == Building.compound_id)
                .where(Compound.name == "华润中央公园", Building.name == "5")
            )
            assert building5 is not None
            whole = GridScope(ScopeLevel.community, community.id)
            accounts = [
                ("worker", Role.community_worker, whole, "社区干部"),
                ("lead5", Role.building_lead, GridScope(ScopeLevel.building, building5), "楼栋长"),
                ("guard", Role.guard, whole, "东门卡口"),
                ("admin", Role.admin, GridScope(ScopeLevel.street, community.street_id), "管理员"),
            ]
            for username, role, scope, name in accounts:
                auth_service.create_user(
                    session=session, username=username, password=PASSWORD, role=role,
                    scope=scope, display_name=name,
                )  # fmt: skip
            session.commit()
        with served_app(engine.url.render_as_string(hide_password=False), folder) as base:
            yield base
