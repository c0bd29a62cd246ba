"""Fixtures of the access slice: a pedestrian and a vehicle gate of 华润中央公园 with a
device each, and a fake face handler registered the way a real one is."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.models import Gate
from fengchao.auth.service import SYSTEM_ACTOR
from tests.conftest import Grid


@dataclass
class Gates:
    east: Gate  # 东门 (pedestrian)
    garage: Gate  # 车库口 (vehicle)
    east_device: access.DeviceRef
    east_key: str
    garage_device: access.DeviceRef


@pytest.fixture
def gates(session: Session, grid: Grid) -> Gates:
    return make_gates(session, grid)


def make_gates(session: Session, grid: Grid) -> Gates:
    east = access.create_gate(
        session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="东门",
        kind="pedestrian",
    )  # fmt: skip
    garage = access.create_gate(
        session=session, actor=SYSTEM_ACTOR, compound_id=grid.park.id, name="车库口",
        kind="vehicle",
    )  # fmt: skip
    _d1, key = access.create_device(
        session=session, actor=SYSTEM_ACTOR, gate_id=east.id, name="东门人脸机"
    )
    _d2, key2 = access.create_device(
        session=session, actor=SYSTEM_ACTOR, gate_id=garage.id, name="车库相机"
    )
    east_device = access.device_for_key(session=session, key=key)
    garage_device = access.device_for_key(session=session, key=key2)
    assert east_device is not None and garage_device is not None
    return Gates(east, garage, east_device, key, garage_device)


@pytest.fixture
def fake_faces() -> Iterator[list[object]]:
    """Registers ``tests.access.fake_faces:identify`` as the face handler; append the
    outcomes it should answer, in order."""
    from tests.access import fake_faces

    previous = flows.METHOD_HANDLERS.get("face")
    fake_faces.OUTCOMES.clear()
    flows.register_handler("face", "tests.access.fake_faces:identify")
    yield fake_faces.OUTCOMES
    if previous is not None:
        flows.register_handler("face", previous)
