"""Reading the audit log (审计日志) as an administrator does: what each action and record
means in words, the record as a link, filters by date, action, user and record.

Slices describe their own actions and records with :func:`describe`, so the log page
needs no change when a slice is added.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from fengchao.auth.models import AuditEvent
from fengchao.auth.service import Actor, Permission, require
from fengchao.settings import get_settings
from fengchao.web.i18n import _

# Message ids (Chinese); pages translate them.
ACTION_LABELS: dict[str, str] = {
    "login": "登录",
    "login_failed": "登录失败",
    "logout": "退出",
    "lock": "账号锁定",
    "unlock": "解除锁定",
    "read": "查看",
    "search": "查找",
    "search_id": "按身份证号查找",
    "reveal_id": "查看完整身份证号",
    "lookup": "查房",
    "import": "导入",
    "change": "修改",
    "propose": "提交变更申请",
    "decide": "处理变更申请",
    "export": "导出",
    "withdraw": "撤回变更申请",
    "create": "新建",
    "visit": "入户走访",
    "accept": "接单",
    "close": "办结",
    "update": "更新状态",
}
OBJECT_LABELS: dict[str, str] = {
    "user": "账号",
    "person": "居民",
    "household": "住户",
    "building": "楼栋",
    "completeness": "应录尽录报告",
    "todo": "本楼待办",
    "overview": "社区概况",
    "proposal": "变更申请",
    "residents": "居民表",
    "vehicles": "车辆表",
    "audit": "审计日志",
    "proposals": "变更申请列表",
    "import_errors": "导入需修改的行",
    "sweep": "扫楼",
    "help_request": "求助",
    "resident_report": "居民上报",
    "report_photo": "上报照片",
}
# Where a record of each kind is shown; "{id}" is the record's id.
OBJECT_LINKS: dict[str, str] = {
    "person": "/registry/people/{id}",
    "household": "/registry/households/{id}",
    "building": "/registry/buildings/{id}",
    "sweep": "/gridwork/sweeps/{id}",
    "help_request": "/gridwork/requests/{id}",
    "resident_report": "/gridwork/reports/{id}",
}
DETAIL_LABELS: dict[str, str] = {
    "reason": "原因",
    "query": "查询内容",
    "query_hash": "查询摘要",
    "results": "结果数",
    "address": "来源地址",
    "failures": "失败次数",
    "until": "锁定至",
    "was_locked": "曾被锁定",
    "fields": "修改项",
    "kind": "类别",
    "via": "途径",
    "proposal": "申请编号",
    "approved": "通过",
    "filename": "文件",
    "created": "新增",
    "updated": "更新",
    "unchanged": "未变",
    "skipped_rows": "跳过的行",
    "new_households": "新增住户",
    "items": "明细条数",
    "username": "账号",
    "rows": "行数",
}


def describe(
    *,
    actions: dict[str, str] | None = None,
    objects: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    details: dict[str, str] | None = None,
) -> None:
    """Let a slice name its own audit actions, records, record pages and detail keys."""
    ACTION_LABELS.update(actions or {})
    OBJECT_LABELS.update(objects or {})
    OBJECT_LINKS.update(links or {})
    DETAIL_LABELS.update(details or {})


def record_link(object_type: str, object_id: str | None) -> str | None:
    template = OBJECT_LINKS.get(object_type)
    return template.format(id=object_id) if template and object_id else None


@dataclass(frozen=True)
class AuditFilter:
    """What the log page narrows to; dates are the community's local days, inclusive."""

    since: dt.date | None = None
    until: dt.date | None = None
    action: str | None = None
    username: str | None = None
    object_type: str | None = None
    object_id: str | None = None


def _local_start(day: dt.date) -> dt.datetime:
    zone = ZoneInfo(get_settings().timezone)
    return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)


def _filtered(actor: Actor, wanted: AuditFilter, community_ids: list[int] | None) -> Select[Any]:
    query = select(AuditEvent)
    if community_ids is not None:
        # Events of the communities in scope, and those of no community (logins).
        query = query.where(
            or_(AuditEvent.community_id.in_(community_ids), AuditEvent.community_id.is_(None))
        )
    if wanted.since:
        query = query.where(AuditEvent.at >= _local_start(wanted.since))
    if wanted.until:
        query = query.where(AuditEvent.at < _local_start(wanted.until + dt.timedelta(days=1)))
    if wanted.action:
        query = query.where(AuditEvent.action == wanted.action)
    if wanted.username:
        # Typed names of failed logins are kept as typed; compare without case.
        query = query.where(func.lower(AuditEvent.username) == wanted.username.strip().lower())
    if wanted.object_type:
        query = query.where(AuditEvent.object_type == wanted.object_type)
    if wanted.object_id:
        query = query.where(AuditEvent.object_id == wanted.object_id)
    return query


def list_events(
    *,
    session: Session,
    actor: Actor,
    wanted: AuditFilter,
    community_ids: list[int] | None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEvent], int]:
    """One page of matching events, newest first, and how many match in all."""
    require(actor, Permission.audit_read)
    query = _filtered(actor, wanted, community_ids)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def all_events(
    *, session: Session, actor: Actor, wanted: AuditFilter, community_ids: list[int] | None
) -> list[AuditEvent]:
    """Every matching event for an export (capped: an export is not a backup)."""
    events, _total = list_events(
        session=session,
        actor=actor,
        wanted=wanted,
        community_ids=community_ids,
        limit=50_000,
    )
    return events


def export_xlsx(events: list[AuditEvent]) -> bytes:
    """The events as a workbook, in words (the exporter's language)."""
    from fengchao.tabular import Sheet, xlsx_bytes
    from fengchao.web.deps import localtime

    header = [_("时间"), _("用户"), _("动作"), _("对象"), _("编号"), _("详情")]
    rows = (
        [
            localtime(e.at),
            e.username,
            _(ACTION_LABELS.get(e.action, e.action)),
            _(OBJECT_LABELS.get(e.object_type, e.object_type)),
            e.object_id or "",
            "；".join(f"{_(DETAIL_LABELS.get(k, k))}：{v}" for k, v in e.detail.items()),
        ]
        for e in events
    )
    widths = {"A": 20, "B": 16, "C": 16, "D": 14, "E": 10, "F": 60}
    return xlsx_bytes([Sheet(_("审计日志"), header, rows, widths=widths)])
