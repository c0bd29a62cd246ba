"""Visitors in the demo community: a poster for every gate, and passes in each state the
staff pages show — waiting for approval, issued, inside now, left, expired, revoked — and
a courier (called after ``access.demo.add_demo_gates``). Names, phones and ID numbers are
synthetic; ID numbers carry a valid check digit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access.models import Gate, GateKind
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.db import utcnow
from fengchao.registry.validation import id_check_char
from fengchao.visitors import service
from fengchao.visitors.models import PassKind, PassStatus, VisitorPass


@dataclass(frozen=True)
class _Visit:
    name: str
    room: str
    purpose: str
    state: str  # pending, issued, inside, left, expired, revoked
    hours_ago: float
    plate: str = ""
    symptoms: tuple[str, ...] = ()
    travel: str = ""


VISITS = (
    _Visit("周建华", "5-1-101", "探望父母", "pending", 0.2),
    _Visit("吴丽萍", "5-2-302", "送药", "pending", 0.5, symptoms=("cough",)),
    _Visit("郑海峰", "6-1-201", "家电维修", "issued", 0.1),
    _Visit("黄晓燕", "5-1-402", "探亲", "inside", 1.0, plate="闽A·D12345"),
    _Visit("林志强", "7-1-101", "看房", "inside", 0.7),
    _Visit("陈秀英", "5-2-101", "探望老人", "left", 5.0, travel="福州市内"),
    _Visit("刘德明", "6-2-501", "送餐", "left", 26.0),
    _Visit("张桂兰", "8-1-202", "探亲", "expired", 30.0),
    _Visit("王建国", "5-1-201", "装修", "revoked", 3.0),
)


def _id_number(index: int) -> str:
    first17 = f"35010219{80 + index:02d}0{(index % 9) + 1}1{index % 10}{123 + index:03d}"[:17]
    return first17 + id_check_char(first17)


def add_demo_visitors(session: Session, community_id: int) -> int:
    """Posters and passes for the demo (the caller commits); returns the passes made."""
    gates = list(
        session.scalars(
            select(Gate).where(Gate.community_id == community_id, Gate.active.is_(True))
        )
    )
    tokens = {
        gate.id: service.poster_for_gate(session=session, actor=SYSTEM_ACTOR, gate_id=gate.id)[1]
        for gate in gates
    }
    walk_in = [g for g in gates if g.kind != GateKind.vehicle]
    if not walk_in:
        return 0
    gate = walk_in[0]
    public = service.gate_for_token(session=session, token=tokens[gate.id].token)
    now = utcnow()
    made = 0
    for index, visit in enumerate(VISITS):
        form = {
            "name": visit.name, "phone": f"1370591{index:04d}", "id_number": _id_number(index),
            "host_room": visit.room, "purpose": visit.purpose, "stay_hours": "4",
            "party_size": "1", "plate": visit.plate, "travel": visit.travel,
            "health_code": "green",
        }  # fmt: skip
        application = service.check_form(form)
        application.symptoms = list(visit.symptoms)
        if application.errors:
            continue
        at = now - dt.timedelta(hours=visit.hours_ago)
        try:
            row = service.submit(
                session=session, gate=public, application=application,
                form_key=f"demo-{community_id}-{index}", now=at,
            ).row  # fmt: skip
        except service.VisitorRefusal:
            continue  # a room the demo's layout does not have
        _set_state(session, row, visit.state, at)
        made += 1
    courier, _link = service.issue(
        session=session, actor=SYSTEM_ACTOR, gate_id=gate.id, name="顺丰 李师傅",
        phone="13705919999", host_room="", kind=PassKind.courier,
        hours=24 * service.COURIER_DAYS, entries=service.COURIER_ENTRIES,
        now=now - dt.timedelta(days=3),
    )  # fmt: skip
    service.record_passage(
        session, courier.id, "in", now - dt.timedelta(hours=2), courier.entries_allowed
    )
    service.record_passage(session, courier.id, "out", now - dt.timedelta(hours=1.8), 0)
    session.flush()
    return made + 1


def _set_state(session: Session, row: VisitorPass, state: str, at: dt.datetime) -> None:
    """Bring a fresh pass to the state the demo wants, as the gate and the staff would."""
    if state == "pending":
        row.status = PassStatus.pending
        row.decided_at = None
        return
    row.status = PassStatus.active
    row.decided_at = at + dt.timedelta(minutes=5)
    if state in ("inside", "left"):  # an expired pass was never used
        entered = at + dt.timedelta(minutes=12)
        service.record_passage(session, row.id, "in", entered, row.entries_allowed)
        if state == "left":
            service.record_passage(session, row.id, "out", entered + dt.timedelta(hours=1.5), 0)
    if state == "revoked":
        row.status = PassStatus.revoked
    session.flush()
