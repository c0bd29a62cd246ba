"""The visitors' history for staff (访客记录): passes in the account's scope filtered by
date, gate and host building, a page at a time, and the same selection as a workbook.

Who reads it: the property and community workers (their compound or community) and a
building lead (the visitors of their building). A guard works from today's list and who
is inside now; the history is not theirs. ID numbers stay masked in the workbook unless
the role may see whole numbers and the export states why (audited with the reason)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, select, true
from sqlalchemy.orm import Session

from fengchao.access import service as access
from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import Actor, Forbidden, Permission, Refusal, audit, require
from fengchao.db import utcnow
from fengchao.registry.models import Building, Compound
from fengchao.registry.scope import building_in_scope
from fengchao.settings import get_settings
from fengchao.tabular import Sheet
from fengchao.visitors import service
from fengchao.visitors.models import PassStatus, VisitorPass
from fengchao.web.i18n import _

PER_PAGE = 50
DEFAULT_DAYS = 7
MAX_DAYS = 366
EXPORT_LIMIT = 20000
REASON_MIN, REASON_MAX = 2, 200


class HistoryRefused(Refusal):
    """A filter or an export request the history cannot take, naming the field."""

    status = 422


@dataclass(frozen=True)
class Wanted:
    """The history's filters: local dates (both days included), the gate the pass was
    applied for or issued at, the host's building."""

    since: dt.date
    until: dt.date
    gate_id: int | None = None
    building_id: int | None = None


def today() -> dt.date:
    return dt.datetime.now(ZoneInfo(get_settings().timezone)).date()


def wanted(
    since: dt.date | None,
    until: dt.date | None,
    gate_id: int | None = None,
    building_id: int | None = None,
) -> Wanted:
    """The filters with their defaults (the last :data:`DEFAULT_DAYS` days); a range
    backwards or longer than :data:`MAX_DAYS` is refused naming the field."""
    until = until or today()
    since = since or until - dt.timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise HistoryRefused(_("开始日期不能晚于结束日期"), field="since")
    if (until - since).days >= MAX_DAYS:
        raise HistoryRefused(_("一次最多查询 {n} 天").format(n=MAX_DAYS), field="since")
    return Wanted(since, until, gate_id or None, building_id or None)


def status_text(row: VisitorPass, now: dt.datetime) -> str:
    """The pass's state as staff read it: an active pass past its window is expired, one
    whose entries are used (and whose holder has left) is used up."""
    if row.status == PassStatus.active:
        if now >= row.valid_until:
            return _("已过期")
        if row.entries_used >= row.entries_allowed and not row.inside:
            return _("次数已用完")
    return _(service.STATUS_LABELS[row.status])


def require_history(actor: Actor) -> None:
    if not (actor.can(Permission.visitors_manage) or actor.can(Permission.visitors_approve)):
        raise Forbidden("visitors.history")


def _bounds(day: dt.date) -> dt.datetime:
    zone = ZoneInfo(get_settings().timezone)
    return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)


def _where(actor: Actor, want: Wanted) -> ColumnElement[bool]:
    clauses = [
        service.pass_in_scope(actor),
        VisitorPass.created_at >= _bounds(want.since),
        VisitorPass.created_at < _bounds(want.until + dt.timedelta(days=1)),
    ]
    if want.gate_id is not None:
        # The first gate of a pass is the one it was applied for (the poster's) or issued at.
        clauses.append(VisitorPass.gate_ids[0].as_integer() == want.gate_id)
    if want.building_id is not None:
        clauses.append(VisitorPass.host_building_id == want.building_id)
    return and_(*clauses)


def _select(actor: Actor, want: Wanted) -> Select[VisitorPass]:
    newest_first = (VisitorPass.created_at.desc(), VisitorPass.id.desc())
    return select(VisitorPass).where(_where(actor, want)).order_by(*newest_first)


def page_of(
    *, session: Session, actor: Actor, want: Wanted, page: int = 1, per_page: int = PER_PAGE
) -> tuple[list[VisitorPass], int]:
    """One page of the passes matching ``want`` in scope, newest first, and how many match."""
    require_history(actor)
    total = session.scalar(select(func.count()).select_from(VisitorPass).where(_where(actor, want)))
    rows = session.scalars(_select(actor, want).offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total or 0)


