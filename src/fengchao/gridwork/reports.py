"""Residents' reports (居民监督, 人人争当监督员): tailgating at a gate, an unregistered visitor,
a broken gate, fever in the stairwell; with an optional photo; routed to the building's lead
or the property; acknowledged and resolved by them."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session, defer, with_expression

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit
from fengchao.db import begin_write, utcnow
from fengchao.gridwork import photos, rules
from fengchao.gridwork.help import resident_actor
from fengchao.gridwork.models import ReportCategory, ReportRoute, ReportStatus, ResidentReport
from fengchao.gridwork.scoping import place_in_scope, require_any
from fengchao.notify import service as notify
from fengchao.notify.models import Urgency
from fengchao.registry.models import Building, Compound
from fengchao.vision.images import ImageError
from fengchao.web.i18n import _

PLACE_MAX, DETAILS_MAX, NOTE_MAX = 100, 500, 300


class ReportRefused(Refusal):
    status = 422


def _token_hash(token: str) -> str:
    return get_cipher().lookup_hash("gridwork-report:" + token)[:64]


@dataclass(frozen=True)
class ReportSubmitted:
    report: ResidentReport
    token: str


def submit(
    *,
    session: Session,
    community_id: int,
    compound_id: int,
    building_id: int | None,
    category: ReportCategory | str,
    place: str = "",
    details: str = "",
    photo: bytes | None = None,
    now: dt.datetime | None = None,
) -> ReportSubmitted:
    """A report from the public page. The photo (if any) is checked and re-encoded before
    anything is written; a bad photo refuses the whole report, naming the field."""
    now = now or utcnow()
    try:
        category = ReportCategory(category)
    except ValueError:
        raise ReportRefused(_("请选择问题类型"), field="category") from None
    place = rules.clean_text(place, PLACE_MAX + 1).replace("\n", " ")
    details = rules.clean_text(details, DETAILS_MAX + 1)
    if len(place) > PLACE_MAX:
        raise ReportRefused(_("地点太长（最多 {n} 个字）").format(n=PLACE_MAX), field="place")
    if len(details) > DETAILS_MAX:
        raise ReportRefused(_("说明太长（最多 {n} 个字）").format(n=DETAILS_MAX), field="details")
    if category == ReportCategory.other and not details:
        raise ReportRefused(_("请简单说明是什么问题"), field="details")
    jpeg = None
    if photo:
        try:
            jpeg = photos.prepare(photo)
        except ImageError as exc:
            raise ReportRefused(_(exc.message), field="photo") from None
    compound = session.get(Compound, compound_id)
    if compound is None or compound.community_id != community_id:
        raise ReportRefused(_("请选择小区"), field="compound")
    if building_id is not None:
        building = session.get(Building, building_id)
        if building is None or building.compound_id != compound_id:
            raise ReportRefused(_("这个小区没有这栋楼"), field="building")
    begin_write(session)
    token = secrets.token_urlsafe(24)
    digest = _token_hash(token)
    route = rules.report_route(category, building_id is not None)
    report = ResidentReport(
        community_id=community_id, compound_id=compound_id, building_id=building_id,
        category=category, route=route, place=place, details=details,
        photo=photos.seal(jpeg, digest) if jpeg else None, status=ReportStatus.new,
        created_at=now, token_hash=digest,
    )  # fmt: skip
    session.add(report)
    session.flush()
    if route == ReportRoute.building_lead and building_id is not None:
        to = [
            notify.Recipient.at(Role.building_lead, ScopeLevel.building, building_id),
            notify.Recipient.group(ScopeLevel.building, building_id),
        ]
    else:
        to = [
            notify.Recipient.at(Role.property_staff, ScopeLevel.compound, compound_id),
            notify.Recipient.group(ScopeLevel.compound, compound_id),
        ]
    where = compound.name
    if building_id is not None:
        name = session.get(Building, building_id).name  # type: ignore[union-attr]
        where = _("{c} {b}号楼").format(c=compound.name, b=name)
    notify.send(
        session=session,
        community_id=community_id,
        kind="resident_report",
        title=_("居民上报：{what}").format(what=rules.label(category)),
        # The chat gets the compound and building only: what a resident typed (a place, a
        # description) may name a flat or a person, so it stays in the inbox (``detail``).
        body=where,
        detail="\n".join(t for t in (place, details) if t) or None,
        to=to,
        urgency=Urgency.urgent if category == ReportCategory.stairwell_fever else Urgency.normal,
        link=f"/gridwork/reports/{report.id}",
        key=f"gridwork:report:{report.id}",
        source="gridwork",
        now=now,
    )
    audit(session=session, actor=resident_actor(community_id), action="create",
          object_type="resident_report", object_id=report.id, community_id=community_id,
          category=category.value, photo=jpeg is not None)  # fmt: skip
    return ReportSubmitted(report, token)


def _visible(actor: Actor) -> ColumnElement[bool]:
    """Which reports an actor handles: workers every report in scope, leads those routed
    to the lead, the property those routed to the property."""
    in_scope = place_in_scope(actor.scope, ResidentReport)
    if actor.can(Permission.gridwork_manage):
        return in_scope
    routes = []
    if actor.can(Permission.gridwork_lead):
        routes.append(ResidentReport.route == ReportRoute.building_lead)
    if actor.can(Permission.gridwork_property):
        routes.append(ResidentReport.route == ReportRoute.property)
    return and_(in_scope, or_(*routes)) if routes else false()


def open_reports(*, session: Session, actor: Actor, limit: int = 50) -> list[ResidentReport]:
    require_any(actor)
    return list(
        session.scalars(
            select(ResidentReport)
            .options(
                # A list needs to know there is a photo, not to carry each one's bytes.
                defer(ResidentReport.photo),
                with_expression(ResidentReport.has_photo, ResidentReport.photo.is_not(None)),
            )
            .where(_visible(actor), ResidentReport.status != ReportStatus.resolved)
            .order_by(ResidentReport.id.desc())
            .limit(limit)
        )
    )


def get(*, session: Session, actor: Actor, report_id: int) -> ResidentReport:
    require_any(actor)
    report = session.scalar(
        select(ResidentReport).where(ResidentReport.id == report_id, _visible(actor))
    )
    if report is None:
        raise NotFound(f"report {report_id}")
    return report


def place_of(session: Session, report: ResidentReport) -> str:
    compound = session.get(Compound, report.compound_id)
    text = compound.name if compound else ""
    building = session.get(Building, report.building_id) if report.building_id else None
    return _("{c} {b}号楼").format(c=text, b=building.name) if building else text


def set_status(
    *,
    session: Session,
    actor: Actor,
    report_id: int,
    status: ReportStatus | str,
    note: str = "",
    now: dt.datetime | None = None,
) -> ResidentReport:
    """Acknowledge or resolve a report (resolving needs a note)."""
    now = now or utcnow()
    try:
        status = ReportStatus(status)
    except ValueError:
        raise ReportRefused(_("状态不对"), field="status") from None
    note = rules.clean_text(note, NOTE_MAX + 1)
    if len(note) > NOTE_MAX:
        raise ReportRefused(_("说明太长（最多 {n} 个字）").format(n=NOTE_MAX), field="note")
    if status == ReportStatus.resolved and not note:
        raise ReportRefused(_("请写一句处理结果"), field="note")
    begin_write(session)
    report = get(session=session, actor=actor, report_id=report_id)
    if report.status == ReportStatus.resolved:
        raise ReportRefused(_("这条上报已经处理完了"), field="status")
    report.status = status
    report.handled_by_name, report.handled_at = actor.display_name, now
    report.note = note or report.note
    audit(session=session, actor=actor, action="update", object_type="resident_report",
          object_id=report.id, community_id=report.community_id, status=status.value)  # fmt: skip
    return report


def photo(*, session: Session, actor: Actor, report_id: int) -> bytes:
    """The report's photo (audited: it may show people)."""
    report = get(session=session, actor=actor, report_id=report_id)
    if report.photo is None:
        raise NotFound(f"report {report_id} photo")
    jpeg = photos.unseal(report.photo, report.token_hash)
    if jpeg is None:
        raise NotFound(f"report {report_id} photo")
    audit(session=session, actor=actor, action="read", object_type="report_photo",
          object_id=report.id, community_id=report.community_id)  # fmt: skip
    return jpeg


@dataclass(frozen=True)
class ReportPublic:
    category: ReportCategory
    status: ReportStatus
    created_at: dt.datetime
    handled_at: dt.datetime | None


def public_status(*, session: Session, token: str) -> ReportPublic:
    if not 16 <= len(token) <= 64:
        raise NotFound("report link")
    report = session.scalar(
        select(ResidentReport).where(ResidentReport.token_hash == _token_hash(token))
    )
    if report is None:
        raise NotFound("report link")
    return ReportPublic(report.category, report.status, report.created_at, report.handled_at)
