"""Shared fixtures: a migrated database (SQLite or PostgreSQL), a per-test transaction,
a small grid, and the people who use the platform (personas)."""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fengchao.app import create_app
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel, User
from fengchao.auth.service import Actor, GridScope
from fengchao.db import WRITE_OPTION, finish, flush_rows_at_commit
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

# Keys of this test run, set before any settings are built; served apps started by the
# tests inherit them, so they read what the tests wrote (and no keys.json is written).
os.environ.setdefault("FENGCHAO_SECURITY__SECRET_KEY", secrets.token_urlsafe(48))
os.environ.setdefault(
    "FENGCHAO_SECURITY__DATA_KEY", base64.b64encode(secrets.token_bytes(32)).decode()
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PASSWORD = "correct-horse-battery"
T = TypeVar("T")


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
    """A session inside a transaction that is rolled back after the test. The transaction
    is a writing one from the start, so the code's begin_write() has nothing to do."""
    connection = engine.connect().execution_options(**{WRITE_OPTION: True})
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
    return build_grid(session)


def build_grid(session: Session) -> Grid:
    """宏侨社区: 华润中央公园 (buildings 5 and 6) and 宏侨新村 (building 1), two units of four
    rooms each, and one registered resident in 5-1-101 and in 6-1-101."""
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


def make_persona(session: Session, name: str, role: Role, scope: GridScope) -> Persona:
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
    return make_persona(session, "admin", Role.admin, GridScope(ScopeLevel.street, grid.street.id))


@pytest.fixture
def worker(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "worker", Role.community_worker, GridScope(ScopeLevel.community, grid.community.id)
    )


@pytest.fixture
def lead5(session: Session, grid: Grid) -> Persona:
    return make_persona(
        session, "lead5", Role.building_lead, GridScope(ScopeLevel.building, grid.b5.id)
    )


@pytest.fixture
def guard(session: Session, grid: Grid) -> Persona:
    return make_persona(
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
        flush_rows_at_commit(session)  # what finish() writes at the end of a request

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


# --- the app as production runs it ------------------------------------------------------


@dataclass
class Live:
    """A database of its own with the grid and the personas committed, and the app bound
    to it with no dependency overridden: every request opens, commits and closes its own
    database session, as in production."""

    engine: Engine
    grid: Grid
    personas: dict[str, Persona]

    def client(
        self, persona: str | None = None, *, lang: str | None = None, raise_errors: bool = True
    ) -> TestClient:
        """A client logged in through the login form as ``persona`` (admin, worker, lead5,
        guard), or anonymous; ``raise_errors=False`` returns 500 pages as a browser sees them."""
        client = TestClient(
            create_app(engine=self.engine),
            follow_redirects=False,
            raise_server_exceptions=raise_errors,
        )
        if lang:
            client.cookies.set("fc_lang", lang)
        if persona is not None:
            client.get("/login")
            response = client.post(
                "/login",
                data={
                    "username": self.personas[persona].user.username,
                    "password": PASSWORD,
                    "csrf_token": client.cookies.get("fc_csrf") or "",
                },
            )
            assert response.status_code == 303, response.text
        return client


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    target = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")
    with throwaway_database(target, tmp_path_factory.mktemp("live")) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            street = GridScope(ScopeLevel.street, grid.street.id)
            community = GridScope(ScopeLevel.community, grid.community.id)
            building5 = GridScope(ScopeLevel.building, grid.b5.id)
            personas = {
                "admin": make_persona(session, "管理员", Role.admin, street),
                "worker": make_persona(session, "社区干部", Role.community_worker, community),
                "lead5": make_persona(session, "5号楼楼栋长", Role.building_lead, building5),
                "guard": make_persona(session, "东门卡口", Role.guard, community),
            }
            session.commit()
        yield Live(engine, grid, personas)


@pytest.fixture(scope="module")
def own_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated database of the run's kind for one module alone, used through committed
    sessions as production uses it (races between connections)."""
    target = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")
    with throwaway_database(target, tmp_path_factory.mktemp("own")) as engine:
        yield engine


def held_race(sessions: sessionmaker[Session], act: Callable[[Session], T]) -> dict[str, T]:
    """``act`` on two connections at once, each in a session of its own: "first" holds its
    transaction open after acting until "second" has met it at the database (a unique
    index, a row lock, SQLite's write lock), then both commit. Each one's answer, by name;
    an error in either fails the test."""
    first_stored, release = threading.Event(), threading.Event()
    answers: dict[str, T] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with sessions() as session:
                answer = act(session)
                if name == "first":
                    first_stored.set()
                    release.wait(10)
                finish(session)
                answers[name] = answer
        except BaseException as exc:
            errors.append(exc)
            first_stored.set()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert first_stored.wait(10)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    time.sleep(0.3)  # the second is now waiting on the first
    release.set()
    first.join(10)
    second.join(10)
    assert not errors, errors
    return answers


# --- the PostgreSQL run repeats only what touches a database ------------------------------

# A test, fixture or module whose code names one of these opens a database of the run's
# kind; everything else (the pure modules: validation, the solver, vision, sheet reading)
# gives the same answer whatever FENGCHAO_TEST_DATABASE says, and runs once, on SQLite.
_DATABASE_MARKS = ("FENGCHAO_TEST_DATABASE", "throwaway_database", "create_engine", "served_app")


def _names_a_database(code: object) -> bool:
    import inspect

    try:
        source = inspect.getsource(code)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return True  # cannot tell: keep it
    return any(mark in source for mark in _DATABASE_MARKS)


def _touches_database(item: pytest.Item) -> bool:
    import inspect

    names = set(getattr(item, "fixturenames", ()))
    if names & {"engine", "live"}:
        return True
    module = getattr(item, "module", None)
    if module is None or _names_a_database(module):
        return True
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info else ():
        for definition in defs:
            home = inspect.getmodule(definition.func)
            if _names_a_database(definition.func) or (home and _names_a_database(home)):
                return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite") == "sqlite":
        return
    pure = [item for item in items if not _touches_database(item)]
    if pure:
        config.hook.pytest_deselected(items=pure)
        kept = set(map(id, pure))
        items[:] = [item for item in items if id(item) not in kept]
