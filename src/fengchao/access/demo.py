"""The demo community's gates: 华润中央公园's east gate (pedestrian, with a face terminal
and the guard's console) and its garage entrance (vehicles), a courier rule, and 宏侨新村's
main gate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.registry.models import Compound


def add_demo_gates(session: Session, community_id: int) -> int:
    """Gates, devices and a rule for the demo; returns the number of gates made. Device keys
    are not kept (make a new device on the gates page to connect a real one)."""
    compounds = {
        c.name: c
        for c in session.scalars(select(Compound).where(Compound.community_id == community_id))
    }
    made = 0
    park = compounds.get("华润中央公园")
    if park is not None:
        east = access.create_gate(
            session=session, actor=SYSTEM_ACTOR, compound_id=park.id, name="东门",
            kind="pedestrian",
        )  # fmt: skip
        garage = access.create_gate(
            session=session, actor=SYSTEM_ACTOR, compound_id=park.id, name="地库入口",
            kind="vehicle",
        )  # fmt: skip
        access.create_device(session=session, actor=SYSTEM_ACTOR, gate_id=east.id,
                             name="东门人脸终端")  # fmt: skip
        access.create_device(session=session, actor=SYSTEM_ACTOR, gate_id=east.id,
                             name="东门值守平板")  # fmt: skip
        access.create_device(session=session, actor=SYSTEM_ACTOR, gate_id=garage.id,
                             name="地库车牌相机")  # fmt: skip
        access.create_rule(
            session=session, actor=SYSTEM_ACTOR, community_id=community_id,
            name="快递外卖只走东门 8–20 点", effect="allow", roles=["courier"],
            gate_id=east.id, start_time="08:00", end_time="20:00",
        )  # fmt: skip
        made += 2
    for name, compound in compounds.items():
        if name != "华润中央公园":
            access.create_gate(session=session, actor=SYSTEM_ACTOR, compound_id=compound.id,
                               name="正门", kind="both")  # fmt: skip
            made += 1
            break
    return made