def filter_choices(
    *, session: Session, actor: Actor
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(gates, buildings) in scope for the filter's pickers, as (id, label)."""
    require_history(actor)
    gates = [(g.id, g.name) for g in access.list_gates(session=session, actor=actor)]
    scope = true() if access.is_system(actor) else building_in_scope(actor.scope)
    buildings = session.execute(
        select(Building.id, Compound.name, Building.name)
        .join(Compound, Compound.id == Building.compound_id)
        .where(scope)
        .order_by(Compound.id, Building.sort_key, Building.id)
        .limit(2000)
    ).all()
    return gates, [(b_id, f"{compound} {name}") for b_id, compound, name in buildings]


def export(
    *,
    session: Session,
    actor: Actor,
    want: Wanted,
    local: Callable[[dt.datetime | None], str],
    whole_ids: bool = False,
    reason: str = "",
) -> Sheet:
    """The history matching ``want`` as a sheet (at most :data:`EXPORT_LIMIT` rows; cells
    neutralised by :func:`fengchao.tabular.xlsx_bytes`). Whole ID numbers only for a role
    that may see them and with a stated reason; the export is audited either way."""
    require(actor, Permission.visitors_manage)
    reason = " ".join(reason.split())
    if whole_ids:
        if not actor.can(Permission.id_number_unmasked):
            raise Forbidden("id_number.unmasked")
        if not REASON_MIN <= len(reason) <= REASON_MAX:
            raise HistoryRefused(
                _("导出完整身份证号要写明原因（{a}–{b} 个字）").format(a=REASON_MIN, b=REASON_MAX),
                field="reason",
            )
    rows = list(session.scalars(_select(actor, want).limit(EXPORT_LIMIT)))
    now = utcnow()
    cipher = get_cipher() if whole_ids else None
    fmt = local

    def id_text(row: VisitorPass) -> str:
        if cipher is not None and row.id_number_enc:
            return cipher.decrypt(row.id_number_enc)
        return row.id_mask or ""

    gates = gate_names(session, rows)
    header = [_("登记时间"), _("姓名"), _("手机号"), _("身份证号"), _("登记门岗"), _("被访住户"),
              _("事由"), _("人数"), _("车牌"), _("症状"), _("近14天行程"), _("健康码"),
              _("状态"), _("有效期"), _("有效期至"), _("进入次数"), _("最后进入"),
              _("最后离开")]  # fmt: skip
    body = [
        [
            fmt(r.created_at), r.name, r.phone, id_text(r),
            gates.get(r.gate_ids[0], "") if r.gate_ids else "", r.host_place, r.purpose,
            r.party_size, r.plate or "",
            "、".join(_(service.SYMPTOM_LABELS[s]) for s in r.symptoms or ()), r.travel,
            _(service.HEALTH_CODE_LABELS.get(r.health_code, r.health_code)),
            status_text(r, now), fmt(r.valid_from), fmt(r.valid_until),
            r.entries_used, fmt(r.last_in_at), fmt(r.last_out_at),
        ]
        for r in rows
    ]  # fmt: skip
    detail: dict[str, Any] = {
        "rows": len(body),
        "since": want.since.isoformat(),
        "until": want.until.isoformat(),
    }
    if want.gate_id:
        detail["gate"] = want.gate_id
    if want.building_id:
        detail["building"] = want.building_id
    if whole_ids:
        detail |= {"whole_id_numbers": True, "reason": reason}
    audit(session=session, actor=actor, action="export", object_type="visitor_pass", **detail)
    return Sheet(
        title=_("访客记录"), header=header, rows=body, text_columns=("C", "D"),
        widths={"A": 12, "B": 10, "C": 13, "D": 20, "F": 14},
    )  # fmt: skip


def gate_names(session: Session, rows: list[VisitorPass]) -> dict[int, str]:
    """The names of the gates the passes were applied for (a building lead sees no gates
    of their own, yet reads where their building's visitors registered)."""
    from fengchao.access.models import Gate

    ids = {r.gate_ids[0] for r in rows if r.gate_ids}
    if not ids:
        return {}
    return {
        g: name for g, name in session.execute(select(Gate.id, Gate.name).where(Gate.id.in_(ids)))
    }
