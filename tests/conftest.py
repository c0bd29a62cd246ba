"""Shared fixtures: a migrated database (SQLite or PostgreSQL), a per-test transaction,
a small grid, and the people who use the platform (personas)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fengchao.app import create_app
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel, User
from fengchao.auth.service import Actor, GridScope
from fengchao.registry.models import (
    Building,
    Community,
    Compound,
    Household,
    Person,
    Relation,
    Street,
    Unit,
)
from fengchao.registry.service import register_person_id
from fengchao.testing import throwaway_database
from fengchao.web.deps import get_session

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PASSWORD = "correct-horse-battery"


def shared_data(*parts: str) -> Path:
    """A file of ../shared/data; skips when absent unless FENGCHAO_REQUIRE_SHARED_DATA=1."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("FENGCHAO_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"shared test data missing: {path}")
        pytest.skip(f"shared test data not present at {path}")
    return path


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """SQLite by default; FENGCHAO_TEST_DATABASE=<PostgreSQL URL> runs on PostgreSQL."""
    target = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")
    with throwaway_database(target, tmp_path_factory.mktemp("db")) as eng:
        yield eng


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        connection.close()


@dataclass
class Grid:
    street: Street
    community: Community
    park: Compound  # 华润中央公园
    other: Compound
    b5: Building
    b6: Building
    h5_101: Household
    h6_101: Household
    resident5: Person
    resident6: Person


def _building(
    s: Session, community: Community, compound: Compound, name: str, rooms: tuple[str, ...]
) -> tuple[Building, list[Household]]:
    building = Building(community_id=community.id, compound_id=compound.id, name=name)
    s.add(building)
    s.flush()
    households = []
    for unit_name in ("1", "2"):
        unit = Unit(community_id=community.id, building_id=building.id, name=unit_name)
        s.add(unit)
        s.flush()
        for room in rooms:
            h = Household(
                community_id=community.id,
                compound_id=compound.id,
                building_id=building.id,
                unit_id=unit.id,
                room=room,
            )
            s.add(h)
            households.append(h)
    s.flush()
    return building, households


@pytest.fixture
def grid(session: Session) -> Grid:
    return make_grid(session)


def make_grid(session: Session) -> Grid:
    """The small grid of the personas: two compounds, buildings 5 and 6 in 华润中央公园 and
    building 1 in 宏侨新村, two units of four rooms each, one resident in 5 and in 6."""
    street = Street(name=f"宏路街道-{uuid.uuid4().hex[:6]}")
    session.add(street)
    session.flush()
    community = Community(street_id=street.id, name="宏侨社区")
    session.add(community)
    session.flush()
    park = Compound(community_id=community.id, name="华润中央公园")
    other = Compound(community_id=community.id, name="宏侨新村")
    session.add_all([park, other])
    session.flush()
    rooms = ("101", "102", "201", "202")
    b5, h5 = _building(session, community, park, "5", rooms)
    b6, h6 = _building(session, community, park, "6", rooms)
    _building(session, community, other, "1", rooms)
    r5 = Person(
        community_id=community.id,
        household_id=h5[0].id,
        name="林国平",
        phone="13800000001",
        relation=Relation.owner,
    )
    register_person_id(r5, "11010519491231002X")
    r6 = Person(
        community_id=community.id,
        household_id=h6[0].id,
        name="陈美玲",
        phone="13800000002",
        relation=Relation.owner,
    )
    register_person_id(r6, "350181198505051234")
    session.add_all([r5, r6])
    session.flush()
    return Grid(street, community, park, other, b5, b6, h5[0], h6[0], r5, r6)


@dataclass
class Persona:
    user: User
    actor: Actor


def _persona(session: Session, name: str, role: Role, scope: GridScope) -> Persona:
    user = auth_service.create_user(
        session=session,
        username=f"{name}-{uuid.uuid4().hex[:6]}",
        password=PASSWORD,
        role=role,
        scope=scope,
        display_name=name,
    )
    return Persona(user, auth_service.actor_for(user))


@pytest.fixture
def admin(session: Session, grid: Grid) -> Persona:
    return _persona(session, "admin", Role.admin, GridScope(ScopeLevel.street, grid.street.id))


@pytest.fixture
def worker(session: Session, grid: Grid) -> Persona:
    return _persona(
        session, "worker", Role.community_worker, GridScope(ScopeLevel.community, grid.community.id)
    )


@pytest.fixture
def lead5(session: Session, grid: Grid) -> Persona:
    return _persona(
        session, "lead5", Role.building_lead, GridScope(ScopeLevel.building, grid.b5.id)
    )


@pytest.fixture
def guard(session: Session, grid: Grid) -> Persona:
    return _persona(
        session, "guard", Role.guard, GridScope(ScopeLevel.community, grid.community.id)
    )


class Browser:
    """A logged-in HTTP client; unsafe requests carry the CSRF token like the pages do."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, url: str, **kw: object) -> object:
        return self.client.get(url, **kw)  # type: ignore[arg-type]

    def post(self, url: str, **kw: object) -> object:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return self.client.post(url, headers=headers, **kw)  # type: ignore[arg-type]


@pytest.fixture
def app_client(session: Session) -> Iterator[TestClient]:
    app = create_app()

    def test_session() -> Iterator[Session]:
        yield session
        session.flush()

    app.dependency_overrides[get_session] = test_session
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def login_as(session: Session, app_client: TestClient):  # type: ignore[no-untyped-def]
    def login(persona: Persona) -> Browser:
        token, login_session = auth_service.start_session(session=session, user=persona.user)
        app_client.cookies.clear()
        app_client.cookies.set("fc_session", token)
        return Browser(app_client, login_session.csrf_token)

    return login
