"""The visitor pass at the gate: the ``pass`` and ``pass_plate`` method handlers of the
decision flow (registered in :data:`fengchao.access.flows.METHOD_HANDLERS`).

A pass token is verified by its signature first (no database read), then its community,
gate and window, then its row (pending, refused, revoked, purged, entries used, a poster
rotated since it was applied for). An allowed entry takes one entry in the flow's write
transaction (:func:`fengchao.visitors.service.record_passage`); an exit marks the holder
out. A valid pass lets the visitor in under a rule of its own (the pass is the rule for
its holder); a courier's pass carries no rule: the community's rules for couriers (the
drop-off gate, the allowed hours) decide."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.access import policy
from fengchao.access.flows import PassOutcome, PersonCard
from fengchao.visitors import service, tokens
from fengchao.visitors.models import PassKind, PassStatus, VisitorPass, VisitorPoster
from fengchao.web.i18n import _


class Gate(Protocol):
    """The gate as the flow passes it (``flows.GateRef`` or the table's row)."""

    @property
    def id(self) -> int: ...

    @property
    def community_id(self) -> int: ...


_STATUS_REFUSAL = {
    PassStatus.pending: "pass_pending",
    PassStatus.refused: "pass_revoked",
    PassStatus.revoked: "pass_revoked",
}


def _outcome(
    session: Session, gate: Gate, row: VisitorPass, direction: str, now: dt.datetime
) -> PassOutcome:
    """What the row allows at this gate now (the token, if any, was checked already)."""
    courier = row.kind == PassKind.courier
    refusal = _STATUS_REFUSAL.get(row.status)
    watch = service.watched
    if (
        refusal is None
        and direction == "in"
        and watch(session, row.community_id, row.id_number_hash, row.phone, now)
    ):
        refusal = "pass_watch"
    if refusal is None and gate.id not in (row.gate_ids or ()):
        refusal = "pass_wrong_gate"
    if refusal is None and direction == "in":
        if now < row.valid_from:
            refusal = "pass_not_yet"
        elif now >= row.valid_until:
            refusal = "pass_expired"
        elif row.entries_used >= row.entries_allowed:
            refusal = "pass_used"
        elif row.poster_gate_id is not None and row.entries_used == 0:
            version = session.scalar(
                select(VisitorPoster.version).where(VisitorPoster.gate_id == row.poster_gate_id)
            )
            if (
                version is not None
                and row.poster_version is not None
                and version > row.poster_version
            ):
                refusal = "pass_stale"
    card = PersonCard(
        id=0,
        name=row.name,
        household_id=row.host_household_id or 0,
        place=row.host_place,
        # Shown on the console's card through the translation (a label, not a code).
        relation="快递外卖" if courier else "访客",
        health_status="normal",
    )
    rule = None
    if not courier:
        rule = policy.Rule(
            id=0,
            effect=policy.Effect.allow,
            roles=frozenset({policy.PassRole.visitor}),
            gate_id=gate.id,
            name="visitor_pass",
        )
    return PassOutcome(
        card=card,
        role=policy.PassRole.courier if courier else policy.PassRole.visitor,
        building_id=row.host_building_id,
        refusal=refusal,
        rule=rule,
        needs_temperature=direction == "in",
        detail={"pass_id": row.id, "pass_kind": str(row.kind)},
        take=partial(_take, row.id, row.entries_allowed),
    )


def _take(
    pass_id: int, entries_allowed: int, session: Session, direction: str, at: dt.datetime
) -> bool:
    return service.record_passage(session, pass_id, direction, at, entries_allowed)


def identify_pass(
    session: Session, *, gate: Gate, value: str | None, direction: str, now: dt.datetime
) -> PassOutcome:
    """A pass token shown at ``gate``: the outcome, with a refusal code when it does not
    let the holder through (``pass_malformed``, ``pass_forged``, ``pass_other_community``,
    ``pass_wrong_gate``, ``pass_expired``, ``pass_not_yet``, ``pass_unknown``,
    ``pass_pending``, ``pass_revoked``, ``pass_used``, ``pass_stale``)."""
    try:
        claims = tokens.unseal(value or "")
    except tokens.TokenRefused as refused:
        return PassOutcome(refusal=f"pass_{refused.code}", detail={"pass": refused.code})
    if claims.community_id != gate.community_id:
        return PassOutcome(refusal="pass_other_community", detail={"pass_id": claims.pass_id})
    if gate.id not in claims.gate_ids:
        return PassOutcome(refusal="pass_wrong_gate", detail={"pass_id": claims.pass_id})
    if direction == "in" and now >= claims.valid_until:
        return PassOutcome(refusal="pass_expired", detail={"pass_id": claims.pass_id})
    row = session.get(VisitorPass, claims.pass_id)
    if row is None or row.community_id != gate.community_id:
        return PassOutcome(refusal="pass_unknown", detail={"pass_id": claims.pass_id})
    if tokens._minutes(row.valid_until) != tokens._minutes(claims.valid_until):
        # Re-approved or changed since this token was shown: only the current one counts.
        return PassOutcome(refusal="pass_stale", detail={"pass_id": row.id})
    return _outcome(session, gate, row, direction, now)


def identify_plate(
    session: Session, *, gate: Gate, plate: str, direction: str, now: dt.datetime
) -> PassOutcome | None:
    """A visitor's car at a vehicle gate: the newest active pass with this plate for this
    gate whose window holds now (any active pass of the plate for an exit); None when
    there is none (the plate stays unknown)."""
    if not plate:
        return None
    query = (
        select(VisitorPass)
        .where(
            VisitorPass.community_id == gate.community_id,
            VisitorPass.plate == plate,
            VisitorPass.status == PassStatus.active,
        )
        .order_by(VisitorPass.id.desc())
        .limit(5)
    )
    if direction == "in":
        query = query.where(VisitorPass.valid_from <= now, VisitorPass.valid_until > now)
    for row in session.scalars(query):
        if gate.id in (row.gate_ids or ()):
            return _outcome(session, gate, row, direction, now)
    return None


def _catalogue() -> tuple[str, ...]:
    """The pass reasons of ``flows.REASON_TEXT``, written out here so that the translation
    script collects them (never called)."""
    return (
        _("访客通行证有效，放行"),
        _("这不是访客通行证"),
        _("通行证无效（可能被改动过）"),
        _("这是其他社区的通行证"),
        _("通行证不含此出入口"),
        _("通行证已过期"),
        _("通行证尚未生效"),
        _("通行证不存在或已清除"),
        _("通行证待审批"),
        _("通行证已撤销或未获批准"),
        _("通行证次数已用完"),
        _("通行证已作废（二维码已更换），请重新登记"),
        _("访客通行证暂不可用，请人工核验"),
        _("请联系物业"),
        _("访客"),
        _("快递外卖"),
    )
