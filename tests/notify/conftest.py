"""Fixtures of the notify tests: the local chat receiver, notify settings, a database of
a test's own (workers open their own sessions, so their data must be committed), and
helpers to add chats and send messages."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.notify import groups
from fengchao.notify.models import Delivery
from fengchao.notify.receiver import ChatReceiver
from fengchao.notify.worker import Worker
from fengchao.settings import NotifySettings, get_settings
from fengchao.testing import throwaway_database
from tests.conftest import Grid, Persona, build_grid, make_persona

TARGET = os.environ.get("FENGCHAO_TEST_DATABASE", "sqlite")


@pytest.fixture
def receiver() -> Iterator[ChatReceiver]:
    with ChatReceiver().running() as running:
        yield running


@pytest.fixture
def notify_settings(monkeypatch: pytest.MonkeyPatch) -> NotifySettings:
    """The notify settings of this test: private networks allowed (the receiver listens on
    127.0.0.1), short timeouts and retries; change more with monkeypatch.setattr."""
    settings = get_settings().notify
    for name, value in {
        "allow_private_networks": True,
        "timeout_seconds": 1.0,
        "lease_seconds": 5.0,
        "retry_base_seconds": 10.0,
        "max_attempts": 3,
        "poll_seconds": 0.05,
        "public_url": "https://fengchao.example.org",
    }.items():
        monkeypatch.setattr(settings, name, value)
    return settings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class World:
    """A database of the test's own with the grid and the personas committed."""

    engine: Engine
    grid: Grid
    personas: dict[str, Persona]
    clock: Clock = field(default_factory=Clock)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def worker(self, **kw: Any) -> Worker:
        return Worker(engine=self.engine, clock=self.clock, jobs={}, **kw)

    def deliveries(self) -> list[Delivery]:
        with self.session() as s:
            return list(s.scalars(select(Delivery).order_by(Delivery.id)))

    def add_channel(
        self, url: str, kind: str, level: str = "building", node: int | None = None, **kw: Any
    ) -> int:
        with self.session() as s:
            channel = groups.save_channel(
                session=s,
                actor=self.personas["worker"].actor,
                form=groups.ChannelForm(
                    node=f"{level}:{node if node is not None else self.grid.b5.id}",
                    name=kw.pop("name", f"{kind} 群"),
                    kind=kind,
                    url=url,
                    **kw,
                ),
            )
            s.commit()
            return channel.id


def make_world(folder: Path) -> Iterator[World]:
    with throwaway_database(TARGET, folder) as engine:
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            street = GridScope(ScopeLevel.street, grid.street.id)
            community = GridScope(ScopeLevel.community, grid.community.id)
            personas = {
                "admin": make_persona(session, "管理员", Role.admin, street),
                "worker": make_persona(session, "社区干部", Role.community_worker, community),
                "lead5": make_persona(
                    session,
                    "5号楼楼栋长",
                    Role.building_lead,
                    GridScope(ScopeLevel.building, grid.b5.id),
                ),
                "lead6": make_persona(
                    session,
                    "6号楼楼栋长",
                    Role.building_lead,
                    GridScope(ScopeLevel.building, grid.b6.id),
                ),
                "guard": make_persona(session, "东门卡口", Role.guard, community),
            }
            session.commit()
        yield World(engine, grid, personas)


@pytest.fixture
def world(tmp_path: Path, notify_settings: NotifySettings) -> Iterator[World]:
    yield from make_world(tmp_path)


Send = Callable[..., int]
