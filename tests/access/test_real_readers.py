"""The decision flow with the real plate reader on ../shared/data (skipped without it)."""

from __future__ import annotations

import csv

from sqlalchemy.orm import Session

from fengchao.access import flows
from fengchao.access.flows import PassageRequest, Sender
from fengchao.registry.models import Vehicle
from tests.access.conftest import Gates
from tests.conftest import Grid, shared_data


def test_plate_frames_through_the_decision_flow(session: Session, grid: Grid, gates: Gates) -> None:
    labels = shared_data("plates", "labels.csv")
    scenes = [r for r in csv.DictReader(labels.open(encoding="utf-8")) if "scene" in r["file"]][:5]
    vehicles = {}
    for row in scenes:
        vehicle = Vehicle(community_id=grid.community.id, household_id=grid.h5_101.id,
                          plate=row["plate"])  # fmt: skip
        session.add(vehicle)
        session.flush()
        vehicles[row["file"]] = vehicle.id
    allowed = 0
    for row in scenes:
        answer = flows.decide(
            session=session,
            request=PassageRequest(
                gates.garage.id, "in", "plate", frame=(labels.parent / row["file"]).read_bytes()
            ),
            sender=Sender.device(gates.garage_device),
        )
        assert answer.plate_read, row
        if answer.decision == "allow":
            allowed += 1
            assert answer.vehicle_id == vehicles[row["file"]], (row, answer)
            assert answer.match_how in ("exact", "local_province", "tolerant")
        else:
            assert answer.reasons == ["unknown_vehicle"]
    assert allowed >= 3, f"only {allowed} of {len(scenes)} plates read and matched"
